//! What the emulator's tests share: a recording route handler and authorizer, a harness with
//! a gateway and an SDK client on it, real WebSocket clients and hand-written requests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apigw::{
    AuthorizerFailure, AuthorizerResult, ConnectAuthorizer, Gateway, GatewayConfig, HandlerResult,
    RouteHandler, authorizer_fn, proxy_response,
};
use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::config::retry::RetryConfig;
use aws_sdk_apigatewaymanagement::error::SdkError;
use aws_sdk_apigatewaymanagement::operation::post_to_connection::{
    PostToConnectionError, PostToConnectionOutput,
};
use aws_sdk_apigatewaymanagement::primitives::Blob;
use futures::StreamExt as _;
use futures::future::BoxFuture;
use http::HeaderValue;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
pub type PostResult = Result<PostToConnectionOutput, SdkError<PostToConnectionError>>;

pub const WAIT: Duration = Duration::from_secs(2);

/// How the test handler answers `$connect`.
#[derive(Debug, Clone, Copy)]
pub enum ConnectAnswer {
    Accept,
    Status(u16),
    Fail,
    /// Accepts, selecting a subprotocol in `headers` or in `multiValueHeaders`.
    Protocol {
        name: &'static str,
        multi_value: bool,
    },
}

/// Records every event; answers `$connect` as told; echoes `$default` bodies back (and fails
/// on a body of `fail`).
pub struct Recorder {
    pub events: Mutex<Vec<ApiGatewayWebsocketProxyRequest>>,
    pub connect: Mutex<ConnectAnswer>,
}

impl Recorder {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            events: Mutex::new(Vec::new()),
            connect: Mutex::new(ConnectAnswer::Accept),
        })
    }

    pub fn answer_connect(&self, answer: ConnectAnswer) {
        *self.connect.lock().unwrap() = answer;
    }

    pub fn events(&self, route_key: &str) -> Vec<ApiGatewayWebsocketProxyRequest> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.request_context.route_key.as_deref() == Some(route_key))
            .cloned()
            .collect()
    }

    pub fn disconnect_of(&self, id: &str) -> Option<ApiGatewayWebsocketProxyRequest> {
        self.events("$disconnect")
            .into_iter()
            .find(|e| e.request_context.connection_id.as_deref() == Some(id))
    }
}

impl RouteHandler for Recorder {
    fn handle(&self, event: ApiGatewayWebsocketProxyRequest) -> BoxFuture<'_, HandlerResult> {
        Box::pin(async move {
            let route = event.request_context.route_key.clone().unwrap_or_default();
            let body = event.body.clone().unwrap_or_default();
            self.events.lock().unwrap().push(event);
            match route.as_str() {
                "$connect" => match *self.connect.lock().unwrap() {
                    ConnectAnswer::Accept => Ok(proxy_response(200, None)),
                    ConnectAnswer::Status(status) => {
                        Ok(proxy_response(status, Some("refused".to_owned())))
                    }
                    ConnectAnswer::Fail => Err("connect handler failure".into()),
                    ConnectAnswer::Protocol { name, multi_value } => {
                        Ok(selecting_protocol(name, multi_value))
                    }
                },
                "$disconnect" => Ok(proxy_response(200, None)),
                _ if body == "fail" => Err("message handler failure".into()),
                _ => Ok(proxy_response(200, Some(format!("{route}:{body}")))),
            }
        })
    }
}

pub fn selecting_protocol(
    name: &'static str,
    multi_value: bool,
) -> aws_lambda_events::apigw::ApiGatewayProxyResponse {
    let mut response = proxy_response(200, None);
    let value = HeaderValue::from_static(name);
    if multi_value {
        response
            .multi_value_headers
            .append("sec-websocket-protocol", value);
    } else {
        response.headers.insert("Sec-WebSocket-Protocol", value);
    }
    response
}

/// How the test authorizer answers.
#[derive(Debug, Clone, Copy)]
pub enum AuthAnswer {
    Allow,
    Deny,
    Unauthorized,
    Fail,
    Malformed,
}

/// Records every authorizer event and answers as told; an Allow carries `user-42` and a
/// context as the project's authorizer builds it.
pub struct AuthRecorder {
    pub events: Mutex<Vec<Value>>,
    pub answer: Mutex<AuthAnswer>,
}

impl AuthRecorder {
    /// The recorder and a `$connect` authorizer that calls it, wired through `authorizer_fn`.
    pub fn start(answer: AuthAnswer, identity_sources: &[&str]) -> (Arc<Self>, ConnectAuthorizer) {
        let recorder = Arc::new(Self {
            events: Mutex::new(Vec::new()),
            answer: Mutex::new(answer),
        });
        let handler = authorizer_fn({
            let recorder = recorder.clone();
            move |event: Value| {
                let recorder = recorder.clone();
                async move { recorder.authorize(event) }
            }
        });
        let sources = identity_sources.iter().map(|s| s.parse().unwrap());
        let authorizer = ConnectAuthorizer::new(handler).with_identity_sources(sources);
        (recorder, authorizer)
    }

