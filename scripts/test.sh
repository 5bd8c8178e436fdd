#!/usr/bin/env bash
# Runs every test: unit tests, handler tests fed with real API Gateway events, template
# linting (cfn-lint, sam validate --lint) and the end-to-end API tests. Each test binary
# starts its own moto server and it stops with the binary; nothing is left running.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec cargo test --workspace --locked --no-fail-fast "$@"
