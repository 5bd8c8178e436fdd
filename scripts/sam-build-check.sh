#!/usr/bin/env bash
# `sam build` of one function (ingest) exactly as template.yaml declares it (the
# rust-cargolambda build method, arm64), in debug mode to keep CI short: proves that the
# template's build metadata, cargo-lambda and zig make a Lambda `bootstrap` for the
# template's architecture. The release build of every function is bench/release.sh's job.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/sam-build
log=$out.log
mkdir -p "$(dirname "$log")"
# One clean build, like the tests' (scripts/test.sh): no incremental state on disk.
if ! CARGO_INCREMENTAL=0 PATH="$PWD/.venv/bin:$PATH" SAM_CLI_TELEMETRY=0 SAM_BUILD_MODE=debug \
    sam build IngestFunction --build-dir "$out" >"$log" 2>&1; then
  tail -n 40 "$log" >&2
  echo "sam-build-check: sam build IngestFunction failed (whole log: $log)" >&2
  exit 1
fi
bootstrap=$out/IngestFunction/bootstrap
[ -x "$bootstrap" ] || { echo "sam-build-check: sam build made no $bootstrap" >&2; exit 1; }
# Bytes 18-19 of an ELF header name the machine: 183 is AArch64.
machine=$(od -An -t u2 -j 18 -N 2 "$bootstrap" | tr -d ' ')
[ "$machine" = 183 ] || { echo "sam-build-check: $bootstrap is not arm64 (ELF machine $machine)" >&2; exit 1; }
echo "sam-build-check: $bootstrap is an arm64 Lambda bootstrap"
