//! The `sluice` commands that use the API (never the AWS resources behind it): ingest,
//! datasets, train, models, approve, reject, predict, drift, events. Tables for people,
//! `--json` for scripts, and exit codes from [`Exit`](crate::client::Exit).

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Args, Subcommand};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde_json::{Map, Value, json};
use sluice_formats::ContentKind;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::client::{Api, CliError, Target, encode};
use crate::progress::Progress;

/// `println!`, ending the program quietly when stdout is closed (`sluice models | head -1`).
macro_rules! say {
    ($($arg:tt)*) => { write_line(format_args!($($arg)*)) };
}

fn write_line(line: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    if let Err(err) = stdout.write_fmt(line).and_then(|()| stdout.write_all(b"\n"))
        && err.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

/// Where the API is, and how to print its answers.
#[derive(Args, Debug)]
pub struct ApiOptions {
    /// The API's base URL. Default: $SLUICE_API, else the local cloud's http://127.0.0.1:3000.
    /// Requests are not signed (the local cloud checks no signatures).
    #[arg(long, value_name = "URL", conflicts_with = "stack")]
    endpoint: Option<String>,
    /// A deployed stack: the API is its `ApiUrl` output (CloudFormation DescribeStacks), and
    /// every request is SigV4-signed with your AWS credentials (environment, profiles, SSO).
    #[arg(long, value_name = "NAME")]
    stack: Option<String>,
    /// The AWS profile to use with --stack (default: AWS_PROFILE, else the default profile).
    #[arg(long, requires = "stack")]
    profile: Option<String>,
    /// The AWS region of --stack (default: AWS_REGION, else the profile's).
    #[arg(long, requires = "stack")]
    region: Option<String>,
    /// Print the API's JSON (also its error documents) instead of tables.
    #[arg(long)]
    json: bool,
}

/// The local cloud's API, where `sluice local up` serves it.
const LOCAL_API: &str = "http://127.0.0.1:3000";

impl ApiOptions {
    fn target(&self) -> Target {
        match &self.stack {
            Some(name) => {
                Target::Stack { name: name.clone(), profile: self.profile.clone(), region: self.region.clone() }
            }
            None => Target::Endpoint(
                self.endpoint.clone().or_else(|| std::env::var("SLUICE_API").ok()).unwrap_or_else(|| LOCAL_API.into()),
            ),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum ApiCommand {
    /// Ingest files into a dataset (content type from the extension: .csv .xlsx .json .ndjson
    /// .jsonl .png .jpg .jpeg). Files over the API's 4 MiB body limit go through a presigned
    /// S3 upload.
    Ingest {
        #[command(flatten)]
        api: ApiOptions,
        dataset: String,
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The ground-truth label of the images.
        #[arg(long)]
        label: Option<String>,
        /// Wait until the ETL has processed each file (exit 4 if one FAILED).
        #[arg(long)]
        wait: bool,
    },
    /// The datasets, or one dataset: its schema, object and row counts, and each column's
    /// profile.
    #[command(alias = "dataset")]
    Datasets {
        #[command(flatten)]
        api: ApiOptions,
        name: Option<String>,
    },
    /// Start training a model version on a dataset's curated data; the gate then decides
    /// whether it goes to production.
    Train {
        #[command(flatten)]
        api: ApiOptions,
        /// The model's name (lowercase letters, digits and `-`).
        model: String,
        /// The dataset whose curated data it trains on.
        #[arg(long)]
        dataset: String,
        /// The column to predict.
        #[arg(long)]
        target: String,
        /// linear, mlp or gbt (default: the trainer's).
        #[arg(long)]
        algorithm: Option<String>,
        /// classification or regression (default: inferred from the target).
        #[arg(long)]
        task: Option<String>,
        /// A hyperparameter (docs/model-bundle.md); repeatable.
        #[arg(long = "hyperparameter", short = 'p', value_name = "NAME=VALUE", value_parser = name_value)]
        hyperparameters: Vec<(String, String)>,
        /// A training instance type the stack allows.
        #[arg(long)]
        instance_type: Option<String>,
        /// A hyperparameter tuning job instead: the `tuning` block of docs/api.md, as JSON or @FILE.
        #[arg(long, value_name = "JSON|@FILE")]
        tune: Option<String>,
        /// Follow the job until it is registered (exit 4 if it failed); then print its
        /// metrics and the gate's decision.
        #[arg(long)]
        wait: bool,
    },
    /// The models, or one model's versions with their metrics and gate decisions.
    Models {
        #[command(flatten)]
        api: ApiOptions,
        name: Option<String>,
    },
    /// Approve a version by hand; the highest approved version is production.
    Approve {
        #[command(flatten)]
        api: ApiOptions,
        model: String,
        version: i64,
    },
    /// Reject a version by hand; rejecting production falls back to the highest approved one.
    Reject {
        #[command(flatten)]
        api: ApiOptions,
        model: String,
        version: i64,
    },
    /// Predict with a model's production version.
    Predict {
        #[command(flatten)]
        api: ApiOptions,
        model: String,
        #[command(flatten)]
        input: PredictInput,
    },
    /// A model's latest drift report (features that drift first).
    Drift {
        #[command(flatten)]
        api: ApiOptions,
        model: String,
    },
    /// A model's timeline: trained, registered, promoted, drift, alarm, retraining.
    Events {
        #[command(flatten)]
        api: ApiOptions,
        model: String,
    },
    /// Serve the web dashboard on localhost until Ctrl-C: datasets, models, a model's health,
    /// predictions. Its calls go to the API (signed for --stack), as the other commands'.
    Dashboard {
        #[command(flatten)]
        api: ApiOptions,
        /// Port on 127.0.0.1.
        #[arg(long, default_value_t = DASHBOARD_PORT)]
        port: u16,
    },
}

/// Where `sluice dashboard` and `sluice local up` serve the dashboard.
pub const DASHBOARD_PORT: u16 = 3001;

#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct PredictInput {
    /// Rows as JSON: an array of objects, or one object (or @FILE).
    #[arg(long, value_name = "JSON|@FILE")]
    rows: Option<String>,
    /// Rows from a CSV file with a header row (values as they were ingested).
    #[arg(long, value_name = "CSV")]
    file: Option<PathBuf>,
    /// An image, for image models (.png, .jpg).
    #[arg(long, value_name = "FILE")]
    image: Option<PathBuf>,
}

fn name_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))
}

