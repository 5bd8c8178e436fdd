//! The catalog's model records (schema: `docs/data-lake.md`). Under `PRODUCTION`, each model's
//! production version and where its bundle is: `predict` finds it with one read, `monitor`
//! lists them with one query. Under `MODEL#<model>`: the jobs its training requests started
//! (with the request, so remediation can repeat it), its event log, its remediation
//! episode, its monitoring watermark and drift history.
//!
//! Every write an event can repeat is a conditional write, so concurrent duplicates of one
//! event make one change.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;
use sluice_core::DatasetName;
use sluice_core::model_event::ModelEvent;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::StoreError;
use crate::catalog::{Catalog, corrupt, n, number, optional_string, partitions, s, string};

fn model_pk(model: &str) -> AttributeValue {
    s(format!("{}{model}", partitions::MODEL_PREFIX))
}

fn production_sk(model: &str) -> AttributeValue {
    s(format!("MODEL#{model}"))
}

/// A rollout's status while it runs (`sluice_model::rollout::RolloutStatus` as JSON).
const ROLLOUT_RUNNING: &str = "running";

/// A model's rollout lives beside its production record, so serving reads both within the
/// one partition its role may read.
fn rollout_sk(model: &str) -> AttributeValue {
    s(format!("ROLLOUT#{model}"))
}

fn rollout_item(model: &str, candidate: i64, status: &str, document: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_owned(), s(partitions::PRODUCTION)),
        ("sk".to_owned(), rollout_sk(model)),
        ("entity".to_owned(), s("rollout")),
        ("status".to_owned(), s(status)),
        ("candidate".to_owned(), n(candidate)),
        ("document".to_owned(), s(document)),
    ])
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).expect("UTC times format as RFC 3339")
}

/// A time that sorts as text: UTC, nanoseconds always written.
fn sortable(at: OffsetDateTime) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z");
    at.to_offset(time::UtcOffset::UTC).format(&format).expect("times format")
}

fn parse_time(item: &HashMap<String, AttributeValue>, name: &str) -> Result<OffsetDateTime, StoreError> {
    let text = string(item, name)?;
    OffsetDateTime::parse(&text, &Rfc3339).map_err(|e| corrupt(format!("{name} {text:?}: {e}")))
}

fn optional_time(item: &HashMap<String, AttributeValue>, name: &str) -> Result<Option<OffsetDateTime>, StoreError> {
    item.get(name).map(|_| parse_time(item, name)).transpose()
}

/// A model's production version as the catalog records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductionRecord {
    pub model: String,
    pub version: i64,
    /// `s3://…/model.tar.gz`.
    pub bundle_uri: String,
    pub package_arn: String,
    /// The job that trained it (absent for imported versions).
    pub training_job: Option<String>,
    pub dataset: Option<DatasetName>,
    /// When its training job started, i.e. the newest data it can have seen.
    pub trained_at: Option<OffsetDateTime>,
    /// When it became production.
    pub since: OffsetDateTime,
}

/// A job a training request started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainingJobRecord {
    pub model: String,
    pub job_name: String,
    /// `training` or `tuning`.
    pub kind: String,
    pub dataset: DatasetName,
    pub started_at: OffsetDateTime,
    /// The request as sent (JSON), so remediation can retrain the same way.
    pub request: String,
    /// `api`, `schedule` or `remediation`.
    pub trigger: String,
}

/// Where a model's remediation episode stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpisodeState {
    /// A notification is being handled (until the lease runs out, if its handler died).
    Deciding,
    /// A retraining job was started; the episode holds until the cooldown ends.
    Retraining,
    /// Nothing to retrain on: the episode holds until new data arrives or the cooldown ends.
    WaitingForData,
}

impl EpisodeState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Deciding => "DECIDING",
            Self::Retraining => "RETRAINING",
            Self::WaitingForData => "WAITING_FOR_DATA",
        }
    }
}

/// How far monitoring has read a model's capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorState {
    /// Capture objects delivered up to this time have been compared.
    pub watermark: OffsetDateTime,
    /// The production version the comparison was for.
    pub version: i64,
}

