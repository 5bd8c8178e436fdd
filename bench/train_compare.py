"""Trains Sluice's algorithms and scikit-learn's counterparts on the same splits of datasets
scikit-learn ships and of two larger generated ones, and prints the validation metric,
training times and their ratio (scikit-learn's time / Sluice's: above 1, Sluice is faster)
side by side; then how fast tract serves the models trained on the generated sets.

Last, data-parallel training: the linear model and the MLP on mixed_200k trained by 1, 2 and
4 hosts (trainer processes on loopback, each with its share of the training rows, adding up
their gradients over TCP), wall-clock time and metric, against one host.

Usage: train_compare.py TRAINER_BINARY SPEED_BINARY WORK_DIR. BENCH_SETS and BENCH_ALGORITHMS
(comma-separated) run a part, e.g. BENCH_SETS=mixed_200k BENCH_ALGORITHMS=gbt; BENCH_HOSTS
(default 1,2,4; empty: none) the host counts of the last part.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn import datasets
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

SEED = 42


SKLEARN_SETS = ["iris", "wine", "breast_cancer", "digits", "diabetes"]
# Generated, larger and messier: numbers and categories, 5% of each missing.
GENERATED_SETS = {"mixed_200k": (200_000, False), "price_100k": (100_000, True)}


def load(name):
    """Features as a DataFrame (numbers and strings, None where missing), the target, and
    whether it is a regression."""
    if name in GENERATED_SETS:
        return generate(name, *GENERATED_SETS[name])
    loader = {
        "iris": datasets.load_iris,
        "wine": datasets.load_wine,
        "breast_cancer": datasets.load_breast_cancer,
        "digits": datasets.load_digits,
        "diabetes": datasets.load_diabetes,
    }[name]
    data = loader()
    x = data.data.astype(np.float64)
    return pd.DataFrame({f"f{i:02d}": x[:, i] for i in range(x.shape[1])}), data.target, name == "diabetes"


def generate(name, rows, regression):
    """30 numeric and 5 categorical columns (10 to 30 levels) with 5% missing; the target is
    linear in them plus noise: two classes, or a price around 250,000."""
    rng = np.random.default_rng(SEED)
    numeric = rng.normal(size=(rows, 30))
    levels = [10, 15, 20, 25, 30]
    codes = [rng.integers(0, k, size=rows) for k in levels]
    score = numeric @ rng.normal(size=30) * 0.5
    for code, k in zip(codes, levels):
        score += rng.normal(size=k)[code]
    score += rng.normal(size=rows) * 2.0
    frame = pd.DataFrame({f"n{i:02d}": numeric[:, i] for i in range(30)})
    for i, (code, k) in enumerate(zip(codes, levels)):
        frame[f"c{i}"] = pd.Series([f"level{c}" for c in code], dtype=object)
    for column in frame.columns:
        frame.loc[rng.random(rows) < 0.05, column] = None
    target = 250_000 + 40_000 * score if regression else (score > 0).astype(int)
    return frame, target, regression


def write_channel(root, channel, x, y, regression):
    columns = {name: pa.Array.from_pandas(x[name]) for name in x.columns}  # NaN and None: null
    columns["target"] = np.asarray(y, dtype=np.float64) if regression else [str(v) for v in y]
    folder = os.path.join(root, "input", "data", channel)
    os.makedirs(folder, exist_ok=True)
    pq.write_table(pa.table(columns), os.path.join(folder, "part-0.parquet"))


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_sluice(trainer, work, algorithm, x_train, y_train, x_valid, y_valid, regression, hosts=1, fixed=None):
    """Trains on `hosts` trainer processes, each with an equal share of the training rows
    (the first also with the validation rows); the time is until the last one finishes."""
    names = [f"algo-{i + 1}" for i in range(hosts)]
    roots = [os.path.join(work, "opt-ml" if hosts == 1 else f"opt-ml-{name}") for name in names]
    hyperparameters = {"target": "target", "algorithm": algorithm, "seed": str(SEED)}
    if algorithm == "mlp":
        hyperparameters["hidden_units"] = "64"
    # Extra hyperparameters per algorithm, for exploring: SLUICE_LINEAR='{"epochs": "3000"}'.
    hyperparameters.update(json.loads(os.environ.get(f"SLUICE_{algorithm.upper()}", "{}")))
    hyperparameters.update(fixed or {})
    shares = np.array_split(np.arange(len(x_train)), hosts)
    for name, root, share in zip(names, roots, shares):
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(os.path.join(root, "input", "config"))
        write_channel(root, "train", x_train.iloc[share], np.asarray(y_train)[share], regression)
        if root == roots[0]:
            write_channel(root, "validation", x_valid, y_valid, regression)
        with open(os.path.join(root, "input", "config", "hyperparameters.json"), "w") as f:
            json.dump(hyperparameters, f)
        if hosts > 1:
            with open(os.path.join(root, "input", "config", "resourceconfig.json"), "w") as f:
                json.dump({"current_host": name, "hosts": names}, f)
    cluster = {"SLUICE_CLUSTER_LEADER": f"127.0.0.1:{free_port()}", "TRAINING_JOB_NAME": "bench"}
    started = time.perf_counter()
    processes = [subprocess.Popen([trainer], env={**os.environ, **cluster, "SLUICE_SAGEMAKER_ROOT": root},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for root in roots]
    for process in processes:
        _, stderr = process.communicate()
        if process.returncode != 0:
            sys.exit(f"sluice {algorithm} on {hosts} hosts failed: {stderr.decode()}")
    seconds = time.perf_counter() - started
    with open(os.path.join(roots[0], "model", "metrics.json")) as f:
        metrics = json.load(f)["validation"]
    return (metrics["r2"] if regression else metrics["accuracy"]), seconds, os.path.join(roots[0], "model")


def features(x_train, trees):
    """What Sluice's feature pipeline does: categories one-hot (at most 50 per column, nulls
    and unknown values in a slot of their own); numbers standardised with nulls at the mean,
    or, for trees, left missing (NaN), which both sides' trees route on their own."""
    numeric = [c for c in x_train.columns if x_train[c].dtype != object]
    categorical = [c for c in x_train.columns if x_train[c].dtype == object]
    return ColumnTransformer([
        ("numeric", "passthrough" if trees else make_pipeline(SimpleImputer(), StandardScaler()), numeric),
        ("categorical", make_pipeline(SimpleImputer(strategy="constant", fill_value="(missing)"),
                                      OneHotEncoder(handle_unknown="ignore", max_categories=50, sparse_output=False)),
         categorical),
    ])


