"""Writes a deterministic mixed-type CSV of about the requested size (MB) for the ETL bench.

Columns: integer id, two floats, a boolean, an ISO timestamp, a low-cardinality category,
a free-text string, and a float with 2% nulls — what ML tables usually look like.
"""

import random
import sys


def main() -> None:
    path, megabytes = sys.argv[1], float(sys.argv[2])
    target = int(megabytes * 1_000_000)
    rng = random.Random(42)
    categories = ["red", "green", "blue", "cyan", "magenta", "yellow", "black", "white"]
    written = 0
    with open(path, "w", encoding="utf-8") as out:
        header = "id,amount,score,active,created_at,colour,comment,ratio\n"
        out.write(header)
        written += len(header)
        row = 0
        while written < target:
            row += 1
            ratio = "" if rng.random() < 0.02 else f"{rng.random():.6f}"
            line = (
                f"{row},{rng.uniform(-1000, 1000):.2f},{rng.gauss(0, 1):.8f},"
                f"{'true' if rng.random() < 0.5 else 'false'},"
                f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:"
                f"{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z,"
                f"{rng.choice(categories)},comment number {rng.randint(0, 10**9)},{ratio}\n"
            )
            out.write(line)
            written += len(line)


if __name__ == "__main__":
    main()