impl ApiCommand {
    fn options(&self) -> &ApiOptions {
        match self {
            Self::Ingest { api, .. }
            | Self::Datasets { api, .. }
            | Self::Train { api, .. }
            | Self::Models { api, .. }
            | Self::Approve { api, .. }
            | Self::Reject { api, .. }
            | Self::Predict { api, .. }
            | Self::Drift { api, .. }
            | Self::Events { api, .. }
            | Self::Dashboard { api, .. } => api,
        }
    }
}

/// Runs a command; errors go to stderr (and the API's error document to stdout with `--json`).
pub async fn run(command: ApiCommand) -> ExitCode {
    let json = command.options().json;
    match execute(command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if json && let Some(body) = err.api_body().filter(|b| !b.is_null()) {
                print_json(body);
            }
            eprintln!("sluice: {err}");
            ExitCode::from(err.exit() as u8)
        }
    }
}

async fn execute(command: ApiCommand) -> Result<(), CliError> {
    let options = command.options();
    let out = Output { json: options.json };
    // Arguments are checked before anything is sent.
    match command {
        ApiCommand::Ingest { ref api, ref dataset, ref files, ref label, wait } => {
            let files = files.iter().map(|f| IngestFile::new(f)).collect::<Result<Vec<_>, _>>()?;
            let api = Api::connect(&api.target()).await?;
            ingest(&api, &out, dataset, &files, label.as_deref(), wait).await
        }
        ApiCommand::Datasets { ref api, ref name } => {
            list_or_one(api, &out, "/datasets", name.as_deref(), show_datasets, show_dataset).await
        }
        ApiCommand::Train {
            ref api,
            ref model,
            ref dataset,
            ref target,
            ref algorithm,
            ref task,
            ref hyperparameters,
            ref instance_type,
            ref tune,
            wait,
        } => {
            let mut request = json!({ "dataset": dataset, "target": target });
            for (field, value) in [("algorithm", algorithm), ("task", task), ("instance_type", instance_type)] {
                if let Some(value) = value {
                    request[field] = value.clone().into();
                }
            }
            if !hyperparameters.is_empty() {
                request["hyperparameters"] = hyperparameters
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::from(v.clone())))
                    .collect::<Map<_, _>>()
                    .into();
            }
            if let Some(tune) = tune {
                request["tuning"] = json_argument("--tune", tune)?;
            }
            let api = Api::connect(&api.target()).await?;
            train(&api, &out, model, &request, wait).await
        }
        ApiCommand::Models { ref api, ref name } => {
            list_or_one(api, &out, "/models", name.as_deref(), show_models, show_model).await
        }
        ApiCommand::Approve { ref api, ref model, version } | ApiCommand::Reject { ref api, ref model, version } => {
            let decision = if matches!(command, ApiCommand::Approve { .. }) { "approve" } else { "reject" };
            let path = format!("/models/{}/versions/{version}/{decision}", encode(model));
            let answer = Api::connect(&api.target()).await?.send(Method::POST, &path, None, Bytes::new()).await?;
            out.print(&answer, |v| say!("{model} {}", version_status(v)));
            Ok(())
        }
        ApiCommand::Predict { ref api, ref model, ref input } => {
            let (content_type, body) = predict_body(input)?;
            let path = format!("/models/{}/predict", encode(model));
            let answer = Api::connect(&api.target()).await?.send(Method::POST, &path, Some(content_type), body).await?;
            out.print(&answer, show_predictions);
            Ok(())
        }
        ApiCommand::Drift { ref api, ref model } => {
            let answer = Api::connect(&api.target()).await?.get(&format!("/models/{}/drift", encode(model))).await?;
            out.print(&answer, show_drift);
            Ok(())
        }
        ApiCommand::Dashboard { ref api, port } => {
            let api = Api::connect(&api.target()).await?;
            let base = api.base().to_owned();
            let address = std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port));
            let dashboard = crate::dashboard::Dashboard::serve(address, api).await?;
            say!("Dashboard {} (API {base}). Press Ctrl-C to stop.", dashboard.url());
            tokio::signal::ctrl_c().await.map_err(|err| CliError::Usage(err.to_string()))?;
            Ok(())
        }
        ApiCommand::Events { ref api, ref model } => {
            let answer = Api::connect(&api.target()).await?.get(&format!("/models/{}/events", encode(model))).await?;
            out.print(&answer, |a| show_events(a["events"].as_array().map_or(&[][..], Vec::as_slice)));
            Ok(())
        }
    }
}

