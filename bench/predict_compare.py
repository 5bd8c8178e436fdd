"""Serving benchmark: Sluice's predict function against a Python handler doing the same
job (bench/predict_python.py: numpy + onnxruntime + boto3), in one run, on the same model
fetched from the same local S3 (a moto server started here).

The model: Sluice's trainer, MLP 30 → 64 → 2, on 2000 synthetic rows of 30 numeric
features. Cold start: process start → first response (registry lookup and bundle fetch
included), median of 5 runs, and the process's peak resident memory (VmHWM). Warm: in-handler latency p50/p99
for 1 row and 1000 rows, both for inference (row checks, feature pipeline, graph) and for
the whole handler (recording to DynamoDB and S3 on the local emulator included).

    python predict_compare.py <train binary> <csv_to_parquet binary> <serve_once binary> <work dir>
"""

import csv
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

import boto3

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FEATURES = 30
MODEL = "bench"


def start_moto():
    moto = subprocess.Popen([sys.executable, os.path.join(ROOT, "localstack", "moto_server.py"), "--exit-with-stdin"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    return moto, moto.stdout.readline().strip()


def dataset(path, rows):
    random.seed(7)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([f"f{i:02d}" for i in range(FEATURES)] + ["label"])
        data = []
        for _ in range(rows):
            x = [random.gauss(0, 1) for _ in range(FEATURES)]
            label = "yes" if sum(x[:5]) + random.gauss(0, 0.5) > 0 else "no"
            writer.writerow([f"{v:.5f}" for v in x] + [label])
            data.append(x)
    return data


def train(train_bin, to_parquet, work):
    root = os.path.join(work, "opt-ml")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(os.path.join(root, "input", "config"))
    os.makedirs(os.path.join(root, "input", "data", "train"))
    data = dataset(os.path.join(work, "train.csv"), 2000)
    subprocess.run([to_parquet, os.path.join(work, "train.csv"), os.path.join(root, "input", "data", "train", "part-0.parquet")],
                   check=True, capture_output=True)
    with open(os.path.join(root, "input", "config", "hyperparameters.json"), "w") as f:
        json.dump({"target": "label", "algorithm": "mlp", "hidden_units": "64", "epochs": "30", "model_name": MODEL}, f)
    subprocess.run([train_bin], env={**os.environ, "SLUICE_SAGEMAKER_ROOT": root}, check=True, capture_output=True)
    bundle = io.BytesIO()
    with tarfile.open(fileobj=bundle, mode="w:gz") as archive:
        archive.add(os.path.join(root, "model"), arcname=".")
    return bundle.getvalue(), data


def provision(endpoint, bundle):
    """The stores both handlers use: the bundle in S3, the model's production record in the
    catalog (as Sluice's registry writes it), the predictions table, the capture stream."""
    kwargs = {"endpoint_url": endpoint, "region_name": "us-east-1"}
    s3, dynamodb = boto3.client("s3", **kwargs), boto3.client("dynamodb", **kwargs)
    firehose = boto3.client("firehose", **kwargs)
    for bucket in ("bench-artifacts", "bench-capture"):
        s3.create_bucket(Bucket=bucket)
    for table in ("bench-predictions", "bench-catalog"):
        dynamodb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                              AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
                              KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
    firehose.create_delivery_stream(
        DeliveryStreamName="bench-capture",
        ExtendedS3DestinationConfiguration={"RoleARN": "arn:aws:iam::123456789012:role/firehose",
                                            "BucketARN": "arn:aws:s3:::bench-capture", "Prefix": "capture/"})
    uri = "s3://bench-artifacts/training/bench/job/output/model.tar.gz"
    s3.put_object(Bucket="bench-artifacts", Key="training/bench/job/output/model.tar.gz", Body=bundle)
    dynamodb.put_item(TableName="bench-catalog", Item={
        "pk": {"S": "PRODUCTION"}, "sk": {"S": f"MODEL#{MODEL}"}, "entity": {"S": "production"},
        "model": {"S": MODEL}, "version": {"N": "1"}, "bundle_uri": {"S": uri},
        "package_arn": {"S": f"arn:aws:sagemaker:us-east-1:123456789012:model-package/sluice-{MODEL}/1"},
        "since": {"S": "2026-11-22T00:00:00Z"}, "read_at": {"S": "2026-11-22T00:00:00.000000000Z"}})


def event(path, rows):
    body = json.dumps({"rows": [{f"f{i:02d}": v for i, v in enumerate(x)} for x in rows]})
    with open(path, "w") as f:
        json.dump({"version": "2.0", "routeKey": "POST /models/{model}/predict", "rawPath": f"/models/{MODEL}/predict",
                   "headers": {"content-type": "application/json"}, "requestContext": {"requestId": "bench", "http": {"method": "POST"}},
                   "pathParameters": {"model": MODEL}, "body": body, "isBase64Encoded": False}, f)


def run_measured(command, env):
    """Runs a process to its end; returns (wall seconds, the last line it printed). Output
    goes to files: a pipe left unread would stall a chatty process (the function prints a
    metrics line per request)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=out, stderr=err)
        status = process.wait()
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if status != 0:
            raise SystemExit(f"{command[0]} failed: {err.read().decode()[-2000:]}")
        lines = out.read().decode().strip().splitlines()
    return seconds, lines[-1] if lines else ""


def main():
    train_bin, to_parquet, serve_once, work = sys.argv[1:5]
    # The emulator takes any credentials; real ones must never reach it.
    os.environ.update({"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"})
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.pop("AWS_PROFILE", None)
    os.makedirs(work, exist_ok=True)
    moto, endpoint = start_moto()
    try:
        bundle, data = train(train_bin, to_parquet, work)
        provision(endpoint, bundle)
        one, thousand = os.path.join(work, "one.json"), os.path.join(work, "thousand.json")
        event(one, data[:1])
        event(thousand, data[:1000])
        env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1", "CATALOG_TABLE": "bench-catalog",
               "PREDICTIONS_TABLE": "bench-predictions", "CAPTURE_STREAM": "bench-capture",
               "METRICS_NAMESPACE": "Sluice/bench", "RUST_LOG": "off"}
        commands = {
            "sluice (Rust, tract)": [serve_once],
            "python (onnxruntime)": [sys.executable, os.path.join(ROOT, "bench", "predict_python.py")],
        }
        results = {}
        for name, command in commands.items():
            # Each process reports its own peak (VmHWM): a forked child's ru_maxrss would
            # include the memory of this Python process it was forked from.
            cold = [run_measured(command + [one], env) for _ in range(5)]
            seconds = sorted(c[0] for c in cold)[2]
            memory = max(json.loads(c[1])["peak_rss_kib"] for c in cold) / 1024
            warm_one = json.loads(run_measured(command + [one, "--warm", "500"], env)[1])
            warm_thousand = json.loads(run_measured(command + [thousand, "--warm", "50"], env)[1])
            results[name] = (seconds, memory, warm_one, warm_thousand)
        print(f"bundle: {len(bundle) / 1024:.1f} KiB (MLP {FEATURES} → 64 → 2, trained by Sluice's trainer)")
        print(f"{'':24} {'cold start':>11} {'peak RSS':>9} {'1 row inference p50/p99':>24} {'1 row handler p50/p99':>22} {'1000 rows inference p50/p99':>28} {'1000 rows handler p50/p99':>26}")
        for name, (seconds, memory, w1, w1000) in results.items():
            print(f"{name:24} {seconds * 1000:9.1f} ms {memory:6.1f} MiB "
                  f"{w1['inference_us']['p50']:11.1f} / {w1['inference_us']['p99']:7.1f} µs "
                  f"{w1['handler_us']['p50'] / 1000:9.2f} / {w1['handler_us']['p99'] / 1000:6.2f} ms "
                  f"{w1000['inference_us']['p50'] / 1000:14.2f} / {w1000['inference_us']['p99'] / 1000:6.2f} ms "
                  f"{w1000['handler_us']['p50'] / 1000:12.2f} / {w1000['handler_us']['p99'] / 1000:6.2f} ms")
        (rs, rm, r1, r1000), (ps, pm, p1, p1000) = results.values()
        print(f"ratios (python / sluice): cold start {ps / rs:.1f}×, memory {pm / rm:.1f}×, "
              f"1-row inference {p1['inference_us']['p50'] / r1['inference_us']['p50']:.1f}×, "
              f"1000-row inference {p1000['inference_us']['p50'] / r1000['inference_us']['p50']:.1f}×")
        print("targets: cold start ≥ 30×, memory ≥ 4× (≤ 1/4), Sluice 1-row inference ≤ 100 µs")
    finally:
        moto.stdin.close()
        moto.wait()


if __name__ == "__main__":
    main()
