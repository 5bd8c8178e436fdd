"""The baselines for the ETL bench: CSV -> Parquet (Snappy) with pandas, pyarrow, polars or
DuckDB, each on one thread.

Prints one JSON line like the Rust side: engine, seconds (read + convert + write, after the
interpreter and the library have loaded), input bytes, rows, peak RSS of the process.
"""

import json
import os
import resource
import sys
import time


def main() -> None:
    engine, source, target = sys.argv[1], sys.argv[2], sys.argv[3]
    if engine == "pandas":
        import pandas as pd
        import pyarrow as pa

        # One thread: read_csv's C parser has one; to_parquet's pyarrow conversion would
        # otherwise use a pool as large as the machine.
        pa.set_cpu_count(1)
        pa.set_io_thread_count(1)
        started = time.perf_counter()
        frame = pd.read_csv(source)
        frame.to_parquet(target, compression="snappy", engine="pyarrow")
        rows = len(frame)
    elif engine == "pyarrow":
        import pyarrow as pa
        import pyarrow.csv as csv
        import pyarrow.parquet as pq

        # One thread, as the Rust side uses one.
        pa.set_cpu_count(1)
        pa.set_io_thread_count(1)
        started = time.perf_counter()
        table = csv.read_csv(source, read_options=csv.ReadOptions(use_threads=False))
        pq.write_table(table, target, compression="snappy")
        rows = table.num_rows
    elif engine == "polars":
        # POLARS_MAX_THREADS=1 is set by the caller: it must be set before the import.
        import polars as pl

        started = time.perf_counter()
        frame = pl.read_csv(source, try_parse_dates=True)
        frame.write_parquet(target, compression="snappy")
        rows = frame.height
    elif engine == "duckdb":
        import duckdb

        connection = duckdb.connect()
        connection.execute("SET threads=1")
        started = time.perf_counter()
        connection.execute(
            f"COPY (SELECT * FROM read_csv_auto('{source}')) TO '{target}' (FORMAT parquet, COMPRESSION snappy)"
        )
        rows = connection.execute(f"SELECT count(*) FROM read_parquet('{target}')").fetchone()[0]
    else:
        raise SystemExit(f"unknown engine {engine}")
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"engine": engine, "seconds": seconds, "input_bytes": os.path.getsize(source),
                      "rows_out": rows, "peak_rss_bytes": peak}))


if __name__ == "__main__":
    main()
