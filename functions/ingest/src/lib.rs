//! The `ingest` function: the API through which data enters Sluice.
//!
//! Routes (API Gateway HTTP API, payload format 2.0):
//! - `POST /datasets/{dataset}/records`: the body is stored unchanged in the raw zone and
//!   recorded in the catalog with status `RECEIVED`.
//! - `POST /datasets/{dataset}/uploads`: a presigned PUT URL for files too large for the API.
//! - `GET /datasets/{dataset}/ingests/{id}`: the catalog entry.
//! - `GET /datasets`: the datasets that have objects.
//! - `GET /datasets/{dataset}`: schema, options, object and row counts, merged profile.
//! - `GET /datasets/{dataset}/rejected`: the latest rejected rows, with their reasons.
//! - `PUT /datasets/{dataset}/options`: how the ETL reads the dataset and evolves its schema.
//!
//! A request is validated completely before anything is written, so a rejected request
//! leaves no trace in S3 or DynamoDB.

mod error;

use std::time::{Duration, Instant};

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use http::HeaderValue;
use serde::Deserialize;
use serde_json::json;
use sluice_aws::http_api::{BodyError, body_bytes, json_response, path_parameter, query_count};
use sluice_aws::settings::{SettingsError, Vars, parsed_or, required};
use sluice_aws::{AwsClients, Catalog, Claim, CuratedZone, IdempotencyRecord, RawZone, StoreError, StoredResponse};
use sluice_core::metrics::{Metric, Unit, publish};
use sluice_core::options::DatasetOptions;
use sluice_core::{CatalogEntry, DatasetName, IngestId, IngestSource, IngestStatus, Sha256Digest, raw_object_key};
use sluice_formats::{ContentKind, ReadOptions, inspect};
use time::OffsetDateTime;

pub use error::ApiError;

/// The largest body `POST /records` accepts. Lambda's synchronous payload limit is 6 MB for
/// the whole event, and API Gateway base64-encodes binary bodies (4/3 growth), so 4 MiB of
/// raw bytes is what reliably fits.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
const DEFAULT_UPLOAD_URL_TTL_SECONDS: u64 = 15 * 60;

pub const ROUTE_POST_RECORDS: &str = "POST /datasets/{dataset}/records";
pub const ROUTE_POST_UPLOADS: &str = "POST /datasets/{dataset}/uploads";
pub const ROUTE_GET_INGEST: &str = "GET /datasets/{dataset}/ingests/{id}";
pub const ROUTE_LIST_DATASETS: &str = "GET /datasets";
pub const ROUTE_GET_DATASET: &str = "GET /datasets/{dataset}";
pub const ROUTE_GET_REJECTED: &str = "GET /datasets/{dataset}/rejected";
pub const ROUTE_PUT_OPTIONS: &str = "PUT /datasets/{dataset}/options";

/// Longest image label accepted (`?label=` or the upload request's `label`).
const MAX_LABEL_LEN: usize = 128;

pub struct Ingest {
    raw_zone: RawZone,
    curated: CuratedZone,
    catalog: Catalog,
    max_body_bytes: usize,
    upload_url_ttl: Duration,
}

/// What `POST /uploads` takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadRequest {
    content_type: String,
    /// The file's exact size: the URL is signed for this `Content-Length`, so S3 refuses
    /// any other, and a size over the dataset's `max_object_bytes` is refused here.
    size_bytes: u64,
    /// Ground-truth label of an image.
    #[serde(default)]
    label: Option<String>,
}