    pub fn authorize(&self, event: Value) -> AuthorizerResult {
        let policy = |effect: &str| {
            json!({
                "principalId": "user-42",
                "policyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Action": "execute-api:Invoke",
                        "Effect": effect,
                        "Resource": event["methodArn"],
                    }],
                },
                "context": {"subject": "alice", "entityTypes": "stream,job", "admin": false},
            })
        };
        let answer = match *self.answer.lock().unwrap() {
            AuthAnswer::Allow => Ok(policy("Allow")),
            AuthAnswer::Deny => Ok(policy("Deny")),
            // What a Lambda authorizer does: fail with the message `Unauthorized`.
            AuthAnswer::Unauthorized => Err(AuthorizerFailure::from_error("Unauthorized")),
            AuthAnswer::Fail => Err(AuthorizerFailure::Failed("signing keys unavailable".into())),
            AuthAnswer::Malformed => Ok(json!({"principalId": "user-42"})),
        };
        self.events.lock().unwrap().push(event);
        answer
    }

    pub fn set_answer(&self, answer: AuthAnswer) {
        *self.answer.lock().unwrap() = answer;
    }

    pub fn calls(&self) -> usize {
        self.events.lock().unwrap().len()
    }
}

pub struct Harness {
    pub gateway: Gateway,
    pub recorder: Arc<Recorder>,
    pub sdk: Client,
}

pub async fn sdk_client(endpoint: String, retry: RetryConfig) -> Client {
    let sdk = platform::aws::loopback(&endpoint).await;
    let config = aws_sdk_apigatewaymanagement::config::Builder::from(&sdk)
        .retry_config(retry)
        .build();
    Client::from_conf(config)
}

impl Harness {
    pub async fn start(config: GatewayConfig) -> Self {
        let recorder = Recorder::new();
        Self::start_with(config, recorder.clone(), recorder).await
    }

    /// A gateway whose routes run `handler`, which passes every event on to `recorder` (the
    /// harness reads connection ids from it).
    pub async fn start_with(
        config: GatewayConfig,
        recorder: Arc<Recorder>,
        handler: Arc<dyn RouteHandler>,
    ) -> Self {
        let gateway = Gateway::bind("127.0.0.1:0".parse().unwrap(), config, handler)
            .await
            .unwrap();
        // Retries off: each SDK call is exactly one request, so counters can be compared.
        let sdk = sdk_client(gateway.management_endpoint(), RetryConfig::disabled()).await;
        Self {
            gateway,
            recorder,
            sdk,
        }
    }

    /// Connects a client and returns it with its connection id (taken from `$connect`).
    pub async fn connect(&self) -> (Ws, String) {
        let request = self.gateway.ws_url().into_client_request().unwrap();
        self.connect_with(request).await
    }

