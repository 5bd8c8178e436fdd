#!/usr/bin/env bash
# The release build `sam build` makes for AWS, measured: every function's binary built for
# the template's architecture (arm64) in one cargo-lambda run, its build time on this
# machine, and the size of each function's zip (what Lambda stores and cold-starts from;
# the limit to meet is 10 MB). Not part of CI: a cold release build takes tens of minutes.
#
#   bench/release.sh            # from a clean target/lambda-release
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
target=target/lambda-release
# Every function the template declares, by its Binary metadata.
mapfile -t binaries < <(sed -n 's/^ *Binary: *//p' template.yaml)
packages=()
for binary in "${binaries[@]}"; do packages+=(--package "$binary"); done
started=$(date +%s)
CARGO_TARGET_DIR=$target cargo lambda build --release --arm64 --locked "${packages[@]}"
seconds=$(( $(date +%s) - started ))
echo "release build of ${#binaries[@]} functions (arm64): ${seconds} s"
printf '%-10s %12s %12s\n' function "binary MB" "zipped MB"
for binary in "${binaries[@]}"; do
  bootstrap=$target/lambda/$binary/bootstrap
  zip=$(mktemp -d)/bootstrap.zip
  (cd "$(dirname "$bootstrap")" && python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED).write("bootstrap")' "$zip")
  python3 -c 'import os, sys; print(f"{sys.argv[1]:<10} {os.path.getsize(sys.argv[2])/1e6:12.1f} {os.path.getsize(sys.argv[3])/1e6:12.1f}")' \
    "$binary" "$bootstrap" "$zip"
  rm -r "$(dirname "$zip")"
done
