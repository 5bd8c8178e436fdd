//! The `sluice` client commands as a user runs them: the binary as a subprocess against a
//! real local cloud (`sluice local up`, which starts its own moto server), checking what it
//! prints and the exit codes scripts rely on. One local cloud serves the whole lifecycle.
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
    aws_endpoint: String,
    // Held open: the process prints to it until it stops.
    _stdout: BufReader<ChildStdout>,
}

impl LocalUp {
    fn start() -> Self {
        let trainer = Path::new(SLUICE).with_file_name("train");
        assert!(
            trainer.is_file(),
            "{} is missing: build the trainer first (cargo build -p sluice-trainer)",
            trainer.display()
        );
        let mut child = Command::new(SLUICE)
            .args(["local", "up", "--port", "0", "--stack", &format!("cli{}", std::process::id())])
            .current_dir(project_root())
            .stdout(Stdio::piped())
            .spawn()
            .expect("sluice local up starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let (mut api, mut aws_endpoint) = (None, None);
        let mut line = String::new();
        loop {
            line.clear();
            let read = stdout.read_line(&mut line).expect("reads sluice local up's output");
            assert!(read > 0, "sluice local up stopped before it was up (its errors are above)");
            let field = |name: &str| line.trim().strip_prefix(name).map(|rest| rest.trim().to_owned());
            api = api.or_else(|| field("API"));
            aws_endpoint = aws_endpoint.or_else(|| field("AWS endpoint"));
            if line.starts_with("Press Ctrl-C") {
                break;
            }
        }
        Self {
            child,
            api: api.expect("an API line"),
            aws_endpoint: aws_endpoint.expect("an AWS endpoint line"),
            _stdout: stdout,
        }
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
    let cloud = LocalUp::start();
    let scratch = std::env::temp_dir().join(format!("sluice-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();

    // Ingest and follow the ETL.
    cloud
        .sluice(&["ingest", "iris", &sample("iris-full.csv"), "--wait"])
        .ok()
        .says("PROCESSED, 150 rows in, 149 out, 1 rejected");
    cloud.sluice(&["datasets", "iris"]).ok().says("rows     150 in, 149 out, 1 rejected").says("3 distinct: setosa 50");

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
