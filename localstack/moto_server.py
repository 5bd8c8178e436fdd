"""Runs moto server on a free loopback port and prints its endpoint URL on the first line.

Used by `localstack/moto.sh`, by `sluice local up` and by the tests. With --exit-with-stdin
the server stops when its standard input closes, so a parent that dies (a test binary, a
killed CLI) can never leave a moto server running behind it.
"""

import argparse
import logging
import signal
import sys
import threading
import urllib.request

from moto.server import ThreadedMotoServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--exit-with-stdin", action="store_true")
    args = parser.parse_args()
    # One line per request on stderr drowns what the caller prints; errors still show.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
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
    server.stop()


if __name__ == "__main__":
    main()