/// `GET <collection>` printed by `list`, or with a name `GET <collection>/<name>` by `one`.
async fn list_or_one(
    api: &ApiOptions,
    out: &Output,
    collection: &str,
    name: Option<&str>,
    list: fn(&Value),
    one: fn(&Value),
) -> Result<(), CliError> {
    let api = Api::connect(&api.target()).await?;
    match name {
        None => out.print(&api.get(collection).await?, list),
        Some(name) => out.print(&api.get(&format!("{collection}/{}", encode(name))).await?, one),
    }
    Ok(())
}

/// Prints a document: the API's JSON, or `human` for people.
struct Output {
    json: bool,
}

impl Output {
    fn print(&self, answer: &Value, human: impl FnOnce(&Value)) {
        if self.json { print_json(answer) } else { human(answer) }
    }
}

fn print_json(value: &Value) {
    say!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

/// `JSON` itself, or the JSON in `@FILE`.
fn json_argument(flag: &str, text: &str) -> Result<Value, CliError> {
    let (text, source) = match text.strip_prefix('@') {
        Some(path) => (
            std::fs::read_to_string(path)
                .map_err(|err| CliError::Usage(format!("{flag}: cannot read {path}: {err}")))?,
            path,
        ),
        None => (text.to_owned(), "the argument"),
    };
    serde_json::from_str(&text).map_err(|err| CliError::Usage(format!("{flag}: {source} is not JSON: {err}")))
}

/// Waits between polls: quick at first (the local cloud answers in milliseconds), then
/// every 2 s.
struct Poller {
    started: Instant,
    delay: Duration,
}

impl Poller {
    fn new() -> Self {
        Self { started: Instant::now(), delay: Duration::from_millis(200) }
    }

    async fn sleep(&mut self) {
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 3 / 2).min(Duration::from_secs(2));
    }

    fn elapsed(&self) -> String {
        let seconds = self.started.elapsed().as_secs();
        if seconds < 60 { format!("{seconds} s") } else { format!("{} min {} s", seconds / 60, seconds % 60) }
    }
}

