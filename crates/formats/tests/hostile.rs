//! Inputs built to exhaust memory, each refused by the readers with the limit it broke,
//! while a counting allocator shows the process never held more than a few megabytes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicUsize, Ordering};

use sluice_core::options::TableLimits;
use sluice_formats::{ContentKind, FormatError, ReadOptions, inspect, read_table};

/// Counts live heap bytes and the peak since the last reset.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { System.dealloc(pointer, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `read` and returns its result with the most heap it held above what was live before.
fn peak_while<T>(read: impl FnOnce() -> T) -> (T, usize) {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let result = read();
    (result, PEAK.load(Ordering::Relaxed) - before)
}

/// A minimal workbook whose first sheet holds `cells` (`(reference, inline text)`).
fn workbook(cells: &[(&str, &str)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut part = |name: &str, text: &str| {
        zip.start_file(name, stored).unwrap();
        zip.write_all(text.as_bytes()).unwrap();
    };
    part(
        "[Content_Types].xml",
        r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>"#,
    );
    part(
        "_rels/.rels",
        r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#,
    );
    part(
        "xl/workbook.xml",
        r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>"#,
    );
    part(
        "xl/_rels/workbook.xml.rels",
        r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>"#,
    );
    let mut rows = String::new();
    for (reference, text) in cells {
        let row: String = reference.chars().skip_while(char::is_ascii_alphabetic).collect();
        rows.push_str(&format!(r#"<row r="{row}"><c r="{reference}" t="inlineStr"><is><t>{text}</t></is></c></row>"#));
    }
    part(
        "xl/worksheets/sheet1.xml",
        &format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>{rows}</sheetData></worksheet>"#
        ),
    );
    zip.finish().unwrap().into_inner()
}

fn read_all(kind: ContentKind, body: &[u8], options: &ReadOptions) -> Result<u64, FormatError> {
    let mut rows = 0;
    read_table(kind, body, options, &mut |_, number, _| {
        rows = number;
        ControlFlow::Continue(())
    })?;
    Ok(rows)
}

fn limit_of(err: &FormatError) -> &str {
    match err {
        FormatError::Limit { what, .. } => what,
        other => panic!("expected a limit error, got {other:?}"),
    }
}

/// Every case in one test: the allocator's counters are process-wide.
#[test]
fn hostile_tables_are_refused_at_their_limit_within_a_small_memory_budget() {
    const BUDGET: usize = 24 * 1024 * 1024;
    let defaults = ReadOptions::default();

    // A valid 1.5 KB workbook that a dense reader expands to 1,048,576 × 16,384 cells.
    let corners = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/corners.xlsx")).unwrap();
    assert!(corners.len() < 1_600, "{} bytes", corners.len());
    let (result, peak) = peak_while(|| read_all(ContentKind::Xlsx, &corners, &defaults));
    assert_eq!(limit_of(&result.unwrap_err()), "max_columns");
    assert!(peak < BUDGET, "xlsx corners: {peak} bytes");

    // A sparse sheet within the limits reads as its rows, skipping the empty ones between.
    let sparse = workbook(&[("A1", "a"), ("A5", "1"), ("A900000", "2")]);
    let (rows, peak) = peak_while(|| read_all(ContentKind::Xlsx, &sparse, &defaults));
    assert_eq!(rows.unwrap(), 2);
    assert!(peak < BUDGET, "sparse xlsx: {peak} bytes");

    // 10,000 records that each bring a new key.
    let keys: String = (0..10_000).map(|i| format!("{{\"k{i}\":0}}\n")).collect();
    let (result, peak) = peak_while(|| read_all(ContentKind::Ndjson, keys.as_bytes(), &defaults));
    let err = result.unwrap_err();
    assert_eq!(limit_of(&err), "max_columns");
    assert!(err.to_string().contains("record 2001"), "{err}");
    assert!(peak < BUDGET, "ndjson keys: {peak} bytes");
    let array = format!("[{}]", keys.trim_end().replace('\n', ","));
    let (result, _) = peak_while(|| read_all(ContentKind::Json, array.as_bytes(), &defaults));
    assert_eq!(limit_of(&result.unwrap_err()), "max_columns");

    // A CSV 20,000 columns wide.
    let wide = format!(
        "{}\n{}\n",
        (0..20_000).map(|i| format!("c{i}")).collect::<Vec<_>>().join(","),
        "1,".repeat(19_999) + "1"
    );
    let (result, peak) = peak_while(|| read_all(ContentKind::Csv, wide.as_bytes(), &defaults));
    let err = result.unwrap_err();
    assert_eq!(limit_of(&err), "max_columns");
    assert!(err.to_string().contains("the header"), "{err}");
    assert!(peak < BUDGET, "wide csv: {peak} bytes");

    // One 64 MB CSV field, one 64 MB JSON record and NDJSON line: stopped at max_row_bytes.
    let huge = "x".repeat(64 * 1024 * 1024);
    let csv = format!("a\n{huge}\n");
    let (result, peak) = peak_while(|| read_all(ContentKind::Csv, csv.as_bytes(), &defaults));
    assert_eq!(limit_of(&result.unwrap_err()), "max_row_bytes");
    assert!(peak < BUDGET, "long csv row: {peak} bytes");
    let ndjson = format!("{{\"a\":\"{huge}\"}}\n");
    let (result, peak) = peak_while(|| read_all(ContentKind::Ndjson, ndjson.as_bytes(), &defaults));
    assert_eq!(limit_of(&result.unwrap_err()), "max_row_bytes");
    assert!(peak < BUDGET, "long ndjson line: {peak} bytes");
    let json = format!("[{{\"a\":1}},{{\"a\":\"{huge}\"}}]");
    let (result, peak) = peak_while(|| read_all(ContentKind::Json, json.as_bytes(), &defaults));
    let err = result.unwrap_err();
    assert_eq!(limit_of(&err), "max_row_bytes");
    assert!(err.to_string().contains("record 2"), "{err}");
    assert!(peak < BUDGET, "long json record: {peak} bytes");
    drop((huge, csv, ndjson, json));

    // A field over max_field_bytes inside a row that is not over max_row_bytes.
    let field = format!("a,b\n1,{}\n", "y".repeat(300 * 1024));
    assert_eq!(limit_of(&read_all(ContentKind::Csv, field.as_bytes(), &defaults).unwrap_err()), "max_field_bytes");

    // Nesting deeper than max_depth, and deeper than the JSON parser's own guard.
    let nested = |depth: usize| format!("{{\"a\":{}1{}}}\n", "[".repeat(depth), "]".repeat(depth));
    assert_eq!(limit_of(&read_all(ContentKind::Ndjson, nested(40).as_bytes(), &defaults).unwrap_err()), "max_depth");
    assert!(matches!(
        read_all(ContentKind::Ndjson, nested(100_000).as_bytes(), &defaults).unwrap_err(),
        FormatError::Ndjson { line: 1, .. }
    ));
    assert_eq!(read_all(ContentKind::Ndjson, nested(5).as_bytes(), &defaults).unwrap(), 1);

    // xlsx cell count and declared decompressed size.
    let cells: Vec<(String, String)> = (1..=20).map(|row| (format!("A{row}"), format!("v{row}"))).collect();
    let borrowed: Vec<(&str, &str)> = cells.iter().map(|(r, t)| (r.as_str(), t.as_str())).collect();
    let twenty = workbook(&borrowed);
    let few_cells =
        ReadOptions { limits: TableLimits { max_xlsx_cells: 10, ..TableLimits::default() }, ..Default::default() };
    assert_eq!(limit_of(&read_all(ContentKind::Xlsx, &twenty, &few_cells).unwrap_err()), "max_xlsx_cells");
    let small_inflation = ReadOptions {
        limits: TableLimits { max_decompressed_bytes: 1_000, ..TableLimits::default() },
        ..Default::default()
    };
    assert_eq!(
        limit_of(&read_all(ContentKind::Xlsx, &twenty, &small_inflation).unwrap_err()),
        "max_decompressed_bytes"
    );
    assert_eq!(read_all(ContentKind::Xlsx, &twenty, &defaults).unwrap(), 19);

    // Ingest's inspection uses the same readers, so it refuses the same inputs.
    assert_eq!(limit_of(&inspect(ContentKind::Xlsx, &corners, &defaults).unwrap_err()), "max_columns");
    assert_eq!(limit_of(&inspect(ContentKind::Ndjson, keys.as_bytes(), &defaults).unwrap_err()), "max_columns");
}
