"""The Python counterpart of Sluice's predict function, for bench/predict.sh: what a user
would otherwise deploy (numpy + onnxruntime + boto3). Same job: read the model's production
record in the catalog, fetch and unpack the bundle once per process, check each row against
the manifest, apply the feature pipeline, run the graph, record the request in DynamoDB and
the Firehose capture, answer.

    python predict_python.py <event.json> [--warm N]
"""

import io
import json
import os
import sys
import tarfile
import time
import uuid
from datetime import datetime, timedelta, timezone

import boto3
import numpy as np
import onnxruntime

s3 = boto3.client("s3")
dynamodb = boto3.client("dynamodb")
firehose = boto3.client("firehose")
CACHE = {}


def load(model):
    item = dynamodb.get_item(TableName=os.environ["CATALOG_TABLE"],
                             Key={"pk": {"S": "PRODUCTION"}, "sk": {"S": f"MODEL#{model}"}}).get("Item")
    if not item or item["version"]["N"] == "0":
        return None
    version, uri = int(item["version"]["N"]), item["bundle_uri"]["S"]
    bucket, key = uri[len("s3://"):].split("/", 1)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    files = {}
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
        for member in archive.getmembers():
            name = member.name.removeprefix("./")
            if name in ("manifest.json", "model.onnx"):
                files[name] = archive.extractfile(member).read()
    manifest = json.loads(files["manifest.json"])
    session = onnxruntime.InferenceSession(files["model.onnx"], providers=["CPUExecutionProvider"])
    return {"version": version, "manifest": manifest, "session": session}


def features(manifest, rows):
    steps = manifest["pipeline"]["steps"]
    known = {step["column"] for step in steps} | {manifest["target"]}
    width = sum(1 if s["kind"] == "standardize" else len(s["categories"]) + 1 if s["kind"] == "one_hot" else s["length"] for s in steps)
    out = np.zeros((len(rows), width), dtype=np.float32)
    for r, row in enumerate(rows):
        unknown = set(row) - known
        if unknown:
            raise ValueError(f"row {r}: unknown column {sorted(unknown)[0]!r}")
        offset = 0
        for step in steps:
            column = step["column"]
            if column not in row:
                raise ValueError(f"row {r}: column {column!r} is missing")
            value = row[column]
            if step["kind"] == "standardize":
                if value is not None and not isinstance(value, (int, float)):
                    raise ValueError(f"row {r}: column {column!r} must be a number")
                x = step["mean"] if value is None else float(value)
                out[r, offset] = (x - step["mean"]) / step["std"]
                offset += 1
            elif step["kind"] == "one_hot":
                categories = step["categories"]
                slot = categories.index(value) if value in categories else len(categories)
                out[r, offset + slot] = 1.0
                offset += len(categories) + 1
            else:
                if value is not None:
                    out[r, offset:offset + step["length"]] = value
                offset += step["length"]
    return out


def handler(event, context=None):
    model = event["pathParameters"]["model"]
    rows = json.loads(event["body"])["rows"]
    if model not in CACHE:
        CACHE[model] = load(model)
    serving = CACHE[model]
    if serving is None:
        return {"statusCode": 404, "body": json.dumps({"error": {"code": "not_found"}})}
    manifest, session = serving["manifest"], serving["session"]
    started = time.perf_counter()
    try:
        x = features(manifest, rows)
    except ValueError as err:
        return {"statusCode": 400, "body": json.dumps({"error": {"code": "invalid_row", "message": str(err)}})}
    output = session.run([manifest["onnx_outputs"][0]], {manifest["onnx_input"]: x})[0]
    labels = manifest.get("class_labels", [])
    predictions = [
        {"prediction": labels[int(np.argmax(p))], "probabilities": dict(zip(labels, map(float, p)))} if labels
        else {"prediction": float(p[0])}
        for p in output
    ]
    latency_ms = (time.perf_counter() - started) * 1000
    request_id = uuid.uuid4().hex
    now = datetime.now(timezone.utc)
    for row, p in enumerate(predictions):
        p["prediction_id"] = f"{request_id}-{row}"
    lines = "".join(json.dumps({"kind": "prediction", "prediction_id": p["prediction_id"], "time": now.isoformat(),
                                "model": model, "version": serving["version"], "input": i, "output": p,
                                "latency_ms": latency_ms}) + "\n" for i, p in zip(rows, predictions))
    firehose.put_record_batch(DeliveryStreamName=os.environ["CAPTURE_STREAM"], Records=[{"Data": lines.encode()}])
    item = {
        "pk": {"S": request_id}, "sk": {"S": "PREDICTION"}, "model": {"S": model},
        "version": {"N": str(serving["version"])}, "time": {"S": now.isoformat()},
        "expires_at": {"N": str(int((now + timedelta(days=30)).timestamp()))},
    }
    recorded_rows = json.dumps([{"input": i, "output": p} for i, p in zip(rows, predictions)])
    if len(recorded_rows) <= 300 * 1024:  # DynamoDB items stop at 400 KB; big requests live in the capture
        item["rows"] = {"S": recorded_rows}
    dynamodb.put_item(TableName=os.environ["PREDICTIONS_TABLE"], Item=item)
    body = {"model": model, "version": serving["version"], "request_id": request_id,
            "predictions": predictions, "latency_ms": latency_ms}
    return {"statusCode": 200, "body": json.dumps(body)}


def main():
    event = json.load(open(sys.argv[1]))
    warm = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[2] == "--warm" else 0
    response = handler(event)
    assert response["statusCode"] == 200, response
    if not warm:
        print(response["body"])
        status = open("/proc/self/status").read()
        peak = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
        print(json.dumps({"peak_rss_kib": peak}))
        return
    handler_us, inference_us = [], []
    for _ in range(warm):
        started = time.perf_counter()
        response = handler(event)
        handler_us.append((time.perf_counter() - started) * 1e6)
        inference_us.append(json.loads(response["body"])["latency_ms"] * 1000)
    pick = lambda xs, q: sorted(xs)[round((len(xs) - 1) * q)]
    print(json.dumps({
        "inference_us": {"p50": pick(inference_us, 0.5), "p99": pick(inference_us, 0.99)},
        "handler_us": {"p50": pick(handler_us, 0.5), "p99": pick(handler_us, 0.99)},
    }))


if __name__ == "__main__":
    main()
