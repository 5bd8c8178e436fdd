#!/usr/bin/env bash
# The parsers' property harness, run long with fresh random seeds (the test suite runs it
# short and seeded). Any panic fails the run and prints the shrunk input.
#
#   scripts/fuzz.sh              # 20,000 cases per property
#   FUZZ_CASES=200000 scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export FUZZ_CASES=${FUZZ_CASES:-20000} FUZZ_SEED=random
cargo test --release --locked -p sluice-formats --test fuzz -- --nocapture
cargo test --release --locked -p sluice-serving --test fuzz -- --nocapture