fn progress() -> Progress {
    Progress::new(std::io::stderr().is_terminal())
}

// ---- ingest ----------------------------------------------------------------------------

/// Largest body `POST /datasets/{dataset}/records` takes (`MaxBodyBytes`, default and
/// maximum 4 MiB); larger files go through `POST /datasets/{dataset}/uploads`.
const MAX_BODY_BYTES: u64 = 4 * 1024 * 1024;

struct IngestFile {
    path: PathBuf,
    kind: ContentKind,
    size: u64,
}

impl IngestFile {
    fn new(path: &Path) -> Result<Self, CliError> {
        let kind = path.extension().and_then(|e| ContentKind::from_file_extension(&e.to_string_lossy())).ok_or_else(|| {
            CliError::Usage(format!(
                "{}: cannot tell the content type from the extension; name files .csv, .xlsx, .json, .ndjson, .jsonl, .png, .jpg or .jpeg",
                path.display()
            ))
        })?;
        let size = std::fs::metadata(path)
            .map_err(|err| CliError::Usage(format!("cannot read {}: {err}", path.display())))?
            .len();
        Ok(Self { path: path.to_owned(), kind, size })
    }
}

async fn ingest(
    api: &Api,
    out: &Output,
    dataset: &str,
    files: &[IngestFile],
    label: Option<&str>,
    wait: bool,
) -> Result<(), CliError> {
    let mut failed = Vec::new();
    for file in files {
        let mut entry = ingest_one(api, dataset, file, label).await?;
        if wait {
            entry = wait_for_etl(api, dataset, &entry, &file.path).await?;
            if entry["status"] == "FAILED" {
                failed.push(file.path.display().to_string());
            }
        }
        out.print(&entry, |e| say!("{}", ingest_line(&file.path, e)));
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::Failed(format!(
            "the ETL FAILED {} of {} files ({}); the reasons are above. Fix the files (or the dataset's options: PUT /datasets/{dataset}/options) and ingest them again",
            failed.len(),
            files.len(),
            failed.join(", ")
        )))
    }
}

/// One file in: the body of `POST /records`, or a presigned upload when it is over the body
/// limit (also when the stack's limit is lower than the default and the API says so).
async fn ingest_one(api: &Api, dataset: &str, file: &IngestFile, label: Option<&str>) -> Result<Value, CliError> {
    let label = label.filter(|_| file.kind.is_image());
    if file.size <= MAX_BODY_BYTES {
        let body = tokio::fs::read(&file.path)
            .await
            .map_err(|err| CliError::Usage(format!("cannot read {}: {err}", file.path.display())))?;
        let query = label.map(|l| format!("?label={}", encode(l))).unwrap_or_default();
        let path = format!("/datasets/{}/records{query}", encode(dataset));
        match api.send(Method::POST, &path, Some(file.kind.mime()), body.into()).await {
            Err(CliError::Api(failure))
                if failure.status == StatusCode::PAYLOAD_TOO_LARGE && failure.code == "payload_too_large" => {}
            answer => return answer,
        }
    }
    let mut request = json!({ "content_type": file.kind.mime(), "size_bytes": file.size });
    if let Some(label) = label {
        request["label"] = label.into();
    }
    let mut entry = api.post_json(&format!("/datasets/{}/uploads", encode(dataset)), &request).await?;
    let upload = entry.as_object_mut().and_then(|e| e.remove("upload")).unwrap_or_default();
    let url =
        upload["url"].as_str().ok_or_else(|| CliError::Usage(format!("the upload answer has no URL: {upload}")))?;
    let mut headers = HeaderMap::new();
    for (name, value) in upload["headers"].as_object().into_iter().flatten() {
        if let (Ok(name), Some(Ok(value))) =
            (HeaderName::try_from(name.as_str()), value.as_str().map(HeaderValue::from_str))
        {
            headers.insert(name, value);
        }
    }
    api.upload(url, &headers, &file.path, file.size).await?;
    Ok(entry)
}

