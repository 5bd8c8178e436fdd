//! Functions publish metrics as Embedded Metric Format log lines; in AWS, CloudWatch Logs
//! turns them into metrics, which alarms then read. Locally the functions run in this
//! process, so their EMF lines are written here: to a file for people, and as
//! `PutMetricData` to the endpoint so the local alarm evaluator sees them too.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::sync::mpsc;

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use serde_json::Value;

/// Routes this process's EMF lines to `file` and to the CloudWatch of `endpoint`. The
/// first call wins (metrics go to one place per process); later calls return `false`.
pub fn forward(endpoint: &str, file: Option<File>) -> bool {
    let (sender, lines) = mpsc::channel::<String>();
    if !sluice_core::metrics::redirect(Box::new(EmfSink { file, sender, pending: Vec::new() })) {
        return false;
    }
    let endpoint = endpoint.to_owned();
    // Its own thread and runtime: it outlives whichever runtime first produced a metric.
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        runtime.block_on(async move {
            let clients = sluice_aws::AwsClients::for_local_endpoint(&endpoint).await;
            let cloudwatch = aws_sdk_cloudwatch::Client::new(&clients.config);
            while let Ok(line) = lines.recv() {
                let mut batch = vec![line];
                batch.extend(lines.try_iter());
                for (namespace, data) in metric_data(&batch) {
                    // PutMetricData takes at most 1000 values per call.
                    for chunk in data.chunks(1000) {
                        let sent = cloudwatch
                            .put_metric_data()
                            .namespace(&namespace)
                            .set_metric_data(Some(chunk.to_vec()))
                            .send()
                            .await;
                        if let Err(err) = sent {
                            tracing::warn!(%namespace, error = %sluice_aws::error_chain(err), "EMF metrics not forwarded");
                        }
                    }
                }
            }
        });
    });
    true
}

/// Collects written bytes into lines, appends them to the file and hands them on.
struct EmfSink {
    file: Option<File>,
    sender: mpsc::Sender<String>,
    pending: Vec<u8>,
}

impl Write for EmfSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(file) = &mut self.file {
            file.write_all(buf)?;
        }
        self.pending.extend_from_slice(buf);
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            // A closed channel (the forwarder died) only stops forwarding.
            let _ = self.sender.send(String::from_utf8_lossy(&line).trim().to_owned());
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.as_mut().map_or(Ok(()), Write::flush)
    }
}

/// The metric values EMF documents declare, by namespace: one datum per metric and
/// dimension set, at the document's timestamp.
pub fn metric_data(lines: &[String]) -> BTreeMap<String, Vec<MetricDatum>> {
    let mut data: BTreeMap<String, Vec<MetricDatum>> = BTreeMap::new();
    for line in lines {
        let Ok(document) = serde_json::from_str::<Value>(line) else { continue };
        let timestamp = document["_aws"]["Timestamp"].as_i64().map(DateTime::from_millis);
        for directive in document["_aws"]["CloudWatchMetrics"].as_array().into_iter().flatten() {
            let Some(namespace) = directive["Namespace"].as_str() else { continue };
            for names in directive["Dimensions"].as_array().into_iter().flatten() {
                let dimensions: Vec<Dimension> = names
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .filter_map(|name| {
                        let value = document[name].as_str()?;
                        Some(Dimension::builder().name(name).value(value).build())
                    })
                    .collect();
                for metric in directive["Metrics"].as_array().into_iter().flatten() {
                    let Some(name) = metric["Name"].as_str() else { continue };
                    let Some(value) = document[name].as_f64() else { continue };
                    let unit = metric["Unit"].as_str().map_or(StandardUnit::None, StandardUnit::from);
                    data.entry(namespace.to_owned()).or_default().push(
                        MetricDatum::builder()
                            .metric_name(name)
                            .set_dimensions(Some(dimensions.clone()))
                            .value(value)
                            .unit(unit)
                            .set_timestamp(timestamp)
                            .build(),
                    );
                }
            }
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use sluice_core::metrics::{Metric, Unit, emf_document};

    use super::*;

    #[test]
    fn emf_documents_become_metric_data() {
        let document = emf_document(
            "Sluice/test",
            &[("Model", "iris")],
            &[Metric { name: "ServerErrors".into(), unit: Unit::Count, value: 1.0 }],
            1_700_000_000_000,
        );
        let data = metric_data(&[document.to_string(), "not json".into()]);
        let datum = &data["Sluice/test"][0];
        assert_eq!(datum.metric_name(), Some("ServerErrors"));
        assert_eq!(datum.value(), Some(1.0));
        assert_eq!(datum.dimensions()[0].value(), Some("iris"));
        assert_eq!(datum.timestamp().map(|t| t.secs()), Some(1_700_000_000));
    }
}
