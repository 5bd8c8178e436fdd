#!/usr/bin/env bash
# Installs what running and testing Sluice needs beyond Rust: a project virtualenv (.venv)
# with the pinned moto server, SAM CLI and cfn-lint, checkov in a virtualenv of its own
# (.venv/checkov: its pins conflict with SAM CLI's), and the notebook's kernel in another
# (.venv/notebook). Does nothing when they are up to date.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust 1.95 (rustup)" >&2; exit 1; }
python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null \
  || { echo "setup: needs Python >= 3.10 as '$python' (set PYTHON=...)" >&2; exit 1; }

# install_venv DIR REQUIREMENTS WHAT: a virtualenv at DIR with REQUIREMENTS, unless the
# one there was made from the same file.
install_venv() {
  local stamp="$1/.requirements.sha256" wanted
  wanted=$(sha256sum "$2" | cut -d' ' -f1)
  if [ -x "$1/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ]; then
    return 0
  fi
  echo "setup: installing $3 into $1 (once, about a minute)..." >&2
  "$python" -m venv "$1"
  "$1/bin/pip" install --quiet --disable-pip-version-check -r "$2"
  echo "$wanted" > "$stamp"
}
install_venv .venv localstack/requirements.txt "moto, SAM CLI, cfn-lint and cargo-lambda"
install_venv .venv/checkov localstack/requirements-checkov.txt checkov
install_venv .venv/notebook notebooks/requirements.txt "the notebook's kernel (pandas, pyarrow, matplotlib, nbclient)"
