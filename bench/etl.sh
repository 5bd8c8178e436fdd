#!/usr/bin/env bash
# ETL benchmark: the same mixed-type CSVs converted to Snappy Parquet by Sluice's ETL code
# path (type inference, cleaning, dedup, rejected rows, profile included), by pandas
# (read_csv + to_parquet), pyarrow (csv + parquet), polars and DuckDB, every engine on one
# thread, in one run. Each conversion runs in a fresh process; the best of RUNS is
# reported, with peak memory and the ratios to each other engine.
#
# Then Sluice alone on the first size's rows written as NDJSON and as xlsx (FORMATS), MB/s of
# each file's own bytes.
#
#   bench/etl.sh                  # 10 MB and 200 MB
#   SIZES="10 200 1000" RUNS=1 bench/etl.sh
#   FORMATS= bench/etl.sh         # CSV only
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=${SIZES:-"10 200"}
runs=${RUNS:-3}
data=target/bench-data
mkdir -p "$data"

if [ ! -x .venv-bench/bin/python ]; then
  echo "bench: creating .venv-bench with pandas and pyarrow..." >&2
  python3 -m venv .venv-bench
  .venv-bench/bin/pip install --quiet --disable-pip-version-check pandas==3.1.1 pyarrow==26.0.1
fi
# Added later than the venv may be: installed into an existing one too.
.venv-bench/bin/python -c 'import polars, duckdb, openpyxl' 2>/dev/null ||
  .venv-bench/bin/pip install --quiet --disable-pip-version-check polars duckdb openpyxl
cargo build --quiet --release --package sluice-etl --example csv_to_parquet

best() {  # best() <command...>: the JSON line of the fastest of $runs runs
  local line best_line="" best_seconds=""
  for _ in $(seq "$runs"); do
    line=$("$@")
    seconds=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["seconds"])' "$line")
    if [ -z "$best_seconds" ] || python3 -c 'import sys; sys.exit(float(sys.argv[1]) >= float(sys.argv[2]))' "$seconds" "$best_seconds"; then
      best_line=$line best_seconds=$seconds
    fi
  done
  echo "$best_line"
}

engines="sluice pyarrow pandas polars duckdb"
results=()
for size in $sizes; do
  csv="$data/mixed-${size}mb.csv"
  [ -f "$csv" ] || { echo "bench: generating $csv..." >&2; python3 bench/make_csv.py "$csv" "$size"; }
  for engine in $engines; do
    if [ "$engine" = sluice ]; then
      results+=("$(best target/release/examples/csv_to_parquet "$csv" "$data/sluice.parquet")")
    else
      results+=("$(best env POLARS_MAX_THREADS=1 .venv-bench/bin/python bench/etl_python.py "$engine" "$csv" "$data/$engine.parquet")")
    fi
  done
done

python3 - $(echo $engines | wc -w) "${results[@]}" <<'PY'
import json, sys
per_size = int(sys.argv[1])
rows = [json.loads(line) for line in sys.argv[2:]]
others = [r["engine"] for r in rows[:per_size] if r["engine"] != "sluice"]
print(f"{'input':>8} {'engine':>8} {'MB/s':>8} {'peak MB':>8} " + " ".join(f"{'vs ' + o:>11}" for o in others))
for start in range(0, len(rows), per_size):
    group = rows[start:start + per_size]
    speed = {r["engine"]: r["input_bytes"] / 1e6 / r["seconds"] for r in group}
    for r in group:
        mb = r["input_bytes"] / 1e6
        ratios = " ".join(f"{speed[r['engine']] / speed[o]:>10.2f}x" for o in others)
        print(f"{mb:>6.0f}MB {r['engine']:>8} {speed[r['engine']]:>8.1f} {r['peak_rss_bytes'] / 1e6:>8.0f} {ratios}")
PY

first=${sizes%% *}
for format in ${FORMATS-ndjson xlsx}; do
  file="$data/mixed-${first}mb.$format"
  [ -f "$file" ] || { echo "bench: writing $file..." >&2; .venv-bench/bin/python bench/make_formats.py "$data/mixed-${first}mb.csv" "$file"; }
  python3 -c 'import json, sys
r = json.loads(sys.argv[2]); mb = r["input_bytes"] / 1e6
print("sluice on %6s: %.0f MB file, %.1f MB/s, peak %.0f MB, %d rows"
      % (sys.argv[1], mb, mb / r["seconds"], r["peak_rss_bytes"] / 1e6, r["rows_out"]))' \
    "$format" "$(best target/release/examples/csv_to_parquet "$file" "$data/sluice.parquet")"
done
