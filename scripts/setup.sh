#!/usr/bin/env bash
# Installs what running and testing Sluice needs beyond Rust: a project virtualenv (.venv)
# with the pinned moto server, SAM CLI and cfn-lint. Does nothing when it is up to date.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust 1.95 (rustup)" >&2; exit 1; }
python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null \
  || { echo "setup: needs Python >= 3.10 as '$python' (set PYTHON=...)" >&2; exit 1; }

stamp=.venv/.requirements.sha256
wanted=$(sha256sum localstack/requirements.txt | cut -d' ' -f1)
if [ -x .venv/bin/python ] && [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ]; then
  exit 0
fi
echo "setup: installing moto, SAM CLI, cfn-lint and cargo-lambda into .venv (once, about a minute)..." >&2
"$python" -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r localstack/requirements.txt
echo "$wanted" > "$stamp"
