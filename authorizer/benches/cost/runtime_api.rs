//! A minimal fake of the Lambda Runtime API on 127.0.0.1 (hand-written HTTP/1.1, keep-alive,
//! `content-length` and chunked bodies: enough for `lambda_runtime`'s hyper client and for
//! reqwest), which also serves a JWK Set, and the authorizer process it drives.
//!
//! Times are taken on the bench's side of the socket, as Lambda's own Runtime API sees an
//! invocation: from the moment the answer to `GET .../invocation/next` is written to the
//! moment the function's `POST .../response` (or `.../error`) has been read in full.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

const NEXT_PATH: &str = "/2018-06-01/runtime/invocation/next";
const INVOCATION_PREFIX: &str = "/2018-06-01/runtime/invocation/";
const INIT_ERROR_PATH: &str = "/2018-06-01/runtime/init/error";
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

pub const FUNCTION_NAME: &str = "authorizer-bench";
const FUNCTION_ARN: &str = "arn:aws:lambda:eu-west-1:123456789012:function:authorizer-bench";
/// The function's timeout (infra/'s default for the authorizer), for the deadline header.
const FUNCTION_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the bench waits for the function to do anything before giving up on it.
const PATIENCE: Duration = Duration::from_secs(20);

/// The function's `GET .../invocation/next`, parked until the bench hands it an event.
struct NextPoll {
    arrived: Instant,
    reply: oneshot::Sender<Invocation>,
}

struct Invocation {
    request_id: String,
    event: Arc<[u8]>,
}

/// Which Runtime API endpoint the function posted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostKind {
    Response,
    Error,
    InitError,
}

/// A POST from the function, with when it was read in full.
struct Posted {
    kind: PostKind,
    request_id: Option<String>,
    error_type: Option<String>,
    body: Vec<u8>,
    received: Instant,
    /// When the event it answers was written to the function.
    delivered: Option<Instant>,
}

/// What the function answered to one invocation, and how long that took.
pub struct Answer {
    pub kind: PostKind,
    /// The `lambda-runtime-function-error-type` header of an error post.
    pub error_type: Option<String>,
    pub body: serde_json::Value,
    pub duration: Duration,
    /// TCP connections the function opened to the fake while the invocation was in flight
    /// (its runtime client found no idle pooled connection for the `POST`).
    pub new_connections: usize,
}

struct Shared {
    nexts: mpsc::UnboundedSender<NextPoll>,
    posts: mpsc::UnboundedSender<Posted>,
    delivered: Mutex<HashMap<String, Instant>>,
    jwks: Option<Vec<u8>>,
    jwks_fetches: AtomicUsize,
    connections: AtomicUsize,
}

/// The fake Runtime API of one function process (one per process, so that a killed
/// process's last parked poll never reaches the next one's measurements).
pub struct FakeRuntimeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    nexts: mpsc::UnboundedReceiver<NextPoll>,
    posts: mpsc::UnboundedReceiver<Posted>,
    accept: JoinHandle<()>,
}

impl FakeRuntimeApi {
    /// Listens on an ephemeral loopback port; serves `jwks` (a JWK Set document) at
    /// [`JWKS_PATH`] when given.
    pub async fn start(jwks: Option<Vec<u8>>) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (nexts_tx, nexts) = mpsc::unbounded_channel();
        let (posts_tx, posts) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            nexts: nexts_tx,
            posts: posts_tx,
            delivered: Mutex::new(HashMap::new()),
            jwks,
            jwks_fetches: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
        });
        let accept_shared = Arc::clone(&shared);
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                accept_shared.connections.fetch_add(1, Ordering::Relaxed);
                let shared = Arc::clone(&accept_shared);
                tokio::spawn(async move {
                    // A connection error ends that connection only; the function notices.
                    let _ = serve(stream, shared).await;
                });
            }
        });
        Ok(Self {
            addr,
            shared,
            nexts,
            posts,
            accept,
        })
    }

    /// `AWS_LAMBDA_RUNTIME_API`: host and port, no scheme.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    pub fn jwks_url(&self) -> String {
        format!("http://{}{JWKS_PATH}", self.addr)
    }
}

