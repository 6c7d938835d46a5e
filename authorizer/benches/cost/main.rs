//! `cargo bench -p authorizer --bench cost`: the authorizer's cold and warm duration without an
//! AWS account. The release binary runs as Lambda runs it, against a fake Runtime API on
//! 127.0.0.1 ([`runtime_api`]):
//!
//! - cold init: from the spawn to the process's first `GET .../invocation/next` (what Lambda
//!   reports as Init Duration, less the sandbox's own start), over several processes;
//! - the first invocations of each process, then warm invocations (back to back, one process)
//!   for an Allow, a Deny (bad signature) and an `Unauthorized` (no token): from the answer
//!   to `/next` to the function's `/response` or `/error` (what Lambda reports as Duration);
//! - the same with `AUTH_JWKS_URL` (RS256, a JWK Set served by the fake): the first
//!   invocation fetches the keys, later ones verify against the cache.
//!
//! Every answer is checked (Allow / Deny / `Unauthorized`); timings are reported, never
//! asserted. The table goes to stdout and to `<target>/bench/authorizer-cost.txt`
//! (`authorizer-cost-other-bin.txt` with `AUTHORIZER_COST_BIN`), the function's own output
//! to `<target>/bench/authorizer-cost-{hs256,jwks}.log`.
//!
//! Without `--bench` (`cargo test --benches`) it is a smoke run: one process, 20 warm
//! invocations per case, no report file. Knobs: `AUTHORIZER_COST_SPAWNS` (default 10),
//! `AUTHORIZER_COST_WARM` (default 1000), `AUTHORIZER_COST_BIN` (another build of the
//! authorizer, e.g. the `bootstrap` of the Lambda zip).

mod events;
mod report;
mod runtime_api;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use report::{Row, Section};
use runtime_api::{Answer, FakeRuntimeApi, Function, PostKind, Stopped};

const BIN: &str = env!("CARGO_BIN_EXE_authorizer");
/// Bench-only; `AUTH_JWT_SECRET` needs at least 32 bytes.
const SECRET: &str = "bench-only-secret-0123456789abcdef";
const WRONG_SECRET: &str = "not-the-configured-secret-0123456789";

struct Settings {
    bin: PathBuf,
    spawns: usize,
    warm: usize,
    /// `--bench`: the full run and the report file.
    full: bool,
    out_dir: PathBuf,
}

