//! Converts one table file (CSV; NDJSON, JSON or xlsx by extension) to Parquet with the ETL
//! code path, streaming as the ETL function does (the inference prefix, then the whole
//! file; Parquet written as it fills), and reports throughput and peak memory as JSON.
//! `bench/etl.sh` runs it beside pandas, pyarrow, polars and DuckDB on the same files.
//!
//!   cargo run --release -p sluice-etl --example csv_to_parquet -- input.csv output.parquet

use std::time::Instant;

use std::fs::File;
use std::io::{BufWriter, Read};

use sluice_core::options::DatasetOptions;
use sluice_etl::convert_table;
use sluice_formats::ContentKind;

fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, input, output] = args.as_slice() else {
        eprintln!("usage: csv_to_parquet <input.csv|.ndjson|.json|.xlsx> <output.parquet>");
        std::process::exit(2);
    };
    let kind = std::path::Path::new(input)
        .extension()
        .and_then(|extension| extension.to_str())
        .and_then(ContentKind::from_extension)
        .unwrap_or(ContentKind::Csv);
    let started = Instant::now();
    let mut open = || File::open(input).map(|file| Box::new(file) as Box<dyn Read>);
    let parquet = BufWriter::new(File::create(output).expect("output is writable"));
    let mut rejected = std::io::sink();
    let options = DatasetOptions::default();
    let (summary, parquet) =
        convert_table(kind, &mut open, None, &options, parquet, &mut rejected).expect("the table converts");
    parquet.into_inner().expect("output is written");
    let seconds = started.elapsed().as_secs_f64();
    let input_bytes = std::fs::metadata(input).expect("input is readable").len();
    println!(
        "{{\"engine\":\"sluice\",\"seconds\":{seconds},\"input_bytes\":{input_bytes},\"rows_out\":{},\"rejected\":{},\"peak_rss_bytes\":{}}}",
        summary.rows_out,
        summary.rows_rejected,
        peak_rss_bytes()
    );
}
