#!/usr/bin/env bash
# Runs every test: the delivery pipeline's and infra templates' checks (Jest, cfn-lint), a
# `sam build` of one function, unit tests, handler tests fed with real API Gateway events,
# template linting (cfn-lint, sam validate --lint, checkov) and the end-to-end API tests.
# Each test binary starts its own moto server and it stops with the binary; nothing is left
# running.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/setup-node.sh
# The CDK app's tests (the synthesized pipeline; the infra templates against template.yaml
# and the code; every function's binary), then the infra templates' lint: under a minute,
# before the long cargo build.
(cd cdk && npm test --silent)
.venv/bin/cfn-lint infra/*.yaml
# `sam build` of one function for arm64, as `sam deploy` would build it.
scripts/sam-build-check.sh
# With ONNX Runtime, the optional second engine, built in (one build for everything: a
# separate `-p sluice-serving` build would resolve features differently and rebuild the
# SDKs); its library is the one in the onnxruntime wheel (an absolute path: each test binary
# runs in its own package's folder).
# Incremental compilation is for editing, not for one clean build: off, it saves CI 1.6 GB of
# disk and some time.
CARGO_INCREMENTAL=0 ORT_DYLIB_PATH="$PWD/$(ls .venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* | head -n 1)" \
    exec cargo test --workspace --features sluice-serving/ort --locked --no-fail-fast "$@"