impl Settings {
    fn read() -> Self {
        let full = std::env::args().any(|arg| arg == "--bench");
        let number = |name: &str, default: usize| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .filter(|&n: &usize| n > 0)
                .unwrap_or(default)
        };
        let bin = std::env::var_os("AUTHORIZER_COST_BIN")
            .map_or_else(|| PathBuf::from(BIN), PathBuf::from);
        // <target>/<profile>/authorizer
        let target = Path::new(BIN)
            .parent()
            .and_then(Path::parent)
            .map_or_else(|| PathBuf::from("target"), Path::to_path_buf);
        Self {
            bin,
            spawns: number("AUTHORIZER_COST_SPAWNS", if full { 10 } else { 1 }),
            warm: number("AUTHORIZER_COST_WARM", if full { 1000 } else { 20 }),
            full,
            out_dir: target.join("bench"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Allow,
    Deny,
    Unauthorized,
}

/// One kind of request and the answer it must get.
struct Case {
    label: &'static str,
    event: Arc<[u8]>,
    expect: Expect,
}

impl Case {
    fn new(label: &'static str, token: Option<&str>, expect: Expect) -> Self {
        Self {
            label,
            event: events::connect_event(token),
            expect,
        }
    }

    fn check(&self, answer: &Answer) {
        let body = &answer.body;
        let statement = &body["policyDocument"]["Statement"][0];
        let policy = |effect: &str| {
            answer.kind == PostKind::Response
                && statement["Effect"] == effect
                && statement["Action"][0] == "execute-api:Invoke"
                && statement["Resource"][0] == events::METHOD_ARN
        };
        let ok = match self.expect {
            Expect::Allow => {
                policy("Allow")
                    && body["principalId"] == events::SUBJECT
                    && body["context"]["subject"] == events::SUBJECT
                    && body["context"]["entityTypes"] == "stream,batch"
            }
            Expect::Deny => policy("Deny") && body["principalId"] == "anonymous",
            Expect::Unauthorized => {
                answer.kind == PostKind::Error
                    && body["errorType"] == "Unauthorized"
                    && body["errorMessage"] == "Unauthorized"
            }
        };
        assert!(
            ok,
            "{}: expected {:?}, the authorizer posted {:?} (error type {:?}): {body}",
            self.label, self.expect, answer.kind, answer.error_type
        );
    }
}

/// One invocation whose answer must be the expected one, into `row`.
async fn invoke(function: &mut Function, case: &Case, row: &mut Row) {
    let answer = function.invoke(&case.event).await;
    case.check(&answer);
    row.push_invocation(answer.duration, answer.new_connections);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeySource {
    /// `AUTH_JWT_SECRET`: HS256.
    Secret,
    /// `AUTH_JWKS_URL` at the fake: RS256 / ES256.
    Jwks,
}

/// A configuration: its first invocations in each process, its warm cases in the last one.
struct Scenario {
    title: String,
    keys: KeySource,
    log: PathBuf,
    first: Vec<(&'static str, Case)>,
    warm: Vec<Case>,
}

async fn run(scenario: &Scenario, settings: &Settings) -> Section {
    let mut init = Row::init("cold init: spawn -> first GET /next");
    let mut first: Vec<Row> = scenario
        .first
        .iter()
        .map(|(label, _)| Row::invocations(*label))
        .collect();
    let mut warm: Vec<Row> = scenario
        .warm
        .iter()
        .map(|case| Row::invocations(format!("warm: {}", case.label)))
        .collect();
    let mut stopped: Vec<Stopped> = Vec::new();
    for spawn in 1..=settings.spawns {
        let jwks = (scenario.keys == KeySource::Jwks).then(|| events::JWKS.as_bytes().to_vec());
        let api = FakeRuntimeApi::start(jwks)
            .await
            .expect("a loopback listener");
        let mut env = vec![
            ("STAGE", "bench".to_owned()),
            ("AUTH_MODE", "jwt".to_owned()),
        ];
        match scenario.keys {
            KeySource::Secret => env.push(("AUTH_JWT_SECRET", SECRET.to_owned())),
            KeySource::Jwks => env.push(("AUTH_JWKS_URL", api.jwks_url())),
        }
        let mut function = Function::spawn(&settings.bin, api, &env, &scenario.log)
            .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", settings.bin.display()));
        init.push(function.init_duration().await);
        for (row, (_, case)) in first.iter_mut().zip(&scenario.first) {
            invoke(&mut function, case, row).await;
        }
        if spawn == settings.spawns {
            for (row, case) in warm.iter_mut().zip(&scenario.warm) {
                for _ in 0..settings.warm {
                    invoke(&mut function, case, row).await;
                }
            }
        }
        stopped.push(function.stop().await);
    }
    let mut rows = vec![init];
    rows.extend(first);
    rows.extend(warm);
    Section {
        title: scenario.title.clone(),
        rows,
        notes: notes(scenario, &stopped),
    }
}

fn notes(scenario: &Scenario, stopped: &[Stopped]) -> Vec<String> {
    let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
    let range = |values: Vec<usize>| match (values.iter().min(), values.iter().max()) {
        (Some(min), Some(max)) if min == max => min.to_string(),
        (Some(min), Some(max)) => format!("{min}..{max}"),
        _ => "-".to_owned(),
    };
    let mut notes = Vec::new();
    let cold_rss: Vec<u64> = stopped[..stopped.len().saturating_sub(1)]
        .iter()
        .filter_map(|s| s.peak_rss_kib)
        .collect();
    let warm_rss = stopped.last().and_then(|s| s.peak_rss_kib);
    notes.push(format!(
        "peak RSS (VmHWM, Lambda's \"Max Memory Used\"): {} after the warm runs{}",
        warm_rss.map_or_else(|| "?".to_owned(), mib),
        match (cold_rss.iter().min(), cold_rss.iter().max()) {
            (Some(&min), Some(&max)) => format!(
                ", {}..{} after the first invocations only",
                mib(min),
                mib(max)
            ),
            _ => String::new(),
        }
    ));
    notes.push(format!(
        "TCP connections opened to the fake per process: {}",
        range(stopped.iter().map(|s| s.connections).collect())
    ));
    if scenario.keys == KeySource::Jwks {
        notes.push(format!(
            "JWKS fetches per process: {}",
            range(stopped.iter().map(|s| s.jwks_fetches).collect())
        ));
    }
    notes
}

fn scenarios(settings: &Settings) -> Vec<Scenario> {
    let spawns = settings.spawns;
    let warm = settings.warm;
    let hs256 = events::hs256(SECRET);
    let hs256_forged = events::hs256(WRONG_SECRET);
    let rs256 = events::rs256(true);
    let rs256_forged = events::rs256(false);
    vec![
        Scenario {
            title: format!(
                "HS256 (AUTH_JWT_SECRET): {spawns} process(es), x{warm} warm in the last"
            ),
            keys: KeySource::Secret,
            log: settings.out_dir.join("authorizer-cost-hs256.log"),
            first: vec![
                (
                    "1st invocation: Allow",
                    Case::new("Allow", Some(&hs256), Expect::Allow),
                ),
                (
                    "2nd invocation: first Deny (bad signature)",
                    Case::new("Deny", Some(&hs256_forged), Expect::Deny),
                ),
                (
                    "3rd invocation: first Unauthorized (no token)",
                    Case::new("Unauthorized", None, Expect::Unauthorized),
                ),
            ],
            warm: vec![
                Case::new("Allow", Some(&hs256), Expect::Allow),
                Case::new("Deny (bad signature)", Some(&hs256_forged), Expect::Deny),
                Case::new("Unauthorized (no token)", None, Expect::Unauthorized),
            ],
        },
        Scenario {
            title: format!(
                "RS256 (AUTH_JWKS_URL, JWKS on the fake): {spawns} process(es), x{warm} warm in the last"
            ),
            keys: KeySource::Jwks,
            log: settings.out_dir.join("authorizer-cost-jwks.log"),
            first: vec![
                (
                    "1st invocation: Allow, JWKS fetched",
                    Case::new("Allow", Some(&rs256), Expect::Allow),
                ),
                (
                    "2nd invocation: Allow, key cached",
                    Case::new("Allow", Some(&rs256), Expect::Allow),
                ),
            ],
            warm: vec![
                Case::new("Allow (key cached)", Some(&rs256), Expect::Allow),
                Case::new(
                    "Deny (bad signature, known kid)",
                    Some(&rs256_forged),
                    Expect::Deny,
                ),
            ],
        },
    ]
}

fn main() {
    let settings = Settings::read();
    std::fs::create_dir_all(&settings.out_dir).expect("the bench output directory");
    let scenarios = scenarios(&settings);
    for scenario in &scenarios {
        let _ = std::fs::remove_file(&scenario.log);
    }
    // One thread: the bench competes as little as possible with the function for the CPUs.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let load_before = report::load_average();
    let mut sections = Vec::new();
    for scenario in &scenarios {
        sections.push(runtime.block_on(run(scenario, &settings)));
    }
    let load_after = report::load_average();

    let size = std::fs::metadata(&settings.bin).map_or(0, |m| m.len());
    let header = vec![
        format!(
            "authorizer cost{}",
            if settings.full {
                ""
            } else {
                " (smoke run: not a measurement; use cargo bench)"
            }
        ),
        format!(
            "binary: {} ({:.1} MiB{})",
            settings.bin.display(),
            size as f64 / (1024.0 * 1024.0),
            if settings.bin == Path::new(BIN) {
                ", built by cargo for this bench"
            } else {
                ", from AUTHORIZER_COST_BIN"
            }
        ),
        format!(
            "machine: {}; 1-min load average {load_before} before, {load_after} after",
            report::machine()
        ),
        "method: a fake Lambda Runtime API on 127.0.0.1 per process (AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256, not enforced);".to_owned(),
        "  cold init = spawn -> the first GET /next; an invocation = /next answered -> its /response or /error read in full;".to_owned(),
        "  warm = back-to-back invocations of one process. Every answer checked (Allow / Deny / Unauthorized).".to_owned(),
        "not included: Lambda's sandbox start and code download, and its CPU share (proportional to memory,".to_owned(),
        "  1,769 MB = 1 vCPU): on a 256 MB function expect larger figures than these.".to_owned(),
    ];
    let text = report::render(&header, &sections);
    print!("{text}");
    if settings.full {
        // A run on another build (AUTHORIZER_COST_BIN) does not replace the report of this one.
        let name = if settings.bin == Path::new(BIN) {
            "authorizer-cost.txt"
        } else {
            "authorizer-cost-other-bin.txt"
        };
        let path = settings.out_dir.join(name);
        std::fs::write(&path, text).expect("the report file");
        println!("\nwritten to {}", path.display());
    }
}
