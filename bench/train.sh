#!/usr/bin/env bash
# Trainer benchmark: Sluice's linear model, MLP and gradient-boosted trees against
# scikit-learn's LogisticRegression / Ridge, MLPClassifier / MLPRegressor and
# HistGradientBoostingClassifier / Regressor (behind the imputation, scaling and one-hot
# encoding Sluice's feature pipeline does) on the same 80/20 splits of datasets scikit-learn
# ships and of two generated ones (200,000 and 100,000 rows, numbers and categories with
# missing values, one a regression on prices), in one run; then tract's speed serving the
# models trained on the generated sets. Sluice's time is the whole `train` process (reading
# Parquet, fitting, evaluating, ONNX export and its tract check); scikit-learn's is the
# preprocessing's and the model's `fit`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv-bench/bin/python ]; then python3 -m venv .venv-bench; fi
.venv-bench/bin/python -c 'import sklearn, pyarrow' 2>/dev/null || \
  .venv-bench/bin/pip install --quiet --disable-pip-version-check pandas==3.1.1 pyarrow==26.0.1 scikit-learn==1.9.1
cargo build --quiet --release --package sluice-trainer --bin train --example tract_speed
mkdir -p target/bench-train
# As deployed: tract creates an error value for every tree leaf it reaches, and with
# RUST_BACKTRACE set each of them captures a backtrace (measured: ten times slower).
unset RUST_BACKTRACE RUST_LIB_BACKTRACE
exec .venv-bench/bin/python bench/train_compare.py target/release/train target/release/examples/tract_speed \
    target/bench-train
