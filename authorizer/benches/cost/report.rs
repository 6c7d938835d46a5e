//! Samples, their summary and the table.

use std::fmt::Write as _;
use std::time::Duration;

/// One row of the table: a label and its timings.
pub struct Row {
    pub label: String,
    pub samples: Vec<Duration>,
    /// For invocation rows: how many opened a new TCP connection to the Runtime API.
    pub new_connections: Option<usize>,
}

impl Row {
    /// A row of cold inits.
    pub fn init(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            samples: Vec::new(),
            new_connections: None,
        }
    }

    /// A row of invocations.
    pub fn invocations(label: impl Into<String>) -> Self {
        Self {
            new_connections: Some(0),
            ..Self::init(label)
        }
    }

    pub fn push(&mut self, sample: Duration) {
        self.samples.push(sample);
    }

    pub fn push_invocation(&mut self, sample: Duration, new_connections: usize) {
        self.samples.push(sample);
        if let Some(count) = &mut self.new_connections {
            *count += usize::from(new_connections > 0);
        }
    }

    fn sorted(&self) -> Vec<Duration> {
        let mut sorted = self.samples.clone();
        sorted.sort_unstable();
        sorted
    }
}

/// The median (the mean of the middle two for an even count).
fn median(sorted: &[Duration]) -> Duration {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2
    }
}

/// Nearest rank: the smallest sample with at least `percent` % of the samples at or below it.
fn percentile(sorted: &[Duration], percent: usize) -> Duration {
    let rank = (sorted.len() * percent).div_ceil(100).max(1);
    sorted[rank - 1]
}

pub fn format_duration(d: Duration) -> String {
    let micros = d.as_secs_f64() * 1e6;
    if micros < 1000.0 {
        format!("{micros:.1} µs")
    } else {
        format!("{:.2} ms", micros / 1000.0)
    }
}

/// A titled group of rows, with free-form notes under it.
pub struct Section {
    pub title: String,
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
}

const LABEL_WIDTH: usize = 50;

pub fn render(header: &[String], sections: &[Section]) -> String {
    let mut out = String::new();
    for line in header {
        let _ = writeln!(out, "{line}");
    }
    for section in sections {
        let _ = writeln!(out);
        let _ = writeln!(out, "{}", section.title);
        let _ = writeln!(
            out,
            "{:<LABEL_WIDTH$} {:>5} {:>10} {:>10} {:>10} {:>10} {:>9}",
            "", "n", "min", "p50", "p99", "max", "new conn"
        );
        for row in &section.rows {
            let sorted = row.sorted();
            if sorted.is_empty() {
                let _ = writeln!(out, "  {:<w$} {:>5}", row.label, 0, w = LABEL_WIDTH - 2);
                continue;
            }
            let _ = writeln!(
                out,
                "  {:<w$} {:>5} {:>10} {:>10} {:>10} {:>10} {:>9}",
                row.label,
                sorted.len(),
                format_duration(sorted[0]),
                format_duration(median(&sorted)),
                format_duration(percentile(&sorted, 99)),
                format_duration(sorted[sorted.len() - 1]),
                row.new_connections
                    .map_or_else(String::new, |count| count.to_string()),
                w = LABEL_WIDTH - 2,
            );
        }
        for note in &section.notes {
            let _ = writeln!(out, "  {note}");
        }
        let _ = writeln!(
            out,
            "  (p50 of an even count: the mean of the middle two; new conn: invocations during which the function"
        );
        let _ = writeln!(
            out,
            "  opened a TCP connection to the fake: for a JWKS fetch, or because no pooled connection was idle yet)"
        );
    }
    out
}

/// CPU model, logical CPUs, kernel and load: what the numbers were taken on.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map_or("unknown CPU", |(_, model)| model.trim())
        .to_owned();
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpus} logical CPU(s), {model}, Linux {}", kernel.trim())
}

/// The 1-minute load average.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}
