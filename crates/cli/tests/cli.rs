//! The `sluice` client commands as a user runs them: the binary as a subprocess against a
//! real local cloud (`sluice local up`, which starts its own moto server), checking what it
//! prints and the exit codes scripts rely on. One local cloud serves the whole lifecycle.
//! The dashboard it serves is driven in headless Chromium (tests/browser/dashboard.mjs).
//! (The signer is checked against AWS's test vector in tests/cli_signer.rs.)

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sample(name: &str) -> String {
    project_root().join("samples").join(name).display().to_string()
}

/// `sluice local up` on a free port, killed (its moto server with it) when dropped.
struct LocalUp {
    child: Child,
    api: String,
    dashboard: String,
    aws_endpoint: String,
    /// Bucket names by logical id (`CuratedBucket`: …).
    buckets: Vec<(String, String)>,
    // Held open: the process prints to it until it stops.
    _stdout: BufReader<ChildStdout>,
}

impl LocalUp {
    /// `stack` prefixes the resource names: one per test, as tests run at once. `options`
    /// go to `sluice local up` too.
    fn start(stack: &str, options: &[&str]) -> Self {
        let trainer = Path::new(SLUICE).with_file_name("train");
        assert!(
            trainer.is_file(),
            "{} is missing: build the trainer first (cargo build -p sluice-trainer)",
            trainer.display()
        );
        let mut child = Command::new(SLUICE)
            .args(["local", "up", "--port", "0", "--dashboard-port", "0"])
            .args(["--stack", &format!("{stack}{}", std::process::id())])
            .args(options)
            .current_dir(project_root())
            .stdout(Stdio::piped())
            .spawn()
            .expect("sluice local up starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let (mut api, mut aws_endpoint, mut dashboard, mut buckets) = (None, None, None, Vec::new());
        let mut line = String::new();
        loop {
            line.clear();
            let read = stdout.read_line(&mut line).expect("reads sluice local up's output");
            assert!(read > 0, "sluice local up stopped before it was up (its errors are above)");
            let field = |name: &str| line.trim().strip_prefix(name).map(|rest| rest.trim().to_owned());
            api = api.or_else(|| field("API"));
            aws_endpoint = aws_endpoint.or_else(|| field("AWS endpoint"));
            dashboard = dashboard.or_else(|| field("dashboard"));
            // "  bucket        <name> (<logical id>)"
            if let Some((name, logical_id)) = field("bucket").as_deref().and_then(|rest| rest.split_once(" (")) {
                buckets.push((logical_id.trim_end_matches(')').to_owned(), name.to_owned()));
            }
            if line.starts_with("Press Ctrl-C") {
                break;
            }
        }
        Self {
            child,
            api: api.expect("an API line"),
            dashboard: dashboard.expect("a dashboard line"),
            buckets,
            aws_endpoint: aws_endpoint.expect("an AWS endpoint line"),
            _stdout: stdout,
        }
    }

    fn bucket(&self, logical_id: &str) -> &str {
        self.buckets
            .iter()
            .find(|(id, _)| id == logical_id)
            .map(|(_, name)| name.as_str())
            .expect("the bucket is listed")
    }

    /// `sluice ARGS` against this cloud's API (through SLUICE_API, as a user would set it).
    fn sluice(&self, args: &[&str]) -> Run {
        run(args, &[("SLUICE_API", &self.api)])
    }
}

impl Drop for LocalUp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A finished `sluice` command.
struct Run {
    args: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(self) -> Self {
        self.expect_code(0)
    }

    fn expect_code(self, code: i32) -> Self {
        assert_eq!(
            self.code,
            Some(code),
            "sluice {} exited {:?}\nstdout:\n{}\nstderr:\n{}",
            self.args,
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|err| panic!("sluice {}: not JSON ({err}):\n{}", self.args, self.stdout))
    }

    fn says(&self, text: &str) -> &Self {
        assert!(
            self.stdout.contains(text),
            "sluice {} does not print {text:?}:\n{}\nstderr:\n{}",
            self.args,
            self.stdout,
            self.stderr
        );
        self
    }

