//! The predict function's cold path as a plain process, for `bench/predict.sh`: builds the
//! handler the way the Lambda `main` does (clients from the environment, settings from
//! variables), answers one API Gateway event (reading the production record in the catalog
//! and fetching its bundle on the way), prints the response and its peak memory, and with `--warm N` answers it N more times
//! and prints the in-handler latencies.
//!
//!   serve_once <event.json> [--warm N]

use std::time::Instant;

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::encodings::Body;
use predict::Predict;
use sluice_aws::AwsClients;
use sluice_aws::settings::ProcessEnv;

/// This process's peak resident memory (`VmHWM`: since `exec`, unlike `ru_maxrss`, which
/// also counts the parent's memory a forked child started with).
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let event = std::fs::read_to_string(&args[1]).expect("event file is readable");
    let warm: usize = match args.get(2).map(String::as_str) {
        Some("--warm") => args[3].parse().expect("--warm takes a count"),
        _ => 0,
    };
    let request: ApiGatewayV2httpRequest = serde_json::from_str(&event).expect("an API Gateway event");
    let predict = Predict::from_settings(&AwsClients::from_env().await, &ProcessEnv).expect("settings");
    let response = predict.handle(request.clone()).await;
    let Some(Body::Text(body)) = &response.body else { panic!("a text body") };
    assert_eq!(response.status_code, 200, "{body}");
    if warm == 0 {
        println!("{body}");
        println!("{}", serde_json::json!({ "peak_rss_kib": peak_rss_kib() }));
        return;
    }
    let (mut handler, mut inference) = (Vec::with_capacity(warm), Vec::with_capacity(warm));
    for _ in 0..warm {
        let started = Instant::now();
        let response = predict.handle(request.clone()).await;
        handler.push(started.elapsed().as_secs_f64() * 1e6);
        let Some(Body::Text(body)) = &response.body else { panic!("a text body") };
        let answer: serde_json::Value = serde_json::from_str(body).expect("JSON");
        inference.push(answer["latency_ms"].as_f64().expect("latency") * 1000.0);
    }
    handler.sort_by(f64::total_cmp);
    inference.sort_by(f64::total_cmp);
    let summary = serde_json::json!({
        "inference_us": {"p50": percentile(&inference, 0.5), "p99": percentile(&inference, 0.99)},
        "handler_us": {"p50": percentile(&handler, 0.5), "p99": percentile(&handler, 0.99)},
    });
    println!("{summary}");
}
