#!/usr/bin/env bash
# Runs every test: unit tests, handler tests fed with real API Gateway events, template
# linting (cfn-lint, sam validate --lint) and the end-to-end API tests. Each test binary
# starts its own moto server and it stops with the binary; nothing is left running.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test --workspace --locked --no-fail-fast "$@"
# ONNX Runtime, the optional second engine, against the library in the onnxruntime wheel.
ORT_DYLIB_PATH="$(ls .venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* | head -n 1)" \
    exec cargo test -p sluice-serving --features ort --locked "$@"
