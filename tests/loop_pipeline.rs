//! The loop that makes Sluice Sluice, end to end through the local cloud on an accelerated
//! clock, by running the README's demo: a production model, drifted traffic, the monitor's
//! verdict, the CloudWatch alarm, SNS, remediation, one retraining on the new data, the
//! gate comparing both versions on the same rows, the new version promoted and serving.

use crate::local_cloud;

use serde_json::Value;
use sluice_localcloud::client::HttpClient;
use sluice_tests::project_root;

async fn get(client: &HttpClient, url: &str) -> Value {
    let response = client.send(http::Method::GET, url, &[], Vec::new()).await.unwrap();
    assert_eq!(response.status, 200, "{url}: {}", String::from_utf8_lossy(&response.body));
    response.json()
}

#[tokio::test]
async fn drift_sets_off_one_retraining_and_the_better_version_takes_over() {
    let parameters = [("RetrainWindowDays", "0"), ("ModelRefreshSeconds", "1")];
    let cloud = local_cloud::start_with(&parameters, 120.0).await;
    let report = sluice_cli::demo::run(&cloud, &project_root()).await.expect("the demo runs to the end");
    assert!(report.contains("version 2 Approved (production)"), "{report}");

    let (client, api) = (HttpClient::default(), cloud.api.url());
    let model = get(&client, &format!("{api}/models/iris")).await;
    assert_eq!(model["production_version"], 2, "{model}");
    let events = get(&client, &format!("{api}/models/iris/events")).await;
    let kinds: Vec<&str> = events["events"].as_array().unwrap().iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "retraining_started").count(), 1, "one retraining: {kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "training_started").count(), 2, "the request's and the retraining's");
    let order = ["promoted", "drift_detected", "alarm", "retraining_started", "registered", "promoted"];
    let mut position = 0;
    for kind in &kinds {
        if position < order.len() && *kind == order[position] {
            position += 1;
        }
    }
    assert_eq!(position, order.len(), "the loop happened in order: {kinds:?}");

    // The drift that set it off names the recalibrated features first, with their figures.
    let history = get(&client, &format!("{api}/models/iris/drift?since=2000-01-01T00:00:00Z")).await;
    let drift =
        history["reports"].as_array().unwrap().iter().find(|r| r["verdict"] == "drift").expect("a drift report");
    let top: Vec<&str> =
        drift["top_features"].as_array().unwrap().iter().take(2).filter_map(|f| f["feature"].as_str()).collect();
    assert_eq!(top, ["petal_length", "petal_width"], "{drift}");
    assert!(drift["predictions"].as_u64().unwrap() >= 100, "judged on enough predictions: {drift}");

    // Version 2 was retrained on the recalibrated data only and beat version 1 on its rows.
    let v2 = &model["versions"][0];
    assert!(v2["gate_reason"].as_str().unwrap().starts_with("beats production"), "{v2}");
}
