#!/usr/bin/env bash
# The main job on the embedded default: starts a private local cloud (moto server, the
# resources of template.yaml, the API on localhost), ingests the files in samples/, shows
# where they landed, and stops everything again. Extra arguments go to `sluice local demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "demo: building sluice (the first build takes a few minutes)..." >&2
cargo build --quiet --package sluice-cli --bin sluice
exec target/debug/sluice local demo "$@"