/// Polls the ingest's catalog entry until the ETL has marked it PROCESSED or FAILED.
async fn wait_for_etl(api: &Api, dataset: &str, entry: &Value, file: &Path) -> Result<Value, CliError> {
    let id = entry["ingest_id"].as_str().unwrap_or_default();
    let path = format!("/datasets/{}/ingests/{}", encode(dataset), encode(id));
    let (mut poll, mut progress) = (Poller::new(), progress());
    loop {
        let entry = api.get(&path).await?;
        let status = entry["status"].as_str().unwrap_or("?");
        if matches!(status, "PROCESSED" | "FAILED") {
            return Ok(entry);
        }
        progress.show(&format!("{}: {status}, waiting for the ETL ({})", file.display(), poll.elapsed()));
        poll.sleep().await;
    }
}

fn ingest_line(file: &Path, entry: &Value) -> String {
    let head = format!(
        "{} -> {} ingest {}: {}",
        file.display(),
        text(&entry["dataset"]),
        text(&entry["ingest_id"]),
        text(&entry["status"])
    );
    let processing = &entry["processing"];
    match entry["status"].as_str() {
        Some("PROCESSED") => format!(
            "{head}, {} rows in, {} out, {} rejected",
            processing["rows_in"], processing["rows_out"], processing["rows_rejected"]
        ),
        Some("FAILED") => format!("{head}: {}", text(&processing["failure_reason"])),
        Some("AWAITING_UPLOAD") => format!("{head} (uploaded; the ETL completes the entry)"),
        _ => match entry["row_count"].as_u64() {
            Some(rows) => format!("{head}, {rows} rows, {} bytes", entry["size_bytes"]),
            None => format!("{head}, {} bytes", entry["size_bytes"]),
        },
    }
}

// ---- datasets --------------------------------------------------------------------------

fn show_dataset(dataset: &Value) {
    say!("dataset {}", text(&dataset["dataset"]));
    let by_status = dataset["objects"]["by_status"].as_object().into_iter().flatten();
    let statuses: Vec<String> = by_status.map(|(status, n)| format!("{status} {n}")).collect();
    say!("  objects  {} ({})", dataset["objects"]["total"], statuses.join(", "));
    let rows = &dataset["rows"];
    say!("  rows     {} in, {} out, {} rejected", rows["in"], rows["out"], rows["rejected"]);
    let fields = dataset["schema"]["fields"].as_array().map_or(&[][..], Vec::as_slice);
    if fields.is_empty() {
        say!("  schema   none yet (no object processed)");
        return;
    }
    say!("  schema   version {}, {} columns", dataset["schema"]["version"], fields.len());
    let columns = dataset["profile"]["columns"].as_array().map_or(&[][..], Vec::as_slice);
    let mut table = Table::new(["COLUMN", "TYPE", "NULLS", "PROFILE"]);
    for field in fields {
        let profile = columns.iter().find(|c| c["name"] == field["name"]).unwrap_or(&Value::Null);
        table.row([text(&field["name"]), text(&field["type"]), optional(&profile["nulls"]), column_summary(profile)]);
    }
    table.print();
}

fn column_summary(column: &Value) -> String {
    match column["kind"].as_str() {
        Some("numeric") => {
            format!(
                "min {}  mean {}  max {}  median {}",
                num(&column["min"]),
                num(&column["mean"]),
                num(&column["max"]),
                num(&column["quantiles"][2])
            )
        }
        Some("categorical") => {
            let top = column["top"].as_array().into_iter().flatten().take(5);
            let top: Vec<String> = top.map(|pair| format!("{} {}", text(&pair[0]), pair[1])).collect();
            format!("{} distinct: {}", column["distinct"], top.join(", "))
        }
        Some("empty") => "no values yet".into(),
        _ => String::new(),
    }
}