    pub async fn connect_with(
        &self,
        request: tungstenite::handshake::client::Request,
    ) -> (Ws, String) {
        let (ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert_eq!(response.status(), 101);
        let id = self
            .recorder
            .events("$connect")
            .last()
            .and_then(|e| e.request_context.connection_id.clone())
            .unwrap();
        (ws, id)
    }

    /// A gateway whose `$connect` runs through the test authorizer.
    pub async fn with_authorizer(
        answer: AuthAnswer,
        identity_sources: &[&str],
    ) -> (Self, Arc<AuthRecorder>) {
        let (auth, authorizer) = AuthRecorder::start(answer, identity_sources);
        let config = GatewayConfig {
            authorizer: Some(authorizer),
            ..GatewayConfig::default()
        };
        (Self::start(config).await, auth)
    }

    /// Expects the handshake to `ws_url() + suffix` refused; its status and JSON body.
    pub async fn refused(&self, suffix: &str) -> (u16, Value) {
        let url = format!("{}{suffix}", self.gateway.ws_url());
        let err = tokio_tungstenite::connect_async(url).await.unwrap_err();
        let tungstenite::Error::Http(response) = err else {
            panic!("expected an HTTP refusal, got {err:?}");
        };
        let body = response.body().clone().unwrap_or_default();
        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
        (response.status().as_u16(), body)
    }

    pub async fn post(&self, id: &str, data: impl Into<Vec<u8>>) -> PostResult {
        self.sdk
            .post_to_connection()
            .connection_id(id)
            .data(Blob::new(data.into()))
            .send()
            .await
    }
}

/// Polls `condition` until it holds; fails after [`WAIT`].
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The next data or close frame (pings and pongs skipped).
pub async fn next_frame(ws: &mut Ws) -> Message {
    loop {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("timed out waiting for a frame")
            .expect("the stream ended")
            .expect("WebSocket error");
        if !matches!(message, Message::Ping(_) | Message::Pong(_)) {
            return message;
        }
    }
}

pub async fn next_text(ws: &mut Ws) -> String {
    match next_frame(ws).await {
        Message::Text(text) => text.as_str().to_owned(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

/// Reads until the server's close frame and returns its code and reason, then reads on to the
/// end of the stream, which sends the close reply as a browser does.
pub async fn expect_close(ws: &mut Ws) -> (CloseCode, String) {
    let closed = loop {
        match next_frame(ws).await {
            Message::Close(Some(frame)) => break (frame.code, frame.reason.as_str().to_owned()),
            Message::Close(None) => panic!("close frame without a status"),
            _ => {}
        }
    };
    finish_close(ws).await;
    closed
}

/// Drives the stream to its end after a close frame (this flushes the close reply).
pub async fn finish_close<S>(stream: &mut S)
where
    S: futures::Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    let drained = tokio::time::timeout(WAIT, async {
        while let Some(Ok(_)) = stream.next().await {}
    });
    drained
        .await
        .expect("the stream did not end after the close frame");
}

pub fn status_of<E>(err: &SdkError<E>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

/// An upgrade request written by hand, for answers that tungstenite (like a browser) would
/// refuse to complete; the response's status line and headers.
pub async fn raw_handshake(h: &Harness, protocols: &str) -> (String, Vec<(String, String)>) {
    let (_, status, headers) =
        raw_upgrade(h, &format!("Sec-WebSocket-Protocol: {protocols}\r\n")).await;
    (status, headers)
}

/// An upgrade request written by hand with `extra` header lines; the stream after the
/// response, the status line and the headers.
pub async fn raw_upgrade(
    h: &Harness,
    extra: &str,
) -> (BufReader<TcpStream>, String, Vec<(String, String)>) {
    let mut stream = TcpStream::connect(h.gateway.local_addr()).await.unwrap();
    let request = format!(
        "GET /local HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n",
        h.gateway.local_addr()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reader = BufReader::new(stream);
    let mut lines = read_head(&mut reader).await;
    let status = lines.remove(0);
    (reader, status, parse_headers(&lines))
}

/// The lines of an HTTP response head, up to the empty line.
async fn read_head(reader: &mut BufReader<TcpStream>) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let read = tokio::time::timeout(WAIT, reader.read_line(&mut line))
            .await
            .expect("timed out reading the response head")
            .unwrap();
        let line = line.trim_end().to_owned();
        if read == 0 || line.is_empty() {
            return lines;
        }
        lines.push(line);
    }
}

fn parse_headers(lines: &[String]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect()
}

/// A WebSocket frame as a client writes it by hand: `first` is FIN, RSV and opcode; the
/// payload is masked with `mask` unless it is `None` (which RFC 6455 forbids a client).
pub fn client_frame(first: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut frame = vec![first];
    match payload.len() {
        len @ 0..=125 => frame.push(mask_bit | len as u8),
        len => {
            frame.push(mask_bit | 126);
            frame.extend_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            frame.extend_from_slice(&key);
            frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => frame.extend_from_slice(payload),
    }
    frame
}

/// Reads the server's frames until its close frame; its status code.
pub async fn read_close_code(reader: &mut BufReader<TcpStream>) -> u16 {
    use tokio::io::AsyncReadExt as _;
    loop {
        let mut head = [0u8; 2];
        tokio::time::timeout(WAIT, reader.read_exact(&mut head))
            .await
            .expect("timed out waiting for the close frame")
            .expect("the connection ended without a close frame");
        let len = match head[1] & 0x7f {
            126 => usize::from(reader.read_u16().await.unwrap()),
            127 => usize::try_from(reader.read_u64().await.unwrap()).unwrap(),
            len => usize::from(len),
        };
        let mut payload = vec![0u8; len];
        reader.read_exact(&mut payload).await.unwrap();
        if head[0] & 0x0f == 0x8 {
            return u16::from_be_bytes([payload[0], payload[1]]);
        }
    }
}

/// An HTTP/1.1 request to `addr` on a connection of its own; the status, headers and body.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use tokio::io::AsyncReadExt as _;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut reader = BufReader::new(stream);
    let mut lines = read_head(&mut reader).await;
    let status = lines.remove(0);
    let status = status.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = Vec::new();
    tokio::time::timeout(WAIT, reader.read_to_end(&mut body))
        .await
        .expect("timed out reading the body")
        .unwrap();
    (status, parse_headers(&lines), body)
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}