impl Drop for FakeRuntimeApi {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Serves one keep-alive connection until the peer closes it.
async fn serve(stream: TcpStream, shared: Arc<Shared>) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream);
    while let Some(request) = read_request(&mut reader).await? {
        let received = Instant::now();
        let close = request
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let bytes = match route(&request.method, &request.path) {
            Route::Next => {
                let (reply, parked) = oneshot::channel();
                let poll = NextPoll {
                    arrived: received,
                    reply,
                };
                if shared.nexts.send(poll).is_err() {
                    return Ok(());
                }
                // The bench dropped the poll: this process is being stopped.
                let Ok(invocation) = parked.await else {
                    return Ok(());
                };
                let deadline_ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .saturating_add(FUNCTION_TIMEOUT)
                    .as_millis();
                let headers = format!(
                    "lambda-runtime-aws-request-id: {id}\r\n\
                     lambda-runtime-deadline-ms: {deadline_ms}\r\n\
                     lambda-runtime-invoked-function-arn: {FUNCTION_ARN}\r\n\
                     lambda-runtime-trace-id: Root=1-674b3a1c-{trace:024x};Parent=53995c3f42cd8ad8;Sampled=0;Lineage=1:8f4e2c1a:0\r\n",
                    id = invocation.request_id,
                    trace = request_number(&invocation.request_id),
                );
                let bytes = response_bytes("200 OK", &headers, &invocation.event);
                // Taken last, right before the write: the invocation starts here.
                let delivered = Instant::now();
                lock(&shared.delivered).insert(invocation.request_id, delivered);
                reader.get_mut().write_all(&bytes).await?;
                if close {
                    return Ok(());
                }
                continue;
            }
            Route::Posted(kind, request_id) => {
                let delivered = request_id.and_then(|id| lock(&shared.delivered).remove(id));
                let posted = Posted {
                    kind,
                    request_id: request_id.map(str::to_owned),
                    error_type: request
                        .header("lambda-runtime-function-error-type")
                        .map(str::to_owned),
                    body: request.body,
                    received,
                    delivered,
                };
                let _ = shared.posts.send(posted);
                response_bytes("202 Accepted", "", br#"{"status":"OK"}"#)
            }
            Route::Jwks => match &shared.jwks {
                Some(jwks) => {
                    shared.jwks_fetches.fetch_add(1, Ordering::Relaxed);
                    response_bytes("200 OK", "cache-control: max-age=3600\r\n", jwks)
                }
                None => not_found(),
            },
            Route::Unknown => not_found(),
        };
        reader.get_mut().write_all(&bytes).await?;
        if close {
            return Ok(());
        }
    }
    Ok(())
}

fn not_found() -> Vec<u8> {
    response_bytes(
        "404 Not Found",
        "",
        br#"{"errorType":"NotFound","errorMessage":"no such endpoint"}"#,
    )
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The trailing number of a bench request id, for a distinct trace id per invocation.
fn request_number(request_id: &str) -> u64 {
    request_id
        .rsplit('-')
        .next()
        .and_then(|n| u64::from_str_radix(n, 16).ok())
        .unwrap_or(0)
}

enum Route<'a> {
    Next,
    Posted(PostKind, Option<&'a str>),
    Jwks,
    Unknown,
}

fn route<'a>(method: &str, path: &'a str) -> Route<'a> {
    match method {
        "GET" if path == NEXT_PATH => Route::Next,
        "GET" if path == JWKS_PATH => Route::Jwks,
        "POST" if path == INIT_ERROR_PATH => Route::Posted(PostKind::InitError, None),
        "POST" => {
            let Some(rest) = path.strip_prefix(INVOCATION_PREFIX) else {
                return Route::Unknown;
            };
            match rest.rsplit_once('/') {
                Some((id, "response")) if !id.is_empty() => {
                    Route::Posted(PostKind::Response, Some(id))
                }
                Some((id, "error")) if !id.is_empty() => Route::Posted(PostKind::Error, Some(id)),
                _ => Route::Unknown,
            }
        }
        _ => Route::Unknown,
    }
}

