//! Converts one CSV file to Parquet with the ETL code path and reports throughput and peak
//! memory as JSON. `bench/etl.sh` runs it beside pandas and pyarrow on the same files.
//!
//!   cargo run --release -p sluice-etl --example csv_to_parquet -- input.csv output.parquet

use std::time::Instant;

use sluice_core::options::DatasetOptions;
use sluice_etl::process_table;
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
        eprintln!("usage: csv_to_parquet <input.csv> <output.parquet>");
        std::process::exit(2);
    };
    let started = Instant::now();
    let body = std::fs::read(input).expect("input is readable");
    let outcome = process_table(ContentKind::Csv, &body, None, &DatasetOptions::default()).expect("CSV converts");
    std::fs::write(output, &outcome.parquet).expect("output is writable");
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{{\"engine\":\"sluice\",\"seconds\":{seconds},\"input_bytes\":{},\"rows_out\":{},\"rejected\":{},\"peak_rss_bytes\":{}}}",
        body.len(),
        outcome.rows_out,
        outcome.rejected.len(),
        peak_rss_bytes()
    );
}
