//! The progress line on stderr while a scenario runs: rewritten in place (`\r`) at most once
//! per second by the loop that waits for the scenario's end.

use std::io::Write as _;
use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_secs(1);

pub struct Progress {
    label: String,
    total: u64,
    started: Instant,
    shown: (Instant, u64),
}

impl Progress {
    pub fn new(label: impl Into<String>, total: u64) -> Self {
        let now = Instant::now();
        Self {
            label: label.into(),
            total,
            started: now,
            shown: (now, 0),
        }
    }

    /// Shows `done` with the rate since the last line, if a second has passed.
    pub fn update(&mut self, done: u64) {
        let now = Instant::now();
        let since = now.duration_since(self.shown.0);
        if since < EVERY {
            return;
        }
        let rate = done.saturating_sub(self.shown.1) as f64 / since.as_secs_f64();
        self.print(&format!("{done:>8}/{:<8} {rate:>8.0}/s", self.total), "");
        self.shown = (now, done);
    }

    /// The final line, kept on screen.
    pub fn finish(self, done: u64, outcome: &str) {
        self.print(&format!("{done:>8}/{:<8} {outcome:>10}", self.total), "\n");
    }

    fn print(&self, figures: &str, end: &str) {
        let elapsed = self.started.elapsed().as_secs_f64();
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r  {:<34} {figures} {elapsed:>7.1} s   {end}",
            self.label
        );
        let _ = err.flush();
    }
}