impl Catalog {
    /// Puts `item` if `condition` holds; `false` when it did not (another writer won).
    async fn put(&self, item: HashMap<String, AttributeValue>) -> Result<(), StoreError> {
        self.dynamodb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|err| StoreError::new("DynamoDB", "PutItem", err))?;
        Ok(())
    }

    pub(crate) async fn put_if(
        &self,
        item: HashMap<String, AttributeValue>,
        condition: &str,
        names: &[(&str, &str)],
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<bool, StoreError> {
        let mut request = self.dynamodb.put_item().table_name(&self.table).set_item(Some(item));
        request = request.condition_expression(condition);
        for (placeholder, name) in names {
            request = request.expression_attribute_names(*placeholder, *name);
        }
        for (placeholder, value) in values {
            request = request.expression_attribute_values(placeholder, value);
        }
        match request.send().await {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(err))
                if matches!(err.err(), PutItemError::ConditionalCheckFailedException(_)) =>
            {
                Ok(false)
            }
            Err(err) => Err(StoreError::new("DynamoDB", "PutItem", err)),
        }
    }

    /// One item, read consistently.
    pub(crate) async fn item(
        &self,
        pk: AttributeValue,
        sk: AttributeValue,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        Ok(self
            .dynamodb
            .get_item()
            .table_name(&self.table)
            .key("pk", pk)
            .key("sk", sk)
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| StoreError::new("DynamoDB", "GetItem", err))?
            .item)
    }

    /// Items of a partition whose sort key starts with `prefix` and sorts at or after
    /// `from`, in key order (newest last, or first), at most `limit` (all when `None`).
    pub(crate) async fn query_range(
        &self,
        pk: AttributeValue,
        prefix: &str,
        from: Option<String>,
        limit: Option<usize>,
        newest_first: bool,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        // `$` sorts right after `#`, so `[prefix, prefix$)` is exactly the prefix's keys.
        let end = format!("{}$", prefix.trim_end_matches('#'));
        let start = from.map_or_else(|| prefix.to_owned(), |from| format!("{prefix}{from}"));
        let mut pages = self
            .dynamodb
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :start AND :end")
            .expression_attribute_values(":pk", pk)
            .expression_attribute_values(":start", s(&start))
            .expression_attribute_values(":end", s(&end))
            .scan_index_forward(!newest_first)
            // A page of at most what is wanted: a limited read stops after one.
            .set_limit(limit.map(|l| l.min(1000) as i32))
            .into_paginator()
            .items()
            .send();
        let mut items = Vec::new();
        while limit.is_none_or(|l| items.len() < l)
            && let Some(item) = pages.next().await
        {
            items.push(item.map_err(|err| StoreError::new("DynamoDB", "Query", err))?);
        }
        Ok(items)
    }

    // ── Production ─────────────────────────────────────────────────────────────────────

    pub async fn production(&self, model: &str) -> Result<Option<ProductionRecord>, StoreError> {
        match self.item(s(partitions::PRODUCTION), production_sk(model)).await? {
            Some(item) => production_from_item(&item),
            None => Ok(None),
        }
    }

    /// Every model that has a production version.
    pub async fn productions(&self) -> Result<Vec<ProductionRecord>, StoreError> {
        let items = self.query_range(s(partitions::PRODUCTION), "MODEL#", None, None, false).await?;
        Ok(items.iter().map(production_from_item).collect::<Result<Vec<_>, _>>()?.into_iter().flatten().collect())
    }

    /// Records `production` (`None`: no production version) as what the registry said when
    /// read at `read_at`. Returns whether this changed the record: repeating it changes
    /// nothing, and an answer read before the one recorded never overwrites it, so writers
    /// racing on stale registry reads cannot roll production back.
    pub async fn record_production(
        &self,
        model: &str,
        production: Option<&ProductionRecord>,
        read_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut item = HashMap::from([
            ("pk".to_owned(), s(partitions::PRODUCTION)),
            ("sk".to_owned(), production_sk(model)),
            ("entity".to_owned(), s("production")),
            ("model".to_owned(), s(model)),
            ("read_at".to_owned(), s(sortable(read_at))),
            // Version 0 (SageMaker numbers from 1) keeps a withdrawal ordered like a change.
            ("version".to_owned(), n(production.map_or(0, |p| p.version))),
        ]);
        if let Some(production) = production {
            item.insert("bundle_uri".into(), s(&production.bundle_uri));
            item.insert("package_arn".into(), s(&production.package_arn));
            item.insert("since".into(), s(rfc3339(production.since)));
            if let Some(job) = &production.training_job {
                item.insert("training_job".into(), s(job));
            }
            if let Some(dataset) = &production.dataset {
                item.insert("dataset".into(), s(dataset.as_str()));
            }
            if let Some(trained_at) = production.trained_at {
                item.insert("trained_at".into(), s(rfc3339(trained_at)));
            }
        }
        let condition = match production {
            Some(_) => "attribute_not_exists(pk) OR (read_at < :read_at AND version <> :version)",
            // Nothing to withdraw unless something was recorded.
            None => "attribute_exists(pk) AND read_at < :read_at AND version <> :version",
        };
        let version = n(production.map_or(0, |p| p.version));
        let values = vec![(":read_at", s(sortable(read_at))), (":version", version.clone())];
        if self.put_if(item, condition, &[], values).await? {
            return Ok(true);
        }
        // Unchanged: still record that the registry was read this late, so an answer read
        // earlier cannot overwrite it later (production moved away and back meanwhile).
        let refreshed = self
            .dynamodb
            .update_item()
            .table_name(&self.table)
            .key("pk", s(partitions::PRODUCTION))
            .key("sk", production_sk(model))
            .update_expression("SET read_at = :read_at")
            .condition_expression("read_at < :read_at AND version = :version")
            .expression_attribute_values(":read_at", s(sortable(read_at)))
            .expression_attribute_values(":version", version)
            .send()
            .await;
        match refreshed {
            Ok(_) => Ok(false),
            Err(SdkError::ServiceError(err)) if err.err().is_conditional_check_failed_exception() => Ok(false),
            Err(err) => Err(StoreError::new("DynamoDB", "UpdateItem", err)),
        }
    }

    // ── Training jobs ──────────────────────────────────────────────────────────────────

    pub async fn put_training_job(&self, job: &TrainingJobRecord) -> Result<(), StoreError> {
        self.dynamodb
            .put_item()
            .table_name(&self.table)
            .item("pk", model_pk(&job.model))
            .item("sk", s(format!("JOB#{}", job.job_name)))
            .item("entity", s("training_job"))
            .item("model", s(&job.model))
            .item("job_name", s(&job.job_name))
            .item("kind", s(&job.kind))
            .item("dataset", s(job.dataset.as_str()))
            .item("started_at", s(rfc3339(job.started_at)))
            .item("request", s(&job.request))
            .item("trigger", s(&job.trigger))
            .send()
            .await
            .map_err(|err| StoreError::new("DynamoDB", "PutItem", err))?;
        Ok(())
    }

    pub async fn training_job(&self, model: &str, job_name: &str) -> Result<Option<TrainingJobRecord>, StoreError> {
        let Some(item) = self.item(model_pk(model), s(format!("JOB#{job_name}"))).await? else { return Ok(None) };
        Ok(Some(TrainingJobRecord {
            model: string(&item, "model")?,
            job_name: string(&item, "job_name")?,
            kind: string(&item, "kind")?,
            dataset: DatasetName::parse(&string(&item, "dataset")?).map_err(|e| corrupt(e.to_string()))?,
            started_at: parse_time(&item, "started_at")?,
            request: string(&item, "request")?,
            trigger: string(&item, "trigger")?,
        }))
    }

    // ── Event log ──────────────────────────────────────────────────────────────────────

    /// Appends `event` to the model's log. Events that one occurrence can cause more than
    /// once (a replayed notification, a retried job event) pass the same `dedupe` key and
    /// time, and are kept once.
    pub async fn append_event(&self, model: &str, event: &ModelEvent, dedupe: Option<&str>) -> Result<(), StoreError> {
        let unique = match dedupe {
            Some(key) => sluice_core::Sha256Digest::of(key.as_bytes()).hex[..16].to_owned(),
            None => uuid::Uuid::now_v7().simple().to_string()[16..].to_owned(),
        };
        let item = HashMap::from([
            ("pk".to_owned(), model_pk(model)),
            ("sk".to_owned(), s(format!("EVENT#{}#{unique}", sortable(event.time)))),
            ("entity".to_owned(), s("event")),
            ("event".to_owned(), s(serde_json::to_string(event).expect("events serialise"))),
        ]);
        self.put_if(item, "attribute_not_exists(sk)", &[], Vec::new()).await?;
        Ok(())
    }

    /// The model's events from `since` on, oldest first, at most `limit`.
    pub async fn events(
        &self,
        model: &str,
        since: Option<OffsetDateTime>,
        limit: usize,
    ) -> Result<Vec<ModelEvent>, StoreError> {
        let items = self.query_range(model_pk(model), "EVENT#", since.map(sortable), Some(limit), false).await?;
        items.iter().map(event_from_item).collect()
    }

    /// The model's last `count` events, oldest first.
    pub async fn recent_events(&self, model: &str, count: usize) -> Result<Vec<ModelEvent>, StoreError> {
        let items = self.query_range(model_pk(model), "EVENT#", None, Some(count), true).await?;
        items.iter().rev().map(event_from_item).collect()
    }

    // ── Leases ─────────────────────────────────────────────────────────────────────────

    /// Claims `(model, name)` for one handler: of concurrent duplicates exactly one gets
    /// `true`. The claim lapses after `lease` if its holder dies before [`Self::release_claim`] or
    /// [`Self::complete_claim`].
    pub async fn claim_once(
        &self,
        model: &str,
        name: &str,
        now: OffsetDateTime,
        lease: time::Duration,
    ) -> Result<bool, StoreError> {
        let item = HashMap::from([
            ("pk".to_owned(), model_pk(model)),
            ("sk".to_owned(), s(name)),
            ("entity".to_owned(), s("claim")),
            ("status".to_owned(), s("IN_PROGRESS")),
            ("lease_until".to_owned(), n((now + lease).unix_timestamp())),
        ]);
        let condition = "attribute_not_exists(pk) OR (#status = :in_progress AND lease_until < :now)";
        let values = vec![(":in_progress", s("IN_PROGRESS")), (":now", n(now.unix_timestamp()))];
        self.put_if(item, condition, &[("#status", "status")], values).await
    }

    /// Marks a claim done for good (until `expires_at`, when the table's TTL removes it).
    pub async fn complete_claim(&self, model: &str, name: &str, expires_at: OffsetDateTime) -> Result<(), StoreError> {
        self.put(HashMap::from([
            ("pk".to_owned(), model_pk(model)),
            ("sk".to_owned(), s(name)),
            ("entity".to_owned(), s("claim")),
            ("status".to_owned(), s("DONE")),
            ("expires_at".to_owned(), n(expires_at.unix_timestamp())),
        ]))
        .await
    }

    /// Gives up a claim after a failure, so a retry can take it at once.
    pub async fn release_claim(&self, model: &str, name: &str) -> Result<(), StoreError> {
        self.dynamodb
            .delete_item()
            .table_name(&self.table)
            .key("pk", model_pk(model))
            .key("sk", s(name))
            .condition_expression("#status = :in_progress")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":in_progress", s("IN_PROGRESS"))
            .send()
            .await
            .map_err(|err| StoreError::new("DynamoDB", "DeleteItem", err))?;
        Ok(())
    }

    // ── Remediation episodes ───────────────────────────────────────────────────────────

    /// Opens a remediation episode for `model`, or not: of any number of concurrent
    /// notifications exactly one gets `true`, and none does while an episode holds — a
    /// retraining within its cooldown, or a wait for data while no data newer than
    /// `latest_data` has arrived. A holder that dies lets go after `lease`.
    pub async fn open_episode(
        &self,
        model: &str,
        now: OffsetDateTime,
        lease: time::Duration,
        latest_data: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError> {
        let item = HashMap::from([
            ("pk".to_owned(), model_pk(model)),
            ("sk".to_owned(), s("REMEDIATION")),
            ("entity".to_owned(), s("remediation")),
            ("state".to_owned(), s(EpisodeState::Deciding.as_str())),
            ("lease_until".to_owned(), n((now + lease).unix_timestamp())),
        ]);
        let condition = "attribute_not_exists(pk) \
             OR (#state = :deciding AND lease_until < :now) \
             OR (#state <> :deciding AND holds_until < :now) \
             OR (#state = :waiting AND data_seen < :latest_data)";
        let values = vec![
            (":deciding", s(EpisodeState::Deciding.as_str())),
            (":waiting", s(EpisodeState::WaitingForData.as_str())),
            (":now", n(now.unix_timestamp())),
            (":latest_data", s(latest_data.map(sortable).unwrap_or_default())),
        ];
        self.put_if(item, condition, &[("#state", "state")], values).await
    }

    /// Records what the open episode decided; it holds until `holds_until`. `data_seen` is
    /// the newest data the decision knew of (a wait for data ends when newer data arrives).
    pub async fn settle_episode(
        &self,
        model: &str,
        state: EpisodeState,
        holds_until: OffsetDateTime,
        data_seen: Option<OffsetDateTime>,
        details: &Value,
    ) -> Result<(), StoreError> {
        self.dynamodb
            .put_item()
            .table_name(&self.table)
            .item("pk", model_pk(model))
            .item("sk", s("REMEDIATION"))
            .item("entity", s("remediation"))
            .item("state", s(state.as_str()))
            .item("holds_until", n(holds_until.unix_timestamp()))
            .item("data_seen", s(data_seen.map(sortable).unwrap_or_default()))
            .item("details", s(details.to_string()))
            // The table's TTL tidies episodes long over.
            .item("expires_at", n((holds_until + time::Duration::days(30)).unix_timestamp()))
            .send()
            .await
            .map_err(|err| StoreError::new("DynamoDB", "PutItem", err))?;
        Ok(())
    }

    /// Lets go of an episode whose handler failed before deciding, so a retry can open it.
    pub async fn abandon_episode(&self, model: &str) -> Result<(), StoreError> {
        self.dynamodb
            .delete_item()
            .table_name(&self.table)
            .key("pk", model_pk(model))
            .key("sk", s("REMEDIATION"))
            .condition_expression("#state = :deciding")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":deciding", s(EpisodeState::Deciding.as_str()))
            .send()
            .await
            .map_err(|err| StoreError::new("DynamoDB", "DeleteItem", err))?;
        Ok(())
    }

    // ── Rollouts ───────────────────────────────────────────────────────────────────────

    /// The model's current or last rollout (a JSON document, `sluice_model::rollout::Rollout`).
    pub async fn rollout_document(&self, model: &str) -> Result<Option<String>, StoreError> {
        let item = self.item(s(partitions::PRODUCTION), rollout_sk(model)).await?;
        item.map(|item| string(&item, "document")).transpose()
    }

    /// Records a new rollout of `candidate` (status `running`), unless one is running or
    /// this candidate (or a newer one) was rolled out before and not aborted: of concurrent
    /// duplicate starts exactly one gets `true`.
    pub async fn start_rollout(&self, model: &str, candidate: i64, document: &str) -> Result<bool, StoreError> {
        let item = rollout_item(model, candidate, ROLLOUT_RUNNING, document);
        let condition =
            "attribute_not_exists(pk) OR (#status <> :running AND (candidate < :candidate OR #status = :aborted))";
        let values = vec![(":running", s(ROLLOUT_RUNNING)), (":aborted", s("aborted")), (":candidate", n(candidate))];
        self.put_if(item, condition, &[("#status", "status")], values).await
    }

    /// Replaces the rollout of `candidate` with `document` in `status`, if it is still in
    /// `expected` (say `running`: new figures, or how it ended). `false` otherwise: of
    /// concurrent enders exactly one ends it.
    pub async fn update_rollout(
        &self,
        model: &str,
        candidate: i64,
        expected: &str,
        status: &str,
        document: &str,
    ) -> Result<bool, StoreError> {
        let item = rollout_item(model, candidate, status, document);
        let condition = "#status = :expected AND candidate = :candidate";
        let values = vec![(":expected", s(expected)), (":candidate", n(candidate))];
        self.put_if(item, condition, &[("#status", "status")], values).await
    }

    /// The model's own rollout policy and guards (a JSON document), if it has one.
    pub async fn rollout_settings(&self, model: &str) -> Result<Option<String>, StoreError> {
        let item = self.item(model_pk(model), s("ROLLOUT_SETTINGS")).await?;
        item.map(|item| string(&item, "document")).transpose()
    }

    pub async fn put_rollout_settings(&self, model: &str, document: &str) -> Result<(), StoreError> {
        let item = HashMap::from([
            ("pk".to_owned(), model_pk(model)),
            ("sk".to_owned(), s("ROLLOUT_SETTINGS")),
            ("entity".to_owned(), s("rollout_settings")),
            ("document".to_owned(), s(document)),
        ]);
        self.put(item).await
    }

    // ── Monitoring ─────────────────────────────────────────────────────────────────────

    pub async fn monitor_state(&self, model: &str) -> Result<Option<MonitorState>, StoreError> {
        let Some(item) = self.item(model_pk(model), s("MONITOR")).await? else { return Ok(None) };
        Ok(Some(MonitorState { watermark: parse_time(&item, "watermark")?, version: number(&item, "version")? }))
    }

    /// Moves the watermark from `from` (`None`: never set) to `to`; `false` if another run
    /// moved it first (that run publishes; this one must not publish again).
    pub async fn advance_monitor(
        &self,
        model: &str,
        from: Option<&MonitorState>,
        to: &MonitorState,
    ) -> Result<bool, StoreError> {
        let item = HashMap::from([
            ("pk".to_owned(), model_pk(model)),
            ("sk".to_owned(), s("MONITOR")),
            ("entity".to_owned(), s("monitor")),
            ("watermark".to_owned(), s(rfc3339(to.watermark))),
            ("version".to_owned(), n(to.version)),
        ]);
        match from {
            None => self.put_if(item, "attribute_not_exists(pk)", &[], Vec::new()).await,
            Some(from) => {
                let values = vec![(":watermark", s(rfc3339(from.watermark))), (":version", n(from.version))];
                self.put_if(item, "watermark = :watermark AND version = :version", &[], values).await
            }
        }
    }

    /// Keeps a drift report's summary, keyed by the end of the window it covers, until
    /// `expires_at` (when its report leaves the capture bucket).
    pub async fn put_drift_summary(
        &self,
        model: &str,
        window_end: OffsetDateTime,
        summary: &Value,
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.dynamodb
            .put_item()
            .table_name(&self.table)
            .item("pk", model_pk(model))
            .item("sk", s(format!("DRIFT#{}", sortable(window_end))))
            .item("entity", s("drift"))
            .item("summary", s(summary.to_string()))
            .item("expires_at", n(expires_at.unix_timestamp()))
            .send()
            .await
            .map_err(|err| StoreError::new("DynamoDB", "PutItem", err))?;
        Ok(())
    }

    /// Drift summaries from `since` on (oldest first), or the newest one alone.
    pub async fn drift_summaries(
        &self,
        model: &str,
        since: Option<OffsetDateTime>,
        limit: usize,
    ) -> Result<Vec<Value>, StoreError> {
        let newest_first = since.is_none();
        let items = self.query_range(model_pk(model), "DRIFT#", since.map(sortable), Some(limit), newest_first).await?;
        items
            .iter()
            .map(|item| serde_json::from_str(&string(item, "summary")?).map_err(|e| corrupt(e.to_string())))
            .collect()
    }
}