// ---- train -----------------------------------------------------------------------------

async fn train(api: &Api, out: &Output, model: &str, request: &Value, wait: bool) -> Result<(), CliError> {
    // Events from a little before now: the server's clock may be behind ours.
    let since = OffsetDateTime::now_utc() - time::Duration::minutes(5);
    let started = api.post_json(&format!("/models/{}/train", encode(model)), request).await?;
    let job = text(&started["job_name"]);
    if !wait {
        out.print(&started, |s| {
            say!("{} job {job} started for model {model} on dataset {}", text(&s["kind"]), text(&s["dataset"]));
            say!("follow it: sluice events {model}; see the result: sluice models {model}");
        });
        return Ok(());
    }
    eprintln!(
        "{} job {job} started for model {model} on dataset {}",
        text(&started["kind"]),
        text(&started["dataset"])
    );
    let version = follow_job(api, model, &job, since).await?;
    let described = registered_version(api, model, version).await?;
    out.print(&described, |v| {
        say!("{model} {}", version_status(v));
        say!("  gate     {}", text(&v["gate_reason"]));
        say!("  metrics  {}", metrics_line(&v["metrics"]));
        if v["status"] == "PendingManualApproval" {
            say!("  waiting for a person: sluice approve {model} {version} (or sluice reject {model} {version})");
        }
    });
    Ok(())
}

/// Follows the model's timeline until the job is registered (its version) or failed. The
/// job's events are printed on stderr as they come; on a terminal, a line shows it running.
async fn follow_job(api: &Api, model: &str, job: &str, mut since: OffsetDateTime) -> Result<i64, CliError> {
    let (mut poll, mut progress) = (Poller::new(), progress());
    let mut seen = HashSet::new();
    // The job, and for a tuning job the trial that trained best: its registration names the trial.
    let mut jobs = vec![job.to_owned()];
    loop {
        let query = since.format(&Rfc3339).unwrap_or_default();
        let answer = api.get(&format!("/models/{}/events?since={}", encode(model), encode(&query))).await?;
        for event in answer["events"].as_array().into_iter().flatten() {
            if let Some(time) = event["time"].as_str().and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok()) {
                since = since.max(time);
            }
            let details = &event["details"];
            if details["tuning_job"] == job
                && let Some(trial) = details["job_name"].as_str()
            {
                jobs.push(trial.to_owned());
            }
            let ours = jobs.iter().any(|j| details["job_name"] == j.as_str());
            if !seen.insert(event.to_string()) || !ours {
                continue;
            }
            progress.finish();
            eprintln!("  {} {}: {}", when(&event["time"]), text(&event["kind"]), text(&event["message"]));
            match event["kind"].as_str() {
                Some("registered") => return Ok(event["version"].as_i64().unwrap_or_default()),
                Some("training_failed") => {
                    return Err(CliError::Failed(format!(
                        "training job {job} FAILED: {}\n  what to do: fix what the reason names (the dataset, target or hyperparameters) and train again",
                        text(&details["reason"])
                    )));
                }
                _ => {}
            }
        }
        progress.show(&format!("{job}: running ({})", poll.elapsed()));
        poll.sleep().await;
    }
}

/// The version as `GET /models/{model}` describes it, once the registry's production record
/// reflects its approval (it is published just after the registration is logged).
async fn registered_version(api: &Api, model: &str, version: i64) -> Result<Value, CliError> {
    let mut poll = Poller::new();
    for _ in 0..10 {
        let answer = api.get(&format!("/models/{}", encode(model))).await?;
        let described = answer["versions"].as_array().into_iter().flatten().find(|v| v["version"] == version).cloned();
        if let Some(described) = described
            && (described["status"] != "Approved" || described["production"] == true)
        {
            return Ok(described);
        }
        poll.sleep().await;
    }
    Err(CliError::Failed(format!(
        "version {version} of {model} was registered but the API does not show it as production yet; see sluice models {model}"
    )))
}

