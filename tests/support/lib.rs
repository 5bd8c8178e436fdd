//! What the integration tests share: one moto server per test binary, a freshly
//! provisioned stack per test (so tests never see each other's writes), and readers that
//! list everything a stack holds, which is how "nothing was written" is proved.

pub mod bundle;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use std::io::Read;

use aws_sdk_dynamodb::types::AttributeValue;
use sluice_aws::AwsClients;
use sluice_core::capture::CaptureRecord;
use sluice_localcloud::moto::MotoServer;
use sluice_localcloud::provision::provision;
use sluice_localcloud::template::Stack;

pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The moto server for this test binary, started on first use. It stops when the binary
/// exits, because it exits when its standard input (held by this process) closes.
pub fn moto_endpoint() -> &'static str {
    static MOTO: OnceLock<MotoServer> = OnceLock::new();
    MOTO.get_or_init(|| MotoServer::start(&project_root()).unwrap_or_else(|err| panic!("{err}"))).endpoint()
}

/// A stack name no other test uses; AWS resource names derive from it.
pub fn unique_stack_name() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("t{}-{n}", std::process::id())
}

/// `template.yaml`'s resources, freshly created on the test moto server.
pub struct TestStack {
    pub clients: AwsClients,
    pub stack: Stack,
}

impl TestStack {
    pub async fn provision() -> Self {
        let clients = AwsClients::for_local_endpoint(moto_endpoint()).await;
        let stack = Stack::load(&project_root().join("template.yaml"), &unique_stack_name()).expect("template loads");
        provision(&clients, &stack).await.expect("stack provisions");
        Self { clients, stack }
    }

    pub fn bucket(&self, logical_id: &str) -> &str {
        &self.stack.buckets.iter().find(|b| b.logical_id == logical_id).expect("bucket in template").name
    }

    pub fn table(&self, logical_id: &str) -> &str {
        &self.stack.tables.iter().find(|t| t.logical_id == logical_id).expect("table in template").name
    }

    /// A function's environment as the template sets it for this stack.
    pub fn environment(&self, function: &str) -> HashMap<String, String> {
        self.stack.function(function).expect("function in template").environment.clone()
    }
}

/// Every object key in a bucket.
pub async fn object_keys(clients: &AwsClients, bucket: &str) -> Vec<String> {
    let output = clients.s3.list_objects_v2().bucket(bucket).send().await.expect("bucket lists");
    output.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect()
}

pub async fn object_bytes(clients: &AwsClients, bucket: &str, key: &str) -> (Vec<u8>, Option<String>) {
    let output = clients.s3.get_object().bucket(bucket).key(key).send().await.expect("object exists");
    let content_type = output.content_type().map(str::to_owned);
    (output.body.collect().await.expect("body reads").into_bytes().to_vec(), content_type)
}

/// Every item in a table.
pub async fn table_items(clients: &AwsClients, table: &str) -> Vec<HashMap<String, AttributeValue>> {
    let output = clients.dynamodb.scan().table_name(table).send().await.expect("table scans");
    output.items().to_vec()
}

/// Asserts the stack's raw bucket and catalog table are both empty.
pub async fn assert_nothing_written(stack: &TestStack, what: &str) {
    let objects = object_keys(&stack.clients, stack.bucket("RawBucket")).await;
    assert!(objects.is_empty(), "{what}: objects were written: {objects:?}");
    let items = table_items(&stack.clients, stack.table("CatalogTable")).await;
    assert!(items.is_empty(), "{what}: catalog items were written: {items:?}");
}

/// Every capture line in the stack's capture bucket, whether the local Firehose has
/// delivered it yet (gzip objects under `capture/`) or it is still staged by the emulator.
pub async fn captured(clients: &AwsClients, bucket: &str) -> Vec<CaptureRecord> {
    let mut records = Vec::new();
    for key in object_keys(clients, bucket).await.iter().filter(|k| !k.starts_with("reports/")) {
        let (bytes, _) = object_bytes(clients, bucket, key).await;
        let mut text = String::new();
        if bytes.starts_with(&[0x1f, 0x8b]) {
            flate2::read::MultiGzDecoder::new(&bytes[..]).read_to_string(&mut text).expect("gzip capture");
        } else {
            text = String::from_utf8(bytes).expect("UTF-8 capture");
        }
        records.extend(text.lines().map(|line| serde_json::from_str(line).expect("a capture line")));
    }
    records
}

pub fn string_attribute<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> &'a str {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str).unwrap_or_default()
}