fn response_bytes(status: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut bytes = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{headers}\r\n",
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

struct Request {
    method: String,
    path: String,
    /// Names lower-cased.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// One request, or `None` when the peer closed the connection between requests.
async fn read_request(reader: &mut BufReader<TcpStream>) -> io::Result<Option<Request>> {
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        if !line.trim().is_empty() {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return Err(invalid(format!("bad request line {line:?}")));
    };
    let (method, path) = (method.to_owned(), path.to_owned());
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let mut request = Request {
        method,
        path,
        headers,
        body: Vec::new(),
    };
    let chunked = request
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    request.body = if chunked {
        read_chunked(reader).await?
    } else {
        let length = match request.header("content-length") {
            Some(length) => length
                .parse::<usize>()
                .map_err(|_| invalid(format!("bad content-length {length:?}")))?,
            None => 0,
        };
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await?;
        body
    };
    Ok(Some(request))
}

async fn read_chunked(reader: &mut BufReader<TcpStream>) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        if reader.read_line(&mut size_line).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let size_text = size_line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| invalid(format!("bad chunk size {size_line:?}")))?;
        if size == 0 {
            // Trailers, up to the blank line.
            loop {
                let mut trailer = String::new();
                if reader.read_line(&mut trailer).await? == 0 || trailer.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..]).await?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf).await?;
    }
}

/// What a stopped function leaves behind.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stopped {
    /// `VmHWM`: the process's peak resident set, what Lambda reports as "Max Memory Used".
    pub peak_rss_kib: Option<u64>,
    pub jwks_fetches: usize,
    /// TCP connections the function (runtime client and JWKS client) opened to the fake.
    pub connections: usize,
}

/// One authorizer process, driven through its own [`FakeRuntimeApi`].
pub struct Function {
    child: Child,
    api: FakeRuntimeApi,
    spawned_at: Instant,
    pending: Option<NextPoll>,
    invocations: u64,
    log: PathBuf,
}