impl Ingest {
    /// Reads `RAW_BUCKET`, `CURATED_BUCKET`, `CATALOG_TABLE` and the optional
    /// `MAX_BODY_BYTES` and `UPLOAD_URL_TTL_SECONDS`, as `template.yaml` sets them.
    pub fn from_settings(clients: &AwsClients, vars: &dyn Vars) -> Result<Self, SettingsError> {
        Ok(Self {
            raw_zone: RawZone::new(clients.s3.clone(), required(vars, "RAW_BUCKET")?),
            curated: CuratedZone::new(clients.s3.clone(), required(vars, "CURATED_BUCKET")?),
            catalog: Catalog::new(clients.dynamodb.clone(), required(vars, "CATALOG_TABLE")?),
            max_body_bytes: parsed_or(vars, "MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)?,
            upload_url_ttl: Duration::from_secs(parsed_or(
                vars,
                "UPLOAD_URL_TTL_SECONDS",
                DEFAULT_UPLOAD_URL_TTL_SECONDS,
            )?),
        })
    }

    pub async fn handle(&self, request: ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
        let started = Instant::now();
        let route = request.route_key.clone().unwrap_or_default();
        let request_id = request.request_context.request_id.clone().unwrap_or_default();
        let result = match route.as_str() {
            ROUTE_POST_RECORDS => self.post_records(&request).await,
            ROUTE_POST_UPLOADS => self.post_upload(&request).await,
            ROUTE_GET_INGEST => self.get_ingest(&request).await,
            ROUTE_LIST_DATASETS => self.list_datasets().await,
            ROUTE_GET_DATASET => self.get_dataset(&request).await,
            ROUTE_GET_REJECTED => self.get_rejected(&request).await,
            ROUTE_PUT_OPTIONS => self.put_options(&request).await,
            _ => Err(ApiError::RouteNotFound(route.clone())),
        };
        let response = result.unwrap_or_else(|err| {
            match &err {
                ApiError::Store(store) => tracing::error!(%route, %request_id, error = %store, "request failed"),
                client => {
                    tracing::info!(%route, %request_id, code = client.code(), error = %client, "request rejected")
                }
            }
            err.to_response(&request_id)
        });
        let status = response.status_code;
        let latency_ms = started.elapsed().as_secs_f64() * 1e3;
        tracing::info!(%route, %request_id, status, latency_ms, "request handled");
        publish(
            "Sluice",
            &[("Function", "ingest")],
            &[
                Metric { name: "Requests".into(), unit: Unit::Count, value: 1.0 },
                Metric {
                    name: "ClientErrors".into(),
                    unit: Unit::Count,
                    value: f64::from(u8::from((400..500).contains(&status))),
                },
                Metric { name: "ServerErrors".into(), unit: Unit::Count, value: f64::from(u8::from(status >= 500)) },
                Metric { name: "Latency".into(), unit: Unit::Milliseconds, value: latency_ms },
            ],
        );
        response
    }

    async fn post_records(&self, request: &ApiGatewayV2httpRequest) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let dataset = dataset(request)?;
        let content_type = header(request, "content-type").ok_or(ApiError::MissingContentType)?;
        let kind = ContentKind::from_content_type(content_type)?;
        let body = self.body(request)?;
        let label = label(kind, request.query_string_parameters.first("label"))?;
        // The ETL's readers under the dataset's limits: what is accepted here, the ETL can read.
        let options = self.catalog.options(&dataset).await?;
        let inspection = inspect(kind, &body, &ReadOptions::from(&options))?;
        let digest = Sha256Digest::of(&body);
        let label_bytes = label.as_deref().unwrap_or_default().as_bytes();
        let idempotency =
            idempotency(request, &dataset, &[kind.mime().as_bytes(), digest.hex.as_bytes(), label_bytes])?;

        self.idempotently(idempotency, |now| async move {
            let ingest_id = IngestId::generate();
            let key = raw_object_key(&dataset, now, ingest_id, kind.extension());
            let entry = CatalogEntry {
                dataset: dataset.clone(),
                ingest_id,
                bucket: self.raw_zone.bucket().to_owned(),
                key: key.clone(),
                content_type: kind.mime().to_owned(),
                status: IngestStatus::Received,
                source: IngestSource::Api,
                received_at: now,
                size_bytes: Some(body.len() as u64),
                sha256: Some(digest.hex.clone()),
                row_count: inspection.rows,
                label: label.clone(),
                processing: None,
            };
            let size = body.len();
            self.raw_zone.put(&key, body, kind.mime(), &digest, label.as_deref()).await?;
            tracing::info!(%dataset, %ingest_id, %key, size, rows = ?inspection.rows, "stored in raw zone");
            publish(
                "Sluice",
                &[("Function", "ingest"), ("Dataset", dataset.as_str())],
                &[
                    Metric { name: "IngestedObjects".into(), unit: Unit::Count, value: 1.0 },
                    Metric { name: "IngestedBytes".into(), unit: Unit::Bytes, value: size as f64 },
                ],
            );
            Ok(Created { entry, body: None, stored_object: Some(key) })
        })
        .await
    }

    async fn post_upload(&self, request: &ApiGatewayV2httpRequest) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let dataset = dataset(request)?;
        let body = self.body(request)?;
        let upload: UploadRequest =
            serde_json::from_slice(&body).map_err(|err| ApiError::InvalidUploadRequest(err.to_string()))?;
        let kind = ContentKind::from_content_type(&upload.content_type)?;
        let label = label(kind, upload.label.as_deref())?;
        let label_bytes = label.as_deref().unwrap_or_default().as_bytes();
        let size = upload.size_bytes;
        let idempotency = idempotency(request, &dataset, &[kind.mime().as_bytes(), label_bytes, &size.to_be_bytes()])?;
        let max = self.catalog.options(&dataset).await?.limits.max_object_bytes;
        if size == 0 {
            return Err(ApiError::InvalidUploadRequest("size_bytes is 0: an empty file holds no records".into()));
        }
        if size > max {
            return Err(ApiError::UploadTooLarge { size, max });
        }

