#!/usr/bin/env bash
# Serving benchmark: Sluice's predict function and a Python handler doing the same job
# (numpy + onnxruntime + boto3) in one run, on the same model in the same local S3; prints
# cold start, peak memory, warm in-handler latency and the ratios. The functions' zipped
# release sizes are bench/release.sh's.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --quiet --release --package sluice-trainer --bin train
cargo build --quiet --release --package sluice-etl --example csv_to_parquet
cargo build --quiet --release --package predict --example serve_once
.venv/bin/python bench/predict_compare.py target/release/train target/release/examples/csv_to_parquet \
    target/release/examples/serve_once target/bench-predict