    fn complains(&self, text: &str) -> &Self {
        assert!(self.stderr.contains(text), "sluice {} does not say {text:?} on stderr:\n{}", self.args, self.stderr);
        self
    }
}

/// Runs `sluice` with `env`, killed if it takes more than two minutes.
fn run(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut child = Command::new(SLUICE)
        .args(args)
        .env_remove("SLUICE_API")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sluice starts");
    // Read while it runs, so a long output cannot fill the pipe and stall it.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            pipe.read_to_string(&mut text).expect("reads the output");
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped")));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waits") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("sluice {} did not finish within 120 s", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        args: args.join(" "),
        code: status.code(),
        stdout: stdout.join().expect("stdout read"),
        stderr: stderr.join().expect("stderr read"),
    }
}

/// A CSV over the API's 4 MiB body limit: two classes, one numeric feature.
fn large_csv(path: &Path) {
    let mut csv = String::from("x,kind\n");
    let mut row = 0;
    while csv.len() < 4 * 1024 * 1024 + 100_000 {
        csv.push_str(&format!("{}.{:03},{}\n", row % 1000, row % 997, if row % 2 == 0 { "a" } else { "b" }));
        row += 1;
    }
    std::fs::write(path, csv).unwrap();
}

#[test]
fn the_cli_runs_the_lifecycle_through_the_api() {
    let cloud = LocalUp::start("cli", &[]);
    let scratch = std::env::temp_dir().join(format!("sluice-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();

    // Ingest and follow the ETL.
    cloud
        .sluice(&["ingest", "iris", &sample("iris-full.csv"), "--wait"])
        .ok()
        .says("PROCESSED, 150 rows in, 149 out, 1 rejected");
    cloud.sluice(&["datasets", "iris"]).ok().says("rows     150 in, 149 out, 1 rejected").says("3 distinct: setosa 50");
    assert_eq!(
        cloud.sluice(&["datasets", "--json"]).ok().json(),
        serde_json::json!({"datasets": [{"dataset": "iris"}]})
    );

    // Over the body limit: the presigned upload, then the ETL completes the entry.
    let large = scratch.join("large.csv");
    large_csv(&large);
    let uploaded = cloud.sluice(&["ingest", "large", large.to_str().unwrap(), "--wait", "--json"]).ok().json();
    assert_eq!(
        (uploaded["status"].as_str(), uploaded["source"].as_str()),
        (Some("PROCESSED"), Some("presigned_upload")),
        "{uploaded}"
    );

    // A file the ETL refuses (a column the dataset's schema does not have): exit 4.
    let extra = scratch.join("extra-column.csv");
    std::fs::write(
        &extra,
        "sepal_length,sepal_width,petal_length,petal_width,species,colour\n5.1,3.5,1.4,0.2,setosa,red\n",
    )
    .unwrap();
    cloud
        .sluice(&["ingest", "iris", extra.to_str().unwrap(), "--wait"])
        .expect_code(4)
        .says("FAILED")
        .complains("ingest them again");

    // Train and follow the job to the gate's decision.
    cloud
        .sluice(&["train", "iris", "--dataset", "iris", "--target", "species", "--algorithm", "linear", "--wait"])
        .ok()
        .says("iris version 1: Approved, production")
        .says("accuracy")
        .complains("registered");
    cloud.sluice(&["models"]).ok().says("iris");
    assert_eq!(cloud.sluice(&["models", "iris", "--json"]).ok().json()["production_version"], 1);
    cloud.sluice(&["models", "iris"]).ok().says("model iris: production version 1");
    cloud.sluice(&["events", "iris"]).ok().says("registered");

    // Decisions by hand.
    cloud.sluice(&["reject", "iris", "1"]).ok().says("iris version 1: Rejected, not production");
    cloud.sluice(&["approve", "iris", "1"]).ok().says("iris version 1: Approved, production");

    // Predictions from JSON rows and from a CSV file (values as ingested).
    let row = r#"[{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}]"#;
    cloud.sluice(&["predict", "iris", "--rows", row]).ok().says("iris version 1").says("setosa");
    let answer = cloud.sluice(&["predict", "iris", "--file", &sample("iris.csv"), "--json"]).ok().json();
    assert_eq!(answer["predictions"].as_array().map(Vec::len), Some(12), "{answer}");

    // The API's errors: exit 1 with its message and what to do; with --json, its document.
    cloud
        .sluice(&["train", "iris", "--dataset", "iris", "--target", "colour"])
        .expect_code(1)
        .complains("invalid_request")
        .complains("colour")
        .complains("what to do");
    let refused = cloud.sluice(&["predict", "iris", "--rows", r#"{"sepal_length": "tall"}"#, "--json"]).expect_code(1);
    assert_eq!(refused.json()["error"]["code"], "invalid_row", "{}", refused.stdout);
    cloud.sluice(&["models", "nosuchmodel"]).expect_code(1).complains("404").complains("sluice models");

    // --stack: the API URL from the stack's outputs (CloudFormation on the local endpoint),
    // requests signed (the local API ignores signatures); an unknown stack exits 3.
    let template = format!(
        r#"{{"Resources": {{"P": {{"Type": "AWS::SSM::Parameter", "Properties": {{"Name": "api-url", "Type": "String", "Value": "-"}}}}}},
            "Outputs": {{"ApiUrl": {{"Value": "{}"}}}}}}"#,
        cloud.api
    );
    let created = Command::new(project_root().join(".venv/bin/python"))
        .args(["-c", "import boto3, sys; boto3.client('cloudformation', endpoint_url=sys.argv[1]).create_stack(StackName='deployed', TemplateBody=sys.argv[2])"])
        .args([&cloud.aws_endpoint, &template])
        .envs(aws_env(&cloud.aws_endpoint))
        .status()
        .expect("python runs");
    assert!(created.success(), "the stack was created on the local endpoint");
    run(&["models", "--stack", "deployed"], &aws_env(&cloud.aws_endpoint)).ok().says("iris");
    run(&["models", "--stack", "missing"], &aws_env(&cloud.aws_endpoint))
        .expect_code(3)
        .complains("cannot read stack missing");

    // `local provision` takes template parameters as `local up` does: a name the template
    // does not declare is refused.
    let root = project_root().display().to_string();
    let provision = ["local", "provision", "--endpoint", &cloud.aws_endpoint, "--project", &root, "--stack", "prov"];
    run(&[&provision[..], &["--parameter", "NoSuchParameter=1"]].concat(), &[])
        .expect_code(1)
        .complains("NoSuchParameter");
    run(&[&provision[..], &["--parameter", "MaxTrainingInstances=2"]].concat(), &[])
        .ok()
        .says("Provisioned stack prov");

    std::fs::remove_dir_all(&scratch).unwrap();
}

/// Credentials and region for the local endpoint, whatever the machine has configured.
fn aws_env(endpoint: &str) -> [(&'static str, &str); 7] {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_CONFIG_FILE", "/dev/null"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
    ]
}

#[test]
fn usage_errors_exit_2_and_an_unreachable_api_exits_3() {
    let unreachable = run(&["models", "--endpoint", "http://127.0.0.1:9"], &[]).expect_code(3);
    unreachable.complains("cannot reach the API at http://127.0.0.1:9").complains("sluice local up");
    run(&["predict", "iris"], &[]).expect_code(2);
    run(&["ingest", "iris", "notes.txt"], &[]).expect_code(2).complains("cannot tell the content type");
    run(&["models", "--endpoint", "http://127.0.0.1:9", "--stack", "x"], &[]).expect_code(2);
}

/// The browser for the dashboard test: scripts/setup-browser.sh finds Chromium, or installs
/// it where it can, or says how.
fn chromium() -> String {
    let setup = Command::new("bash")
        .arg(project_root().join("scripts/setup-browser.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("bash runs");
    assert!(setup.status.success(), "no Chromium for the dashboard test: scripts/setup-browser.sh says how above");
    String::from_utf8(setup.stdout).unwrap().lines().last().expect("the browser's path").to_owned()
}

/// Where the browser tests save their screenshots.
fn screenshots() -> PathBuf {
    project_root().join("target/dashboard-screenshots")
}

/// Runs `tests/browser/SCRIPT DASHBOARD SCREENSHOTS ARGS…` with node in headless Chromium;
/// the JSON line it prints, what it saw.
fn drive_browser(script: &str, dashboard: &str, args: &[&str]) -> Value {
    let browser = chromium();
    let runner = project_root().join("tests/browser");
    assert!(
        runner.join("node_modules/playwright-core").is_dir(),
        "tests/browser/node_modules is missing: run scripts/setup-node.sh"
    );
    let driven = Command::new("node")
        .arg(runner.join(script))
        .arg(dashboard)
        .arg(screenshots())
        .args(args)
        .env("CHROMIUM", &browser)
        .current_dir(&runner)
        .stderr(Stdio::inherit())
        .output()
        .expect("node runs (Node.js 20 or later)");
    let stdout = String::from_utf8_lossy(&driven.stdout);
    assert!(driven.status.success(), "{script} failed (its error is above):\n{stdout}");
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|err| panic!("{script} prints what it saw ({err}):\n{stdout}"))
}

/// A raw HTTP/1.1 request to the dashboard at `url` (as it printed it, `?token=` included);
/// `ADDRESS` and `TOKEN` in `request` become its address and token. Its status code and the
/// whole answer.
fn raw_request(url: &str, request: &str) -> (u16, String) {
    let (address, token) = url.trim_start_matches("http://").split_once("/?token=").expect("the URL has a token");
    let mut stream = std::net::TcpStream::connect(address).expect("the dashboard listens");
    let request = request.replace("ADDRESS", address).replace("TOKEN", token);
    std::io::Write::write_all(&mut stream, request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    (status, answer)
}

#[test]
fn the_dashboard_shows_datasets_models_and_predictions_in_a_browser() {
    let cloud = LocalUp::start("dash", &[]);
    cloud.sluice(&["ingest", "iris", &sample("iris-full.csv"), "--wait"]).ok();
    cloud
        .sluice(&["train", "iris", "--dataset", "iris", "--target", "species", "--algorithm", "linear", "--wait"])
        .ok();

    // The pages come with a policy that allows nothing but the dashboard's own files; API
    // calls with this run's token are forwarded, any other is refused, and the proxy answers
    // only its own loopback host.
    let (status, page) = raw_request(&cloud.dashboard, "GET / HTTP/1.1\r\nHost: ADDRESS\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 200, "{page}");
    assert!(page.to_ascii_lowercase().contains("content-security-policy: default-src 'none'"), "{page}");
    let with_token =
        "GET /api/models HTTP/1.1\r\nHost: ADDRESS\r\nx-sluice-dashboard: TOKEN\r\nConnection: close\r\n\r\n";
    let (status, models) = raw_request(&cloud.dashboard, with_token);
    assert!(status == 200 && models.contains("\"iris\""), "{models}");
    for refused in [
        "GET /api/models HTTP/1.1\r\nHost: ADDRESS\r\nConnection: close\r\n\r\n",
        "GET /api/models HTTP/1.1\r\nHost: ADDRESS\r\nx-sluice-dashboard: 1\r\nConnection: close\r\n\r\n",
        "GET /api/models HTTP/1.1\r\nHost: attacker.example\r\nx-sluice-dashboard: TOKEN\r\nConnection: close\r\n\r\n",
        "POST /api/models/iris/versions/1/reject HTTP/1.1\r\nHost: ADDRESS\r\nOrigin: https://attacker.example\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    ] {
        let (status, answer) = raw_request(&cloud.dashboard, refused);
        assert_eq!(status, 403, "{refused}\n{answer}");
    }
    assert_eq!(
        cloud.sluice(&["models", "iris", "--json"]).ok().json()["production_version"],
        1,
        "nothing was rejected"
    );

    let row = serde_json::json!({"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2, "petal_width": 2.3});
    let seen = drive_browser("dashboard.mjs", &cloud.dashboard, &[&row.to_string()]);

    assert_eq!(seen["datasets"], serde_json::json!(["iris"]), "{seen}");
    assert_eq!(seen["rows_out"], 149, "{seen}");
    assert!(seen["histogram_bars"].as_u64().unwrap() > 1 && seen["species_bars"].as_u64().unwrap() == 3, "{seen}");
    assert_eq!(seen["rejected_reasons"].as_array().map(Vec::len), Some(1), "iris-full.csv's one rejected row: {seen}");
    assert_eq!(seen["models"], serde_json::json!(["iris"]), "{seen}");
    assert_eq!(
        [&seen["production_before"], &seen["production_after_reject"], &seen["production_after_approve"]],
        ["1", "none", "1"],
        "{seen}"
    );
    let events: Vec<&str> = seen["events"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(events.contains(&"registered") && events.contains(&"decided"), "{seen}");
    let answer = cloud.sluice(&["predict", "iris", "--rows", &row.to_string(), "--json"]).ok().json();
    assert_eq!(seen["prediction"], answer["predictions"][0]["prediction"], "the form answers as the API does: {seen}");
    assert!(seen["requests"].as_f64().is_some_and(|n| n >= 1.0), "the model page counts requests: {seen}");
    assert_eq!(seen["page_errors"], serde_json::json!([]), "{seen}");
    for page in
        ["datasets", "dataset", "models", "model", "model-decided", "predict-form", "predict-answer", "model-serving"]
    {
        assert!(screenshots().join(format!("{page}.png")).is_file(), "screenshot {page}.png");
    }
    eprintln!(
        "dashboard: navigation to the datasets table drawn from the API: {} ms first, {} ms again",
        seen["first_paint_ms"], seen["warm_paint_ms"]
    );
}

/// Executes a notebook with nbclient: `python -c EXECUTE NOTEBOOK OUTPUT`; the executed copy,
/// outputs and any error included, is written even when a cell fails.
const EXECUTE: &str = r#"
import sys, nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
notebook = nbformat.read(sys.argv[1], as_version=4)
try:
    # The kernel over local sockets, not loopback TCP that any local user could reach.
    kernel = KernelManager(kernel_name="python3", transport="ipc")
    NotebookClient(notebook, km=kernel, timeout=900).execute()
finally:
    nbformat.write(notebook, sys.argv[2])
"#;

#[test]
fn the_notebook_runs_from_ingest_to_prediction_and_drift() {
    let python = project_root().join(".venv/notebook/bin/python");
    assert!(python.is_file(), "{} is missing: run scripts/setup.sh", python.display());
    // The monitor's 15-minute schedule every 7.5 s, so that the notebook sees a drift report.
    let cloud = LocalUp::start("nb", &["--clock-speed", "120"]);
    let notebooks = project_root().join("notebooks");
    let executed = project_root().join("target/notebook/explore.ipynb");
    std::fs::create_dir_all(executed.parent().unwrap()).unwrap();
    let status = Command::new(&python)
        .args(["-c", EXECUTE])
        .arg(notebooks.join("explore.ipynb"))
        .arg(&executed)
        .current_dir(&notebooks)
        .envs(aws_env(&cloud.aws_endpoint))
        .env("SLUICE_API", &cloud.api)
        .env("SLUICE_CURATED_BUCKET", cloud.bucket("CuratedBucket"))
        .env("SLUICE_DRIFT_WAIT", "300")
        .status()
        .expect("the notebook's python runs");
    assert!(status.success(), "the notebook failed (the failing cell is above; outputs in {})", executed.display());

    let notebook: Value = serde_json::from_str(&std::fs::read_to_string(&executed).unwrap()).unwrap();
    let outputs: Vec<&Value> = notebook["cells"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|cell| cell["outputs"].as_array().into_iter().flatten())
        .collect();
    let text: String = outputs
        .iter()
        .flat_map(|output| [&output["text"], &output["data"]["text/plain"]])
        .flat_map(|lines| lines.as_array().into_iter().flatten().filter_map(Value::as_str))
        .collect();
    for expected in ["PROCESSED", "149 rows", "registered", "version 1:", "drift report: drift"] {
        assert!(text.contains(expected), "the notebook's outputs do not say {expected:?}:\n{text}");
    }
    let plots = outputs.iter().filter(|output| output["data"]["image/png"].is_string()).count();
    assert_eq!(plots, 2, "the profile's histograms and the drift plot");

    // The dashboard of the same cloud draws that traffic and drift on the model's page.
    let seen = drive_browser("health.mjs", &cloud.dashboard, &[]);
    assert_eq!(seen["requests"], 4, "the notebook's four prediction requests: {seen}");
    assert!(seen["feature_lines"].as_u64().is_some_and(|n| n >= 2), "a line per feature: {seen}");
    let drifting: Vec<&str> = seen["drifting_features"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(drifting.contains(&"drift"), "the latest report's drifting features are marked: {seen}");
    assert_eq!(seen["page_errors"], serde_json::json!([]), "{seen}");
}
