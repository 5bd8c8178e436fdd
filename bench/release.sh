#!/usr/bin/env bash
# The release build `sam build` makes for AWS, measured: every function the template declares
# built as Lambda runs it (cargo lambda build --release --arm64, zipped), the build's time on
# this machine and each function's zipped size (the target is at most 10 MB each). Not part
# of CI: a cold release build of every function takes tens of minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The functions by the template's Binary metadata; each is its package's binary.
packages=()
for binary in $(sed -n 's/^ *Binary: *//p' template.yaml); do packages+=(--package "$binary"); done
started=$(date +%s)
PATH="$PWD/.venv/bin:$PATH" cargo lambda build --release --arm64 --locked --output-format zip \
    --lambda-dir target/lambda-zips "${packages[@]}"
echo "release build of $(( ${#packages[@]} / 2 )) functions (arm64): $(( $(date +%s) - started )) s"
for zip in target/lambda-zips/*/bootstrap.zip; do
    printf '%-10s %6.2f MB\n' "$(basename "$(dirname "$zip")")" "$(echo "$(stat -c %s "$zip") / 1000000" | bc -l)"
done
