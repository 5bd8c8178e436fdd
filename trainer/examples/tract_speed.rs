//! How fast the serving code runs a bundle the trainer wrote, with tract: loading and
//! optimising the graph, then rows through the feature pipeline and the graph one at a time
//! and a thousand at once (JSON parsing and row checks aside). `bench/train.sh` runs it on
//! the models it trains on the generated sets.
//!
//! Usage: tract_speed MODEL_DIR ROWS_DIR (the trainer's model folder, and Parquet rows).

use std::path::Path;
use std::time::{Duration, Instant};

use sluice_model::{Bundle, BundleLimits, Contents, Frame};
use sluice_serving::{EngineChoice, Predictor};
use sluice_trainer::data::{parquet_files, read_frame};

const SINGLE_ROW_CALLS: usize = 2000;
const BATCH_ROWS: usize = 1000;
const BATCH_CALLS: usize = 30;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let [model_dir, rows_dir] = arguments.as_slice() else {
        return Err("usage: tract_speed MODEL_DIR ROWS_DIR".into());
    };
    let packed = sluice_model::bundle::pack_dir(Path::new(model_dir))?;
    let bundle = Bundle::from_tar_gz(&packed, BundleLimits::for_memory(1 << 30), Contents::All)?;
    let started = Instant::now();
    let predictor = Predictor::load_with(&bundle, EngineChoice::Tract)?;
    let load = started.elapsed();

    let frame = read_frame(&parquet_files(Path::new(rows_dir))?)?;
    let rows: Vec<Frame> = (0..frame.rows().min(500)).map(|row| frame.take(&[row])).collect();
    let predict = |frame: &Frame| predictor.predict_frame(frame).map(|rows| rows.expect("the rows fit the model"));
    let single = timed(SINGLE_ROW_CALLS, |call| predict(&rows[call % rows.len()]));
    let batch = frame.take(&(0..frame.rows().min(BATCH_ROWS)).collect::<Vec<_>>());
    let batches = timed(BATCH_CALLS, |_| predict(&batch));
    println!(
        "model.onnx {} KiB, load {:.1} ms; 1 row p50 {:.1} µs p99 {:.1} µs; {} rows p50 {:.2} ms",
        bundle.onnx.len() / 1024,
        load.as_secs_f64() * 1e3,
        micros(percentile(&single, 0.50)),
        micros(percentile(&single, 0.99)),
        batch.rows(),
        percentile(&batches, 0.50).as_secs_f64() * 1e3,
    );
    Ok(())
}

/// Each call's duration, sorted; a call that fails stops the run.
fn timed<T, E: std::fmt::Debug>(calls: usize, mut call: impl FnMut(usize) -> Result<T, E>) -> Vec<Duration> {
    let mut durations: Vec<Duration> = (0..calls)
        .map(|index| {
            let started = Instant::now();
            call(index).expect("the model predicts");
            started.elapsed()
        })
        .collect();
    durations.sort();
    durations
}

fn percentile(sorted: &[Duration], share: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * share).round() as usize]
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}
