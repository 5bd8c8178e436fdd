#!/usr/bin/env bash
# Serving benchmark: Sluice's predict function and a Python handler doing the same job
# (numpy + onnxruntime + boto3) in one run, on the same model in the same local S3; prints
# cold start, peak memory, warm in-handler latency and the ratios. With --zip it also
# builds every function as Lambda does (cargo lambda build --release --arm64) and prints
# the zipped sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --quiet --release --package sluice-trainer --bin train
cargo build --quiet --release --package sluice-etl --example csv_to_parquet
cargo build --quiet --release --package predict --example serve_once
.venv/bin/python bench/predict_compare.py target/release/train target/release/examples/csv_to_parquet \
    target/release/examples/serve_once target/bench-predict
if [ "${1:-}" = "--zip" ]; then
    PATH="$PWD/.venv/bin:$PATH" cargo lambda build --release --arm64 --output-format zip --lambda-dir target/lambda-zips \
        --package ingest --package etl --package models --package register --package predict --package stream --package batch \
        --package monitor --package remediate
    for zip in target/lambda-zips/*/bootstrap.zip; do
        printf '%-10s %6.2f MB\n' "$(basename "$(dirname "$zip")")" "$(echo "$(stat -c %s "$zip") / 1000000" | bc -l)"
    done
fi
