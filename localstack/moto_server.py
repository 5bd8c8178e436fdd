"""Runs moto server on a free loopback port and prints its endpoint URL on the first line.

Used by `localstack/moto.sh`, by `sluice local up` and by the tests. With --exit-with-stdin
the server stops when its standard input closes, so a parent that dies (a test binary, a
killed CLI) can never leave a moto server running behind it.

DynamoDB requests are served one at a time. moto checks a condition and then writes, with
nothing between the two; served from several threads at once, two conditional writes
(or transactions) on one item can both pass their checks, where DynamoDB lets only one.
Serialising DynamoDB keeps conditional writes atomic, as Sluice's idempotency, claims and
profile merges rely on; S3 and the other services stay concurrent.
"""

import argparse
import logging
import signal
import sys
import threading
import urllib.request

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server


def dynamodb_serialised(app):
    """`app`, with DynamoDB requests (JSON protocol, `X-Amz-Target: DynamoDB_…`) one at a time."""
    lock = threading.Lock()

    def serve(environ, start_response):
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            return app(environ, start_response)
        with lock:
            # The whole response is produced inside the lock.
            return list(app(environ, start_response))

    return serve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--exit-with-stdin", action="store_true")
    args = parser.parse_args()
    # One line per request on stderr drowns what the caller prints; errors still show.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    app = dynamodb_serialised(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", args.port, app, threaded=True, request_handler=MotoRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    endpoint = f"http://{host}:{port}"
    # Answering a real request, not just listening, is what "ready" means to callers.
    urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=10).read()
    print(endpoint, flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if args.exit_with_stdin:
        threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    stop.wait()
    server.shutdown()


if __name__ == "__main__":
    main()
