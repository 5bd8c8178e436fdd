use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use sluice_cli::client::{Api, Target};
use sluice_cli::commands::{ApiCommand, DASHBOARD_PORT};
use sluice_cli::dashboard::Dashboard;
use sluice_cli::{LocalCloud, LocalOptions, METRICS_FILE, demo, project_root};
use sluice_localcloud::clock::Clock;

/// Sluice: serverless MLOps on AWS, and its local cloud.
///
/// The commands other than `local` use Sluice's HTTP API: the local cloud's
/// (http://127.0.0.1:3000, or --endpoint URL / SLUICE_API) or a deployed stack's
/// (--stack NAME: its ApiUrl output, requests SigV4-signed with your AWS credentials).
#[derive(Parser)]
#[command(
    version,
    after_help = "Exit codes:\n  0  done\n  1  the API answered with an error (its message is printed; with --json its JSON is on stdout), or a `local` command failed\n  2  usage error (arguments, unreadable or unknown files)\n  3  the API cannot be reached: endpoint down, stack or its ApiUrl output not found, missing or refused AWS credentials\n  4  --wait ended in FAILED (the ETL of a file, or a training job)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The local cloud: AWS APIs on a local endpoint, Sluice's functions in process.
    #[command(subcommand)]
    Local(Local),
    #[command(flatten)]
    Api(ApiCommand),
}

#[derive(Subcommand)]
enum Local {
    /// Create the template's resources and serve its API on localhost until Ctrl-C.
    Up {
        #[command(flatten)]
        options: Options,
        /// Port for the API on 127.0.0.1.
        #[arg(long, default_value_t = 3000)]
        port: u16,
        /// Port for the web dashboard on 127.0.0.1 (0: any free port).
        #[arg(long, default_value_t = DASHBOARD_PORT)]
        dashboard_port: u16,
    },
    /// Create the template's resources on the endpoint, then exit.
    Provision {
        #[command(flatten)]
        options: Options,
    },
    /// Start a private local cloud and run the whole lifecycle on the samples: ingest, ETL,
    /// train, serve, drift, alarm, remediation, retraining, promotion; then stop.
    Demo {
        #[command(flatten)]
        options: Options,
    },
}

#[derive(Args)]
struct Options {
    /// AWS endpoint to use, e.g. http://localhost:4566 for LocalStack. Without it (and
    /// without AWS_ENDPOINT_URL), a private moto server is started and stopped with sluice.
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    endpoint: Option<String>,
    /// Stack name: prefixes the local resource names.
    #[arg(long, default_value = "sluice")]
    stack: String,
    /// Project root holding template.yaml (default: found from the working directory).
    #[arg(long)]
    project: Option<PathBuf>,
    /// Sets a template parameter, as `sam deploy --parameter-overrides` does
    /// (e.g. --parameter MonitorPeriodMinutes=5); repeatable.
    #[arg(long = "parameter", value_name = "NAME=VALUE", value_parser = parameter)]
    parameters: Vec<(String, String)>,
    /// Runs schedules, alarm periods and capture buffers this many times faster than real
    /// time (e.g. 60: a 15-minute schedule fires every 15 s). Default: real time, and
    /// 120 for the demo.
    #[arg(long, env = "SLUICE_CLOCK_SPEED")]
    clock_speed: Option<f64>,
    /// The endpoint evaluates CloudWatch alarms itself (LocalStack does; moto does not).
    #[arg(long)]
    endpoint_evaluates_alarms: bool,
}

fn parameter(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))
}

/// The demo's clock: the 15-minute monitoring schedule every 7.5 s.
const DEMO_CLOCK_SPEED: f64 = 120.0;

/// What the demo sets unless told otherwise: remediation retrains on the data that arrived
/// after the production version was trained (the demo's whole timeline fits in one day),
/// and predict looks for a new production version every second.
const DEMO_PARAMETERS: [(&str, &str); 2] = [("RetrainWindowDays", "0"), ("ModelRefreshSeconds", "1")];

impl Options {
    /// The demo's clock and parameters where the command line gives none.
    fn for_demo(mut self) -> Self {
        self.clock_speed.get_or_insert(DEMO_CLOCK_SPEED);
        for (name, value) in DEMO_PARAMETERS {
            if !self.parameters.iter().any(|(n, _)| n == name) {
                self.parameters.push((name.to_owned(), value.to_owned()));
            }
        }
        self
    }