// ---- models ----------------------------------------------------------------------------

fn show_datasets(answer: &Value) {
    let mut table = Table::new(["DATASET"]);
    for dataset in answer["datasets"].as_array().into_iter().flatten() {
        table.row([text(&dataset["dataset"])]);
    }
    table.print();
}

fn show_models(answer: &Value) {
    let mut table = Table::new(["MODEL", "VERSIONS", "PRODUCTION"]);
    for model in answer["models"].as_array().into_iter().flatten() {
        table.row([text(&model["model"]), model["versions"].to_string(), optional(&model["production_version"])]);
    }
    table.print();
}

fn show_model(model: &Value) {
    say!("model {}: production version {}", text(&model["model"]), optional(&model["production_version"]));
    let mut table = Table::new(["VERSION", "STATUS", "PRODUCTION", "METRIC", "SOURCE", "DATASET", "TRAINED (UTC)"]);
    let versions = model["versions"].as_array().map_or(&[][..], Vec::as_slice);
    for version in versions {
        let metric = version["primary_metric"]
            .as_str()
            .map_or_else(String::new, |name| format!("{name} {}", num(&version["metrics"][name])));
        table.row([
            version["version"].to_string(),
            text(&version["status"]),
            if version["production"] == true { "yes".into() } else { String::new() },
            metric,
            text(&version["source"]),
            optional(&version["dataset"]),
            when(&version["trained_at"]),
        ]);
    }
    table.print();
    for version in versions {
        say!("version {}: {}", version["version"], text(&version["gate_reason"]));
    }
    let recent = model["recent_events"].as_array().map_or(&[][..], Vec::as_slice);
    if !recent.is_empty() {
        say!("recent events:");
        show_events(recent);
    }
}

/// `version 3: Approved, production` (an approve/reject answer or a described version).
fn version_status(version: &Value) -> String {
    let production = if version["production"] == true { ", production" } else { ", not production" };
    format!("version {}: {}{production}", version["version"], text(&version["status"]))
}

fn metrics_line(metrics: &Value) -> String {
    let metrics = metrics.as_object().into_iter().flatten();
    metrics.map(|(name, value)| format!("{name} {}", num(value))).collect::<Vec<_>>().join(", ")
}

fn show_events(events: &[Value]) {
    let mut table = Table::new(["TIME (UTC)", "KIND", "VERSION", "MESSAGE"]);
    for event in events {
        table.row([when(&event["time"]), text(&event["kind"]), optional(&event["version"]), text(&event["message"])]);
    }
    table.print();
}

// ---- predict ---------------------------------------------------------------------------

/// The request: JSON rows (from `--rows` or a CSV file), or an image.
fn predict_body(input: &PredictInput) -> Result<(&'static str, Bytes), CliError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|err| CliError::Usage(format!("cannot read {}: {err}", path.display())))
    };
    let rows = match (&input.rows, &input.file, &input.image) {
        (Some(rows), _, _) => match json_argument("--rows", rows)? {
            Value::Array(rows) => rows,
            Value::Object(row) => vec![Value::Object(row)],
            other => {
                return Err(CliError::Usage(format!("--rows must be an array of objects or one object, not {other}")));
            }
        },
        (_, Some(file), _) => csv_rows(&read(file.as_path())?)
            .map_err(|err| CliError::Usage(format!("{}: not a CSV file with a header row: {err}", file.display())))?,
        (_, _, Some(image)) => {
            let kind = image
                .extension()
                .and_then(|e| ContentKind::from_file_extension(&e.to_string_lossy()))
                .filter(|kind| kind.is_image())
                .ok_or_else(|| {
                    CliError::Usage(format!("{}: --image takes a .png, .jpg or .jpeg file", image.display()))
                })?;
            return Ok((kind.mime(), read(image.as_path())?.into()));
        }
        (None, None, None) => unreachable!("clap requires one input"),
    };
    Ok(("application/json", Bytes::from(json!({ "rows": rows }).to_string())))
}

