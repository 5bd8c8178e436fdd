#!/usr/bin/env bash
# The main job on the embedded default: starts a private local cloud (moto server, the
# resources of template.yaml, the API on localhost), ingests the files in samples/, lets the
# ETL curate them, trains and registers a model on them, shows each step's results, and
# stops everything again. Extra arguments go to `sluice local demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "demo: building sluice (the first build takes a few minutes)..." >&2
cargo build --quiet --package sluice-cli --package sluice-trainer
exec target/debug/sluice local demo "$@"
