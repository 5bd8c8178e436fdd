#!/usr/bin/env python3
"""Smoke test of a deployed Sluice stack through its API, as a client calls it (SigV4).

Ingests a small CSV sample, reads its catalog entry back until the ETL has processed it, and
predicts one of its rows if the model has a production version. Exits non-zero, saying why,
at the first thing that does not work. The delivery pipeline runs it against dev; by hand:

    .venv/bin/python scripts/smoke.py --stack sluice-dev
    .venv/bin/python scripts/smoke.py --api-url http://127.0.0.1:3000   # the local cloud

Needs botocore only (credentials and region from the standard chain).
"""

import argparse
import csv
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "iris.csv"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--stack", help="the deployed stack; its ApiUrl output is the API")
    target.add_argument("--api-url", help="the API's base URL")
    parser.add_argument("--dataset", default="smoke", help="dataset the sample goes into (default: smoke)")
    parser.add_argument("--model", default="iris", help="model to predict with, if it is in production (default: iris)")
    parser.add_argument("--etl-timeout", type=float, default=120, help="seconds to wait for the ETL (default: 120)")
    args = parser.parse_args()

    session = botocore.session.get_session()
    api = Api(args.api_url or stack_api_url(session, args.stack), session.get_credentials())

    body = SAMPLE.read_bytes()
    entry = api.call("POST", f"/datasets/{args.dataset}/records", body, "text/csv", expect=201)
    ingest = f"/datasets/{args.dataset}/ingests/{entry['ingest_id']}"
    print(f"ingested {SAMPLE.name} as {entry['key']} ({entry['size_bytes']} bytes)")

    deadline = time.monotonic() + args.etl_timeout
    while (entry := api.call("GET", ingest, expect=200))["status"] not in ("PROCESSED", "FAILED"):
        if time.monotonic() > deadline:
            fail(f"the ETL did not process {entry['key']} within {args.etl_timeout:.0f} s (status {entry['status']})")
        time.sleep(5)
    if entry["status"] == "FAILED":
        fail(f"the ETL failed {entry['key']}: {entry['processing']['failure_reason']}")
    print(f"read back: {entry['status']}, {entry['processing']['rows_out']} rows curated")

    models = {model["model"]: model for model in api.call("GET", "/models", expect=200)["models"]}
    version = models.get(args.model, {}).get("production_version")
    if version is None:
        print(f"no production version of model {args.model!r}: predict not tried")
        return
    # The sample's first row as it was ingested (predict reads values as the ETL did, and
    # ignores the label column).
    with SAMPLE.open(newline="") as sample:
        row = next(csv.DictReader(sample))
    answer = api.call("POST", f"/models/{args.model}/predict", json.dumps({"rows": [row]}).encode(), "application/json", expect=200)
    print(f"predicted with {args.model} version {answer['version']}: {answer['predictions'][0]['prediction']}")


class Api:
    """The API at `base_url`, every request signed for execute-api when credentials exist
    (the local cloud accepts unsigned ones)."""

    def __init__(self, base_url, credentials):
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        host = urlsplit(self.base_url).hostname
        # https://<api id>.execute-api.<region>.amazonaws.com
        self.region = host.split(".")[2] if ".execute-api." in host else "us-east-1"

    def call(self, method, path, body=None, content_type=None, *, expect):
        headers = {"content-type": content_type} if content_type else {}
        request = AWSRequest(method=method, url=self.base_url + path, data=body, headers=headers)
        if self.credentials is not None:
            SigV4Auth(self.credentials, "execute-api", self.region).add_auth(request)
        prepared = urllib.request.Request(request.url, data=body, headers=dict(request.headers), method=method)
        try:
            with urllib.request.urlopen(prepared, timeout=30) as response:
                status, text = response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read().decode()
        if status != expect:
            fail(f"{method} {path} answered {status}, expected {expect}: {text}")
        return json.loads(text)


def stack_api_url(session, stack):
    outputs = session.create_client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
    for output in outputs:
        if output["OutputKey"] == "ApiUrl":
            return output["OutputValue"]
    fail(f"stack {stack} has no ApiUrl output")


def fail(message):
    print(f"smoke test failed: {message}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    main()
