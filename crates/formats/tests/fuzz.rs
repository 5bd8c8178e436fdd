//! Property harness over every parser entry point: any bytes, and bytes shaped like each
//! format with hostile edits, must give rows or an error, never a panic. The tests run a
//! short seeded search; `scripts/fuzz.sh` runs the same harness long with fresh seeds.

use std::ops::ControlFlow;

#[path = "../../../scripts/fuzz_runner.rs"]
mod fuzz_runner;

use fuzz_runner::runner;
use proptest::prelude::*;
use sluice_core::options::{DecimalSeparator, TableLimits};
use sluice_core::values;
use sluice_formats::{ContentKind, ReadOptions, inspect, read_table};

const KINDS: [ContentKind; 6] =
    [ContentKind::Csv, ContentKind::Json, ContentKind::Ndjson, ContentKind::Xlsx, ContentKind::Png, ContentKind::Jpeg];

/// Small limits, so random input reaches them often.
fn tight() -> ReadOptions {
    ReadOptions {
        limits: TableLimits {
            max_columns: 8,
            max_field_bytes: 64,
            max_row_bytes: 256,
            max_depth: 4,
            max_xlsx_cells: 64,
            ..TableLimits::default()
        },
        ..ReadOptions::default()
    }
}

/// Reads `body` as every format under both limit sets; only panics fail.
fn read_every_way(body: &[u8]) {
    for options in [ReadOptions::default(), tight()] {
        for kind in KINDS {
            let mut cells_seen = 0usize;
            let _ = read_table(kind, body, &options, &mut |header, _, cells| {
                assert!(header.len() <= options.limits.max_columns);
                assert!(cells.len() <= options.limits.max_columns.max(header.len()));
                cells_seen += cells.len();
                ControlFlow::Continue(())
            });
            let _ = inspect(kind, body, &options);
        }
    }
}

/// Text that looks like a table: separators, quotes, braces, newlines, digits, dates.
fn tabular_text() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just(",".to_owned()),
        Just("\n".to_owned()),
        Just("\r\n".to_owned()),
        Just("\"".to_owned()),
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just(":".to_owned()),
        Just("\"k\":".to_owned()),
        Just("null".to_owned()),
        Just("2026-11-22T10:15:01Z".to_owned()),
        "-?[0-9]{1,20}(\\.[0-9]{0,8})?".prop_map(|s| s),
        "[a-zA-Z ]{0,12}".prop_map(|s| s),
        any::<char>().prop_map(|c| c.to_string()),
    ];
    proptest::collection::vec(token, 0..200).prop_map(|tokens| tokens.concat())
}

#[test]
fn arbitrary_bytes_never_panic_a_reader() {
    runner()
        .run(&proptest::collection::vec(any::<u8>(), 0..2048), |body| {
            read_every_way(&body);
            Ok(())
        })
        .unwrap();
}

#[test]
fn table_shaped_text_never_panics_a_reader() {
    runner()
        .run(&tabular_text(), |text| {
            read_every_way(text.as_bytes());
            read_every_way(format!("[{text}]").as_bytes());
            read_every_way(format!("a,b,c\n{text}").as_bytes());
            Ok(())
        })
        .unwrap();
}

/// Hands out its bytes a few at a time, so every buffer boundary falls somewhere new.
struct Trickle<'a> {
    bytes: &'a [u8],
    step: usize,
}

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let n = self.step.min(buffer.len()).min(self.bytes.len());
        buffer[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        Ok(n)
    }
}

/// A row as the callback saw it: the header then, its number, its cells.
type SeenRow = (Vec<String>, u64, Vec<Option<String>>);

fn rows_of(kind: ContentKind, input: impl std::io::Read) -> Result<Vec<SeenRow>, String> {
    let mut rows = Vec::new();
    read_table(kind, input, &tight(), &mut |header, number, cells| {
        rows.push((header.to_vec(), number, cells.iter().map(|c| c.map(str::to_owned)).collect()));
        ControlFlow::Continue(())
    })
    .map_err(|err| err.to_string())?;
    Ok(rows)
}

#[test]
fn a_stream_read_in_small_pieces_gives_the_same_rows_or_error_as_one_buffer() {
    runner()
        .run(&(tabular_text(), 1..7usize), |(text, step)| {
            for kind in [ContentKind::Csv, ContentKind::Json, ContentKind::Ndjson] {
                let body = text.as_bytes();
                prop_assert_eq!(rows_of(kind, body), rows_of(kind, Trickle { bytes: body, step }), "{:?}", kind);
            }
            Ok(())
        })
        .unwrap();
}

/// Found by a long run of the property above: whitespace-only pieces before the first JSON
/// value were consumed unseen, and the error named line 1 instead of line 3.
#[test]
fn a_json_error_after_blank_lines_names_its_line_however_the_stream_is_cut() {
    let body = b"\r\n\r\n  [,";
    let whole = rows_of(ContentKind::Json, &body[..]);
    assert_eq!(whole, Err("JSON line 3, column 4: expected value".to_owned()));
    assert_eq!(rows_of(ContentKind::Json, Trickle { bytes: body, step: 1 }), whole);
}

/// Plain CSV lines are split by a byte search, everything else by csv-core; a stream handed
/// out a few bytes at a time has no whole line in its buffer and goes through csv-core
/// alone, so the two must agree on every row, number and error.
#[test]
fn csv_lines_split_by_byte_search_read_as_csv_core_reads_them() {
    let token = prop_oneof![
        Just(","),
        Just("\n"),
        Just("\r\n"),
        Just("\r"),
        Just("\""),
        Just("a"),
        Just("é"),
        Just(" "),
        Just("12"),
        Just("\u{0}"),
    ];
    runner()
        .run(&(proptest::collection::vec(token, 0..300), 1..4usize), |(tokens, step)| {
            let body = format!("h1,h2,h3\n{}", tokens.concat());
            let body = body.as_bytes();
            prop_assert_eq!(rows_of(ContentKind::Csv, body), rows_of(ContentKind::Csv, Trickle { bytes: body, step }));
            Ok(())
        })
        .unwrap();
}

#[test]
fn damaged_workbooks_and_images_never_panic() {
    let samples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../samples");
    let originals: Vec<Vec<u8>> = ["iris.xlsx", "digit-7.png", "digit-3.jpg"]
        .iter()
        .map(|name| std::fs::read(format!("{samples}/{name}")).unwrap())
        .collect();
    let edits = (
        0..originals.len(),
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
        any::<prop::sample::Index>(),
    );
    runner()
        .run(&edits, |(which, flips, cut)| {
            let mut body = originals[which].clone();
            for (at, byte) in flips {
                let index = at.index(body.len());
                body[index] = byte;
            }
            body.truncate(cut.index(body.len() + 1));
            read_every_way(&body);
            Ok(())
        })
        .unwrap();
}

#[test]
fn the_value_parser_never_panics_and_agrees_with_itself() {
    runner()
        .run(&tabular_text(), |text| {
            let _ = values::normalise(&text);
            let _ = values::parse_bool(&text);
            if let Some(integer) = values::parse_integer(&text) {
                // Integers widen to floats: whatever parses as one parses as the other.
                prop_assert_eq!(values::parse_float(&text, DecimalSeparator::Point), Some(integer as f64));
            }
            let _ = values::parse_float(&text, DecimalSeparator::Comma);
            if let Some(micros) = values::parse_timestamp(&text) {
                prop_assert_eq!(values::numeric_feature(&text), Some(values::timestamp_feature(micros)));
            }
            Ok(())
        })
        .unwrap();
}
