//! One progress line on stderr, redrawn in place: only on a terminal, so pipes and logs
//! never see it.

use std::io::Write;
use std::time::{Duration, Instant};

pub struct Progress {
    enabled: bool,
    drawn: Option<Instant>,
}

/// Redraws at most this often: a fast upload would otherwise write a line per chunk.
const REDRAW: Duration = Duration::from_millis(100);

impl Progress {
    pub fn new(enabled: bool) -> Self {
        Self { enabled, drawn: None }
    }

    /// Replaces the line with `text`.
    pub fn show(&mut self, text: &str) {
        if !self.enabled || self.drawn.is_some_and(|at| at.elapsed() < REDRAW) {
            return;
        }
        self.drawn = Some(Instant::now());
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "\r\x1b[2K{text}");
        let _ = stderr.flush();
    }

    /// Clears the line, so what follows starts on a clean one.
    pub fn finish(&mut self) {
        if self.enabled && self.drawn.take().is_some() {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