    fn local(self, port: u16) -> Result<LocalOptions, String> {
        let project_root = self
            .project
            .or_else(project_root)
            .ok_or("no template.yaml found here or above; run sluice inside the project or pass --project")?;
        Ok(LocalOptions {
            endpoint: self.endpoint,
            parameters: self.parameters.into_iter().collect::<BTreeMap<_, _>>(),
            clock: Clock::new(self.clock_speed.unwrap_or(1.0)).map_err(|e| e.to_string())?,
            endpoint_evaluates_alarms: self.endpoint_evaluates_alarms,
            ..LocalOptions::new(project_root, &self.stack, SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        })
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The local cloud logs its functions' warnings; the API commands say what went wrong in
    // their errors, so the SDK's own warnings (no region in IMDS…) only show with SLUICE_LOG.
    let default_level = if matches!(cli.command, Command::Local(_)) { "warn" } else { "off" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG").unwrap_or_else(|_| default_level.into()),
        )
        .with_writer(std::io::stderr)
        .json()
        .init();
    match cli.command {
        Command::Api(command) => sluice_cli::commands::run(command).await,
        Command::Local(local) => match run(local).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("sluice: {message}");
                ExitCode::FAILURE
            }
        },
    }
}

async fn run(local: Local) -> Result<(), String> {
    match local {
        Local::Up { options, port, dashboard_port } => {
            let options = options.local(port)?;
            let cloud = LocalCloud::start(&options).await.map_err(|e| e.to_string())?;
            let api = Api::connect(&Target::Endpoint(cloud.api.url())).await.map_err(|e| e.to_string())?;
            let dashboard = Dashboard::serve(SocketAddr::from((Ipv4Addr::LOCALHOST, dashboard_port)), api)
                .await
                .map_err(|e| e.to_string())?;
            println!("Sluice local cloud is up (stack {}).", cloud.stack.name);
            println!("  AWS endpoint  {}", cloud.endpoint);
            println!("  API           {}", cloud.api.url());
            println!("  dashboard     {}", dashboard.url());
            println!("  metrics (EMF) {METRICS_FILE}");
            for bucket in &cloud.stack.buckets {
                println!("  bucket        {} ({})", bucket.name, bucket.logical_id);
            }
            for table in &cloud.stack.tables {
                println!("  table         {} ({})", table.name, table.logical_id);
            }
            for function in &cloud.stack.functions {
                for route in &function.http_routes {
                    println!("  route         {:<40} -> {}", route.route_key(), function.logical_id);
                }
            }
            for function in &cloud.stack.functions {
                for trigger in &function.s3_triggers {
                    println!("  S3 events     {} {:?} -> {}", trigger.bucket, trigger.events, function.logical_id);
                }
                if !function.event_patterns.is_empty() {
                    println!("  EventBridge   training job state changes -> {}", function.logical_id);
                }
                for schedule in &function.schedules {
                    println!("  schedule      {schedule} -> {}", function.logical_id);
                }
                for topic in &function.sns_topics {
                    println!("  SNS           {topic} -> {}", function.logical_id);
                }
            }
            for stream in &cloud.stack.delivery_streams {
                println!("  Firehose      {} -> s3://{}/{}", stream.name, stream.bucket, stream.prefix);
            }
            println!("  alarms        evaluated locally; clock {}x real time", cloud.clock.speed());
            println!(
                "  training jobs {}",
                if cloud.runs_training() {
                    "run locally with the trainer"
                } else {
                    "NOT run: build the trainer (cargo build -p sluice-trainer)"
                }
            );
            println!("Press Ctrl-C to stop.");
            tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
            println!("Stopping.");
            Ok(())
        }
        Local::Provision { options } => {
            let options = options.local(0)?;
            let endpoint = options.endpoint.clone().ok_or("provision needs --endpoint or AWS_ENDPOINT_URL")?;
            let clients = sluice_aws::AwsClients::for_local_endpoint(&endpoint).await;
            let stack = options.stack().map_err(|e| e.to_string())?;
            sluice_localcloud::provision::provision(&clients, &stack).await.map_err(|e| e.to_string())?;
            println!("Provisioned stack {} on {endpoint}.", stack.name);
            Ok(())
        }
        Local::Demo { options } => {
            let options = options.for_demo().local(0)?;
            let cloud = LocalCloud::start(&options).await.map_err(|e| e.to_string())?;
            demo::run(&cloud, &options.project_root).await.map_err(|e| e.to_string())?;
            Ok(())
        }
    }
}
