"""Writes a bench CSV's rows as NDJSON or xlsx (by the target's extension), numbers as
numbers, so the ETL bench can time Sluice on the other tabular formats with the same rows.

    python bench/make_formats.py mixed-10mb.csv mixed-10mb.xlsx
"""

import csv
import json
import sys


def typed(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return None if text == "" else text


def main() -> None:
    source, target = sys.argv[1], sys.argv[2]
    with open(source, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        if target.endswith(".ndjson"):
            with open(target, "w", encoding="utf-8") as out:
                for row in reader:
                    out.write(json.dumps(dict(zip(header, map(typed, row)))) + "\n")
        elif target.endswith(".xlsx"):
            from openpyxl import Workbook

            workbook = Workbook(write_only=True)
            sheet = workbook.create_sheet("data")
            sheet.append(header)
            for row in reader:
                sheet.append([typed(cell) for cell in row])
            workbook.save(target)
        else:
            sys.exit(f"unsupported target {target}")


if __name__ == "__main__":
    main()
