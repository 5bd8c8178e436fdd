//! A moto server owned by this process.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum MotoError {
    #[error("no Python environment with moto at {0}: run scripts/setup.sh first (it creates .venv)")]
    NoVirtualenv(PathBuf),
    #[error("could not start moto server: {0}")]
    Spawn(#[from] std::io::Error),
    #[error("moto server exited before it was ready (see its output above)")]
    NotReady,
}

/// A running moto server. It stops when this value is dropped, and also when this process
/// exits by any route: the server watches its standard input, which closes with us.
pub struct MotoServer {
    child: Child,
    endpoint: String,
}

impl MotoServer {
    /// Starts `localstack/moto_server.py` from the project's virtualenv (or `SLUICE_PYTHON`)
    /// on a free loopback port and waits until it answers.
    pub fn start(project_root: &Path) -> Result<Self, MotoError> {
        let python = std::env::var_os("SLUICE_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| project_root.join(".venv/bin/python"));
        if !python.exists() {
            return Err(MotoError::NoVirtualenv(python));
        }
        let mut child = Command::new(&python)
            .arg(project_root.join("localstack/moto_server.py"))
            .arg("--exit-with-stdin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut first_line = String::new();
        BufReader::new(stdout).read_line(&mut first_line)?;
        let endpoint = first_line.trim().to_owned();
        if !endpoint.starts_with("http://") {
            let _ = child.kill();
            let _ = child.wait();
            return Err(MotoError::NotReady);
        }
        Ok(Self { child, endpoint })
    }

    /// `http://127.0.0.1:<port>`, for `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        // Closing stdin asks for a clean stop; kill covers a server that does not stop in time.
        drop(self.child.stdin.take());
        for _ in 0..40 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The project root: the nearest ancestor of `start` holding `template.yaml`.
pub fn find_project_root(start: &Path) -> Option<PathBuf> {
    start.ancestors().find(|dir| dir.join("template.yaml").is_file()).map(Path::to_path_buf)
}