impl Function {
    /// Spawns `bin` with Lambda's environment for `api` plus `env`, output appended to `log`.
    pub fn spawn(
        bin: &Path,
        api: FakeRuntimeApi,
        env: &[(&str, String)],
        log: &Path,
    ) -> io::Result<Self> {
        let out = OpenOptions::new().create(true).append(true).open(log)?;
        let err = out.try_clone()?;
        let mut command = Command::new(bin);
        command
            // Nothing of the bench's environment (RUST_LOG, AWS_*) leaks into the function.
            .env_clear()
            .envs(lambda_env(&api.host_port()))
            .envs(env.iter().map(|(name, value)| (*name, value.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .kill_on_drop(true);
        let spawned_at = Instant::now();
        let child = command.spawn()?;
        Ok(Self {
            child,
            api,
            spawned_at,
            pending: None,
            invocations: 0,
            log: log.to_owned(),
        })
    }

    /// From the spawn to the function's first `GET .../invocation/next` (its init phase).
    pub async fn init_duration(&mut self) -> Duration {
        let poll = self.next_poll().await;
        let init = poll.arrived.duration_since(self.spawned_at);
        self.pending = Some(poll);
        init
    }

    /// Hands `event` to the function's (next) poll and waits for its answer.
    pub async fn invoke(&mut self, event: &Arc<[u8]>) -> Answer {
        let poll = match self.pending.take() {
            Some(poll) => poll,
            None => self.next_poll().await,
        };
        self.invocations += 1;
        let request_id = format!("8f5e3c2a-b7d1-4e6f-9a0b-{:012x}", self.invocations);
        let invocation = Invocation {
            request_id: request_id.clone(),
            event: Arc::clone(event),
        };
        let connections_before = self.connections();
        if poll.reply.send(invocation).is_err() {
            self.fail("closed its /next connection before the event could be written");
        }
        let posted = self.next_post().await;
        let new_connections = self.connections() - connections_before;
        if posted.request_id.as_deref() != Some(request_id.as_str()) {
            self.fail(&format!(
                "answered {:?} {:?} while {request_id} was in flight",
                posted.kind, posted.request_id
            ));
        }
        let Some(delivered) = posted.delivered else {
            self.fail("answered an invocation that was never delivered");
        };
        let body = serde_json::from_slice(&posted.body).unwrap_or_else(|e| {
            self.fail(&format!(
                "answered with a body that is not JSON ({e}): {}",
                String::from_utf8_lossy(&posted.body)
            ))
        });
        Answer {
            kind: posted.kind,
            error_type: posted.error_type,
            body,
            duration: posted.received.duration_since(delivered),
            new_connections,
        }
    }

    fn connections(&self) -> usize {
        self.api.shared.connections.load(Ordering::Relaxed)
    }

    /// Kills the process (it would otherwise wait on `/next` for ever).
    pub async fn stop(mut self) -> Stopped {
        let peak_rss_kib = self.child.id().and_then(peak_rss_kib);
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(PATIENCE, self.child.wait()).await;
        Stopped {
            peak_rss_kib,
            jwks_fetches: self.api.shared.jwks_fetches.load(Ordering::Relaxed),
            connections: self.connections(),
        }
    }

    async fn next_poll(&mut self) -> NextPoll {
        tokio::select! {
            Some(poll) = self.api.nexts.recv() => poll,
            Some(posted) = self.api.posts.recv() => self.unexpected(&posted),
            status = self.child.wait() => self.exited(status),
            () = tokio::time::sleep(PATIENCE) => self.fail("did not poll /next in time"),
        }
    }

    async fn next_post(&mut self) -> Posted {
        tokio::select! {
            Some(posted) = self.api.posts.recv() => posted,
            status = self.child.wait() => self.exited(status),
            () = tokio::time::sleep(PATIENCE) => self.fail("did not answer the invocation in time"),
        }
    }

    fn unexpected(&self, posted: &Posted) -> ! {
        self.fail(&format!(
            "posted {:?} ({}) while no invocation was in flight: {}",
            posted.kind,
            posted.error_type.as_deref().unwrap_or("-"),
            String::from_utf8_lossy(&posted.body)
        ))
    }

    fn exited(&self, status: io::Result<ExitStatus>) -> ! {
        self.fail(&format!("exited ({status:?})"))
    }

    fn fail(&self, what: &str) -> ! {
        panic!(
            "the authorizer (pid {:?}) {what}; its output is in {}",
            self.child.id(),
            self.log.display()
        )
    }
}

/// What the Lambda service sets for a `provided.al2023` function (256 MB as infra/ deploys the
/// authorizer, on-demand), with
/// the Runtime API at `host_port`.
fn lambda_env(host_port: &str) -> Vec<(&'static str, String)> {
    [
        ("AWS_LAMBDA_RUNTIME_API", host_port),
        ("AWS_LAMBDA_FUNCTION_NAME", FUNCTION_NAME),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/authorizer-bench"),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2026/01/01/[$LATEST]0123456789abcdef0123456789abcdef",
        ),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
        ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023"),
        ("AWS_REGION", "eu-west-1"),
        ("AWS_DEFAULT_REGION", "eu-west-1"),
        ("_HANDLER", "bootstrap"),
        ("LAMBDA_TASK_ROOT", "/var/task"),
        ("LAMBDA_RUNTIME_DIR", "/var/runtime"),
        ("LANG", "en_US.UTF-8"),
        ("TZ", ":UTC"),
        ("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin"),
    ]
    .into_iter()
    .map(|(name, value)| (name, value.to_owned()))
    .collect()
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}