        self.idempotently(idempotency, |now| async move {
            let ingest_id = IngestId::generate();
            let key = raw_object_key(&dataset, now, ingest_id, kind.extension());
            let presigned = self.raw_zone.presign_put(&key, kind.mime(), label.as_deref(), size, self.upload_url_ttl).await?;
            let expires_at = now + self.upload_url_ttl;
            let entry = CatalogEntry {
                dataset: dataset.clone(),
                ingest_id,
                bucket: self.raw_zone.bucket().to_owned(),
                key,
                content_type: kind.mime().to_owned(),
                status: IngestStatus::AwaitingUpload,
                source: IngestSource::PresignedUpload,
                received_at: now,
                size_bytes: None,
                sha256: None,
                row_count: None,
                label: label.clone(),
                processing: None,
            };
            let headers: serde_json::Map<String, serde_json::Value> =
                presigned.headers.into_iter().map(|(name, value)| (name, value.into())).collect();
            let upload = json!({
                "method": "PUT",
                "url": presigned.url,
                "headers": headers,
                "expires_at": expires_at.format(&time::format_description::well_known::Rfc3339).expect("UTC times format"),
            });
            Ok(Created { entry, body: Some(upload), stored_object: None })
        })
        .await
    }

    async fn get_ingest(&self, request: &ApiGatewayV2httpRequest) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let dataset = dataset(request)?;
        let id: IngestId = path_parameter(request, "id").parse()?;
        let entry = self
            .catalog
            .ingest(&dataset, id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("dataset {dataset} has no ingest {id}")))?;
        Ok(json_response(200, &serde_json::to_value(&entry).expect("catalog entries serialise")))
    }

    async fn list_datasets(&self) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let datasets: Vec<_> =
            self.raw_zone.datasets().await?.into_iter().map(|name| json!({ "dataset": name })).collect();
        Ok(json_response(200, &json!({ "datasets": datasets })))
    }

    async fn get_dataset(&self, request: &ApiGatewayV2httpRequest) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let dataset = dataset(request)?;
        let (ingests, schema, options, profile) = tokio::try_join!(
            self.catalog.ingests(&dataset),
            self.catalog.schema(&dataset),
            self.catalog.options(&dataset),
            self.dataset_profile(&dataset),
        )?;
        if ingests.is_empty() && schema.is_none() {
            return Err(ApiError::NotFound(format!("dataset {dataset} has no data yet")));
        }
        let mut by_status = serde_json::Map::new();
        let (mut rows_in, mut rows_out, mut rows_rejected) = (0, 0, 0);
        for entry in &ingests {
            let count = by_status.entry(entry.status.as_str()).or_insert(json!(0));
            *count = json!(count.as_u64().unwrap_or(0) + 1);
            if let Some(processing) = &entry.processing {
                rows_in += processing.rows_in.unwrap_or(0);
                rows_out += processing.rows_out.unwrap_or(0);
                rows_rejected += processing.rows_rejected.unwrap_or(0);
            }
        }
        let profile: serde_json::Value = match profile {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|err| {
                ApiError::Store(StoreError {
                    service: "S3",
                    operation: "read dataset profile",
                    message: err.to_string(),
                })
            })?,
            None => serde_json::Value::Null,
        };
        let body = json!({
            "dataset": dataset,
            "schema": schema.map(|s| json!({ "version": s.version, "fields": s.schema.fields })),
            "options": options,
            "objects": { "total": ingests.len(), "by_status": by_status },
            "rows": { "in": rows_in, "out": rows_out, "rejected": rows_rejected },
            "profile": profile,
        });
        Ok(json_response(200, &body))
    }

    /// The rejected rows of the dataset's newest objects first, each with its object's ingest
    /// id, its row number and the reason; `total` counts every rejected row.
    async fn get_rejected(&self, request: &ApiGatewayV2httpRequest) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let dataset = dataset(request)?;
        let limit = query_count(request, "limit", DEFAULT_REJECTED_ROWS, MAX_REJECTED_ROWS)
            .map_err(ApiError::InvalidRequest)?;
        let ingests = self.catalog.ingests(&dataset).await?;
        if ingests.is_empty() {
            return Err(ApiError::NotFound(format!("dataset {dataset} has no data yet")));
        }
        let total: u64 = ingests.iter().filter_map(|e| e.processing.as_ref()?.rows_rejected).sum();
        let mut rows = Vec::new();
        let mut budget = REJECTED_BYTES_READ;
        let with_rejected =
            ingests.iter().rev().filter_map(|e| Some((e, e.processing.as_ref()?.rejected_key.as_deref()?)));
        for (entry, key) in with_rejected.take(MAX_REJECTED_OBJECTS) {
            if rows.len() >= limit || budget == 0 {
                break;
            }
            let Some(start) = self.curated.get_start(key, budget).await? else { continue };
            let whole = (start.len() as u64) < budget;
            budget -= start.len() as u64;
            rows.extend(first_json_lines(&start, whole, limit - rows.len()).into_iter().map(|mut row| {
                row["ingest_id"] = json!(entry.ingest_id);
                row
            }));
        }
        Ok(json_response(200, &json!({ "dataset": dataset, "total": total, "rows": rows })))
    }

    /// The current merged profile. The ETL removes a version once the next one is current,
    /// so a version that vanished between the two reads means reading the pointer again.
    async fn dataset_profile(&self, dataset: &DatasetName) -> Result<Option<Vec<u8>>, StoreError> {
        for _ in 0..3 {
            let Some(pointer) = self.catalog.profile_pointer(dataset).await? else { return Ok(None) };
            if let Some(bytes) = self.curated.get(&pointer.key).await? {
                return Ok(Some(bytes));
            }
        }
        Ok(None)
    }

    async fn put_options(&self, request: &ApiGatewayV2httpRequest) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let dataset = dataset(request)?;
        let options: DatasetOptions =
            serde_json::from_slice(&self.body(request)?).map_err(|err| ApiError::InvalidOptions(err.to_string()))?;
        options.validate().map_err(ApiError::InvalidOptions)?;
        self.catalog.save_options(&dataset, &options).await?;
        Ok(json_response(200, &json!({ "dataset": dataset, "options": options })))
    }

    /// The request body as bytes, refused if over the limit before it is decoded.
    fn body(&self, request: &ApiGatewayV2httpRequest) -> Result<Vec<u8>, ApiError> {
        body_bytes(request, self.max_body_bytes).map_err(|err| match err {
            BodyError::TooLarge { size, max } => ApiError::PayloadTooLarge { size, max },
            BodyError::InvalidBase64(reason) => ApiError::InvalidBase64(reason),
        })
    }

    /// Runs `create` at most once per idempotency key: a retry gets the first response back
    /// and writes nothing. On failure, whatever `create` stored is removed and the key freed.
    async fn idempotently<F, Fut>(
        &self,
        idempotency: Option<IdempotencyRecord>,
        create: F,
    ) -> Result<ApiGatewayV2httpResponse, ApiError>
    where
        F: FnOnce(OffsetDateTime) -> Fut,
        Fut: Future<Output = Result<Created, ApiError>>,
    {
        let now = OffsetDateTime::now_utc();
        if let Some(record) = &idempotency {
            match self.catalog.claim(record, now).await? {
                Claim::Acquired => {}
                Claim::InProgress => return Err(ApiError::RequestInProgress),
                Claim::Completed { fingerprint, .. } if fingerprint != record.fingerprint => {
                    return Err(ApiError::IdempotencyKeyReused);
                }
                Claim::Completed { response, .. } => return Ok(replayed(response)),
            }
        }
        let result = async {
            let created = create(now).await?;
            let response = created.response_body();
            let stored = StoredResponse { status: 201, body: response.to_string() };
            let completing = idempotency.as_ref().map(|record| (record, &stored));
            if let Err(err) = self.catalog.record(&created.entry, completing).await {
                if let Some(key) = &created.stored_object {
                    self.forget_object(key).await;
                }
                return Err(err.into());
            }
            Ok(json_response(201, &response))
        }
        .await;
        if result.is_err()
            && let Some(record) = &idempotency
            && let Err(err) = self.catalog.release(record).await
        {
            tracing::error!(error = %err, "could not release idempotency key; it frees itself when its claim expires");
        }
        result
    }

    async fn forget_object(&self, key: &str) {
        if let Err(err) = self.raw_zone.delete(key).await {
            tracing::error!(%key, error = %err, "could not remove an object whose catalog write failed");
        }
    }
}

