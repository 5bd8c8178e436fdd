#!/usr/bin/env bash
# A standalone moto server for working with the local cloud by hand (aws CLI, boto3, or
# `sluice local up --endpoint ...`). `sluice local up` and the tests start their own and
# do not need this.
#
#   localstack/moto.sh start    # creates .venv if needed, starts moto on a free loopback port
#   eval "$(localstack/moto.sh env)"   # AWS_ENDPOINT_URL + dummy credentials in this shell
#   localstack/moto.sh status
#   localstack/moto.sh stop
set -euo pipefail
cd "$(dirname "$0")/.."
state=.local
pidfile=$state/moto.pid
urlfile=$state/moto.url

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

case "${1:-}" in
  start)
    if running; then echo "moto already running at $(cat "$urlfile")"; exit 0; fi
    scripts/setup.sh
    mkdir -p "$state"
    rm -f "$urlfile"
    nohup .venv/bin/python localstack/moto_server.py >"$urlfile" 2>"$state/moto.log" </dev/null &
    echo $! >"$pidfile"
    for _ in $(seq 1 100); do
      if [ -s "$urlfile" ]; then echo "moto running at $(cat "$urlfile") (pid $(cat "$pidfile"))"; exit 0; fi
      running || break
      sleep 0.1
    done
    echo "moto did not start; see $state/moto.log" >&2
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
    exit 1
    ;;
  stop)
    if ! running; then echo "moto is not running"; rm -f "$pidfile" "$urlfile"; exit 0; fi
    pid=$(cat "$pidfile")
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile" "$urlfile"
    echo "moto stopped"
    ;;
  status)
    if running; then echo "moto running at $(cat "$urlfile") (pid $(cat "$pidfile"))"; else echo "moto is not running"; exit 1; fi
    ;;
  env)
    running || { echo "moto is not running; run: localstack/moto.sh start" >&2; exit 1; }
    echo "export AWS_ENDPOINT_URL=$(cat "$urlfile") AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1"
    ;;
  *)
    echo "usage: $0 start|stop|status|env" >&2
    exit 2
    ;;
esac