def run_sklearn(algorithm, x_train, y_train, x_valid, y_valid, regression):
    started = time.perf_counter()
    if algorithm == "gbt":
        # Stopped on the same validation rows as Sluice's trees (10 rounds without
        # improvement), scikit-learn's defaults otherwise, as Sluice's are.
        boosting = HistGradientBoostingRegressor if regression else HistGradientBoostingClassifier
        model = boosting(early_stopping=True, random_state=SEED)
        transform = features(x_train, trees=True)
        x_fit = transform.fit_transform(x_train)
        model.fit(x_fit, y_train, X_val=transform.transform(x_valid), y_val=y_valid)
        seconds = time.perf_counter() - started
        predicted = model.predict(transform.transform(x_valid))
    else:
        if regression:
            model = Ridge(alpha=1e-4) if algorithm == "linear" else MLPRegressor(hidden_layer_sizes=(64,), max_iter=300, random_state=SEED)
        else:
            model = LogisticRegression(max_iter=1000) if algorithm == "linear" else MLPClassifier(hidden_layer_sizes=(64,), max_iter=300, random_state=SEED)
        pipeline = make_pipeline(features(x_train, trees=False), model)
        pipeline.fit(x_train, y_train)
        seconds = time.perf_counter() - started
        predicted = pipeline.predict(x_valid)
    return (r2_score(y_valid, predicted) if regression else accuracy_score(y_valid, predicted)), seconds


def chosen(variable, everything):
    wanted = os.environ.get(variable)
    return [item for item in everything if not wanted or item in wanted.split(",")]


def main():
    trainer, speed, work = sys.argv[1], sys.argv[2], sys.argv[3]
    served = []
    print(f"{'dataset':<14} {'algorithm':<7} {'metric':<8} {'sluice':>8} {'sklearn':>8} {'diff':>7} {'sluice s':>9} {'sklearn s':>9} {'sk/ours':>7}")
    for name in chosen("BENCH_SETS", SKLEARN_SETS + list(GENERATED_SETS)):
        x, y, regression = load(name)
        x_train, x_valid, y_train, y_valid = train_test_split(
            x, y, test_size=0.2, random_state=SEED, stratify=None if regression else y)
        # The MLPs on the generated sets would take most of the run; they are left out.
        algorithms = ["linear", "gbt"] if name in GENERATED_SETS else ["linear", "mlp", "gbt"]
        for algorithm in chosen("BENCH_ALGORITHMS", algorithms):
            ours, our_time, bundle = run_sluice(trainer, work, algorithm, x_train, y_train, x_valid, y_valid, regression)
            theirs, their_time = run_sklearn(algorithm, x_train, y_train, x_valid, y_valid, regression)
            metric = "r2" if regression else "accuracy"
            print(f"{name:<14} {algorithm:<7} {metric:<8} {ours:>8.4f} {theirs:>8.4f} {ours - theirs:>+7.4f} {our_time:>9.3f} {their_time:>9.3f} {their_time / our_time:>6.2f}x", flush=True)
            if name in GENERATED_SETS:
                kept = os.path.join(work, f"{name}-{algorithm}")
                shutil.rmtree(kept, ignore_errors=True)
                shutil.copytree(bundle, os.path.join(kept, "model"))
                shutil.copytree(os.path.join(os.path.dirname(bundle), "input", "data", "validation"), os.path.join(kept, "rows"))
                served.append((f"{name} {algorithm}", kept))
    if served:
        print()
        for label, kept in served:
            result = subprocess.run([speed, os.path.join(kept, "model"), os.path.join(kept, "rows")],
                                    check=True, capture_output=True, text=True)
            print(f"{label:<18} {result.stdout.strip()}", flush=True)
    host_counts = [int(n) for n in os.environ.get("BENCH_HOSTS", "1,2,4").split(",") if n]
    if host_counts:
        # The MLP for a fixed 5 epochs: the same work whatever the host count.
        print(f"\ndata-parallel on {os.cpu_count()} cores: mixed_200k, hosts on loopback (mlp: 5 epochs)")
        print(f"{'algorithm':<9} {'hosts':>5} {'accuracy':>8} {'seconds':>8} {'vs 1 host':>9}")
        x, y, regression = load("mixed_200k")
        x_train, x_valid, y_train, y_valid = train_test_split(x, y, test_size=0.2, random_state=SEED, stratify=y)
        for algorithm in chosen("BENCH_ALGORITHMS", ["linear", "mlp"]):
            alone = None
            for hosts in host_counts:
                fixed = {"epochs": "5"} if algorithm == "mlp" else {}
                metric, seconds, _ = run_sluice(trainer, work, algorithm, x_train, y_train, x_valid, y_valid,
                                                regression, hosts, fixed)
                alone = alone or seconds
                print(f"{algorithm:<9} {hosts:>5} {metric:>8.4f} {seconds:>8.2f} {alone / seconds:>8.2f}x", flush=True)


if __name__ == "__main__":
    main()