/// What a successful POST made: the catalog entry, anything extra for the response, and
/// the raw-zone object to remove if the catalog write fails.
struct Created {
    entry: CatalogEntry,
    body: Option<serde_json::Value>,
    stored_object: Option<String>,
}

impl Created {
    fn response_body(&self) -> serde_json::Value {
        let mut body = serde_json::to_value(&self.entry).expect("catalog entries serialise");
        if let Some(upload) = &self.body {
            body["upload"] = upload.clone();
        }
        body
    }
}

/// Rejected rows a request returns by default, and at most (`?limit=`).
const DEFAULT_REJECTED_ROWS: usize = 100;
const MAX_REJECTED_ROWS: usize = 1_000;
/// What one request reads of the rejected-rows files, newest object first: the first lines
/// of at most this many files, and at most this many bytes in all, so that it answers within
/// the API's time and Lambda's 6 MB response.
const MAX_REJECTED_OBJECTS: usize = 50;
const REJECTED_BYTES_READ: u64 = 2 * 1024 * 1024;

/// The first `limit` JSON lines of `start`, the beginning of an NDJSON file (`whole` when it
/// is the entire file); a line cut off where `start` ends is left out.
fn first_json_lines(start: &[u8], whole: bool, limit: usize) -> Vec<serde_json::Value> {
    let complete =
        if whole { start } else { &start[..start.iter().rposition(|&b| b == b'\n').map_or(0, |end| end + 1)] };
    complete
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .filter_map(|line| serde_json::from_slice(line).ok())
        .take(limit)
        .collect()
}