/// A CSV file's rows as JSON objects of their text values, exactly as they would be ingested
/// (predict reads values as the ETL does: `"2.5"`, `"NA"`).
pub fn csv_rows(csv: &[u8]) -> Result<Vec<Value>, csv::Error> {
    let mut reader = csv::Reader::from_reader(csv);
    let header = reader.headers()?.clone();
    reader
        .records()
        .map(|record| {
            let record = record?;
            let row: Map<String, Value> =
                header.iter().zip(record.iter()).map(|(name, value)| (name.to_owned(), Value::from(value))).collect();
            Ok(Value::Object(row))
        })
        .collect()
}

fn show_predictions(answer: &Value) {
    say!(
        "{} version {}, request {} ({} ms)",
        text(&answer["model"]),
        answer["version"],
        text(&answer["request_id"]),
        num(&answer["latency_ms"])
    );
    let mut table = Table::new(["ROW", "PREDICTION", "PROBABILITY", "PREDICTION ID"]);
    for (row, prediction) in answer["predictions"].as_array().into_iter().flatten().enumerate() {
        let predicted = &prediction["prediction"];
        let probability = predicted.as_str().map(|label| num(&prediction["probabilities"][label])).unwrap_or_default();
        table.row([(row + 1).to_string(), text(predicted), probability, text(&prediction["prediction_id"])]);
    }
    table.print();
}

// ---- drift -----------------------------------------------------------------------------

fn show_drift(answer: &Value) {
    let report = &answer["report"];
    say!(
        "{} version {}: {} over {} predictions, window {} to {}",
        text(&answer["model"]),
        answer["version"],
        text(&report["verdict"]),
        report["predictions"],
        text(&answer["window"]["start"]),
        text(&answer["window"]["end"])
    );
    let mut table = Table::new(["FEATURE", "VERDICT", "TEST", "STATISTIC", "P VALUE", "DISTANCE", "N", "REASON"]);
    for feature in report["features"].as_array().into_iter().flatten() {
        table.row([
            text(&feature["name"]),
            text(&feature["verdict"]),
            text(&feature["test"]),
            num(&feature["statistic"]),
            num(&feature["p_value"]),
            num(&feature["distance"]),
            feature["n"].to_string(),
            text(&feature["reason"]),
        ]);
    }
    table.print();
    let quality = &report["quality"];
    if !quality.is_null() {
        say!(
            "quality: {} live {} vs validation {} ({} feedback)",
            text(&quality["metric"]),
            num(&quality["live"]),
            num(&quality["validation"]),
            quality["feedback"]
        );
    }
}

// ---- formatting ------------------------------------------------------------------------

/// A JSON string without quotes; anything else as JSON.
fn text(value: &Value) -> String {
    value.as_str().map_or_else(|| value.to_string(), str::to_owned)
}

/// An RFC 3339 time to the second, in UTC (`2026-11-22 14:04:48`); `-` for null.
fn when(value: &Value) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    value
        .as_str()
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
        .and_then(|t| t.to_offset(time::UtcOffset::UTC).format(&format).ok())
        .unwrap_or_else(|| optional(value))
}

/// `-` for null.
fn optional(value: &Value) -> String {
    if value.is_null() { "-".into() } else { text(value) }
}

/// A number to four significant decimals (`-` if missing).
fn num(value: &Value) -> String {
    match value.as_f64() {
        Some(n) if n.fract() == 0.0 && n.abs() < 1e15 => format!("{n:.0}"),
        Some(n) if n.abs() >= 1e-3 && n.abs() < 1e6 => format!("{n:.4}").trim_end_matches('0').to_owned(),
        Some(n) => format!("{n:.3e}"),
        None => optional(value),
    }
}

/// Columns aligned on the widest cell.
struct Table<const N: usize> {
    rows: Vec<[String; N]>,
}

impl<const N: usize> Table<N> {
    fn new(header: [&str; N]) -> Self {
        Self { rows: vec![header.map(str::to_owned)] }
    }

    fn row(&mut self, cells: [String; N]) {
        self.rows.push(cells);
    }

    fn print(&self) {
        let widths: Vec<usize> =
            (0..N).map(|i| self.rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
        for row in &self.rows {
            let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
            say!("{}", cells.join("  ").trim_end());
        }
    }
}