fn event_from_item(item: &HashMap<String, AttributeValue>) -> Result<ModelEvent, StoreError> {
    serde_json::from_str(&string(item, "event")?).map_err(|e| corrupt(e.to_string()))
}

fn production_from_item(item: &HashMap<String, AttributeValue>) -> Result<Option<ProductionRecord>, StoreError> {
    let version: i64 = number(item, "version")?;
    if version == 0 {
        return Ok(None);
    }
    Ok(Some(ProductionRecord {
        model: string(item, "model")?,
        version,
        bundle_uri: string(item, "bundle_uri")?,
        package_arn: string(item, "package_arn")?,
        training_job: optional_string(item, "training_job")?,
        dataset: optional_string(item, "dataset")?
            .map(|d| DatasetName::parse(&d).map_err(|e| corrupt(e.to_string())))
            .transpose()?,
        trained_at: optional_time(item, "trained_at")?,
        since: parse_time(item, "since")?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sortable_times_sort_as_text() {
        let earlier = time::macros::datetime!(2026-11-22 09:59:59.9 UTC);
        let later = time::macros::datetime!(2026-11-22 10:00:00 UTC);
        assert_eq!(sortable(later), "2026-11-22T10:00:00.000000000Z");
        assert!(sortable(earlier) < sortable(later));
    }
}