fn replayed(stored: StoredResponse) -> ApiGatewayV2httpResponse {
    let body: serde_json::Value = serde_json::from_str(&stored.body).unwrap_or(serde_json::Value::String(stored.body));
    let mut response = json_response(stored.status, &body);
    response.headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}

/// A label is ground truth for an image; tables carry theirs as a column.
fn label(kind: ContentKind, label: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(label) = label else { return Ok(None) };
    if !kind.is_image() {
        return Err(ApiError::InvalidLabel("labels go with images; a table carries its labels as a column".into()));
    }
    if label.is_empty() || label.chars().count() > MAX_LABEL_LEN || label.chars().any(char::is_control) {
        return Err(ApiError::InvalidLabel(format!(
            "a label is 1 to {MAX_LABEL_LEN} characters without control characters"
        )));
    }
    Ok(Some(label.to_owned()))
}

fn header<'a>(request: &'a ApiGatewayV2httpRequest, name: &str) -> Option<&'a str> {
    request.headers.get(name).and_then(|value| value.to_str().ok())
}

fn dataset(request: &ApiGatewayV2httpRequest) -> Result<DatasetName, ApiError> {
    Ok(DatasetName::parse(path_parameter(request, "dataset"))?)
}

/// The request's idempotency record, if it sent an `Idempotency-Key`. The fingerprint covers
/// the route, the dataset and `parts` (what the request asks for), so a key reused for a
/// different request is told apart from a retry.
fn idempotency(
    request: &ApiGatewayV2httpRequest,
    dataset: &DatasetName,
    parts: &[&[u8]],
) -> Result<Option<IdempotencyRecord>, ApiError> {
    let Some(key) = request.headers.get("idempotency-key") else { return Ok(None) };
    let key = key.to_str().map_err(|_| ApiError::InvalidIdempotencyKey)?;
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::InvalidIdempotencyKey);
    }
    let route = request.route_key.as_deref().unwrap_or_default();
    let mut fingerprint_input = Vec::new();
    for part in [route.as_bytes(), dataset.as_str().as_bytes()].iter().chain(parts) {
        fingerprint_input.extend_from_slice(&(part.len() as u64).to_be_bytes());
        fingerprint_input.extend_from_slice(part);
    }
    Ok(Some(IdempotencyRecord {
        dataset: dataset.clone(),
        key_hash: Sha256Digest::of(key.as_bytes()).hex,
        fingerprint: Sha256Digest::of(&fingerprint_input).hex,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_complete_lines_of_a_cut_file_are_read() {
        let file = b"{\"row\": 1}\n{\"row\": 2}\n{\"row\": 3}\n";
        let rows = |start: &[u8], whole, limit| -> Vec<u64> {
            first_json_lines(start, whole, limit).iter().map(|r| r["row"].as_u64().unwrap()).collect()
        };
        assert_eq!(rows(file, true, 10), [1, 2, 3]);
        assert_eq!(rows(file, true, 2), [1, 2]);
        // Cut inside the third line: two rows; cut inside the first: none.
        assert_eq!(rows(&file[..26], false, 10), [1, 2]);
        assert_eq!(rows(&file[..5], false, 10), Vec::<u64>::new());
        // A last line without its newline is whole when the file is.
        assert_eq!(rows(b"{\"row\": 7}", true, 10), [7]);
    }
}
