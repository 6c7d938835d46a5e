//! The registry in memory, behind DynamoDB's own API: a loopback HTTP proxy in front of moto
//! that answers the registry's GSI Query on one connections table from memory and forwards
//! every other request (DynamoDB, DynamoDB Streams, SQS) to moto unchanged.
//!
//! moto pages a GSI at a cost that grows with the whole table for every page (100,000 rows took
//! 78 s alone, and over 200 s while a writer and the pollers used moto too), so through moto a
//! broadcast to 100k connections is a minute or more of paging before its last post can go
//! out, where DynamoDB takes seconds. The sustained scenario points its stack's SDK here
//! instead (`--sustained-registry memory`): the production code is unchanged, it sends the same
//! Query and gets the same pages, at the speed of memory; everything else still goes to moto.
//!
//! Only what the registry's paging sends is answered: `Query` on the table's index with
//! `connected = :partition` and a projection led by `connectionId`, in pages of [`PAGE_ROWS`]
//! (about what DynamoDB's 1 MB pages of these rows hold). The rows are the ones given at the
//! start and those added later ([`RegistryProxy::insert_at_random`]), each with its id alone
//! (no entity filter: it receives everything); writes to the table go to moto and are not
//! mirrored.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Rows per page: DynamoDB's 1 MB pages hold about this many connection rows.
pub const PAGE_ROWS: usize = 5_000;
const QUERY_TARGET: &str = "DynamoDB_20120810.Query";

/// What the proxy did.
#[derive(Debug, Default)]
struct Counts {
    pages: AtomicU64,
    rows: AtomicU64,
    forwarded: AtomicU64,
    failed: AtomicU64,
}

/// [`Counts`] at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ProxyCounts {
    /// Query pages answered from memory, and the rows in them.
    pub pages: u64,
    pub rows: u64,
    /// Requests forwarded to moto, and those that failed on the way.
    pub forwarded: u64,
    pub failed: u64,
}

/// The rows, per GSI partition, in GSI order.
type Rows = HashMap<String, Vec<String>>;

struct Shared {
    moto: SocketAddr,
    table: String,
    rows: RwLock<Rows>,
    counts: Counts,
    /// The most added before forwarding a claim of the posting budget (an UpdateItem of a
    /// `budget` item; uniform from 0): a slower store, to see what the budget's pacing does
    /// with one.
    claim_delay: Duration,
}

pub struct RegistryProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl RegistryProxy {
    /// Listens on a free loopback port; `rows` are (GSI partition, connection id) in GSI order.
    pub async fn start(
        moto: SocketAddr,
        table: &str,
        rows: impl IntoIterator<Item = (String, String)>,
        claim_delay: Duration,
    ) -> std::io::Result<Self> {
        let mut by_partition = Rows::new();
        for (partition, id) in rows {
            by_partition.entry(partition).or_default().push(id);
        }
        let shared = Arc::new(Shared {
            moto,
            table: table.to_owned(),
            rows: RwLock::new(by_partition),
            counts: Counts::default(),
            claim_delay,
        });
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(accept(listener, shared.clone()));
        Ok(Self {
            addr,
            shared,
            server,
        })
    }

    /// The endpoint to give the SDK instead of moto's.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds rows at random places of their partition's order, as rows of dashboards that
    /// connected among the others.
    pub fn insert_at_random(&self, rows: impl IntoIterator<Item = (String, String)>) {
        let mut all = self
            .shared
            .rows
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        for (partition, id) in rows {
            let ids = all.entry(partition).or_default();
            let at = rand::random_range(0..=ids.len());
            ids.insert(at, id);
        }
    }

    pub fn counts(&self) -> ProxyCounts {
        let c = &self.shared.counts;
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        ProxyCounts {
            pages: get(&c.pages),
            rows: get(&c.rows),
            forwarded: get(&c.forwarded),
            failed: get(&c.failed),
        }
    }
}

impl Drop for RegistryProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Serves every connection until the server is aborted (which aborts them too).
async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => {
                    let _ = socket.set_nodelay(true);
                    connections.spawn(serve(socket, shared.clone()));
                }
                Err(e) => tracing::warn!(error = %e, "registry proxy: accept failed"),
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// One client connection: its requests in turn, each answered or forwarded.
async fn serve(socket: TcpStream, shared: Arc<Shared>) {
    let (read, mut write) = socket.into_split();
    let mut read = BufReader::new(read);
    loop {
        let request = match read_message(&mut read, true).await {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(error = %e, "registry proxy: reading a request");
                return;
            }
        };
        let response = match shared.answer(&request) {
            Some(response) => response,
            None => {
                if !shared.claim_delay.is_zero() && is_claim(&request) {
                    let jittered = shared.claim_delay.mul_f64(rand::random::<f64>());
                    tokio::time::sleep(jittered).await;
                }
                shared.counts.forwarded.fetch_add(1, Ordering::Relaxed);
                match forward(shared.moto, &request).await {
                    Ok(response) => response,
                    Err(e) => {
                        shared.counts.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(error = %e, "registry proxy: forwarding to moto failed");
                        return;
                    }
                }
            }
        };
        if write.write_all(&response).await.is_err() {
            return;
        }
        if request
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
        {
            return;
        }
    }
}

/// Whether `request` claims positions of the posting budget (fanout's `DynamoLanes`).
fn is_claim(request: &Message) -> bool {
    request.header("x-amz-target") == Some("DynamoDB_20120810.UpdateItem")
        && serde_json::from_slice::<Value>(&request.body)
            .is_ok_and(|update| update["Key"]["pk"]["S"] == "budget")
}

/// An HTTP/1.1 message: its first line, its headers (names lowercased) and its whole body.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Message {
    start: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The message with `start` as its first line, its body framed by Content-Length.
    fn encode(&self, start: &str, close: bool) -> Vec<u8> {
        let mut out = format!("{start}\r\n");
        for (name, value) in &self.headers {
            if !matches!(
                name.as_str(),
                "content-length" | "transfer-encoding" | "connection"
            ) {
                out.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        out.push_str(&format!("content-length: {}\r\n", self.body.len()));
        if close {
            out.push_str("connection: close\r\n");
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

/// Reads one message; `None` at the end of the stream before one starts. A request without a
/// length has no body; a response without one runs to the end of the stream.
async fn read_message<R: AsyncBufRead + Unpin>(
    r: &mut R,
    request: bool,
) -> std::io::Result<Option<Message>> {
    let mut start = String::new();
    loop {
        start.clear();
        if r.read_line(&mut start).await? == 0 {
            return Ok(None);
        }
        if !start.trim().is_empty() {
            break;
        }
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Err(invalid("the stream ended in the headers"));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let mut message = Message {
        start: start.trim_end_matches(['\r', '\n']).to_owned(),
        headers,
        body: Vec::new(),
    };
    if let Some(length) = message.header("content-length") {
        let length: usize = length.parse().map_err(|_| invalid("content-length"))?;
        message.body.resize(length, 0);
        r.read_exact(&mut message.body).await?;
    } else if message
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        message.body = read_chunks(r).await?;
    } else if !request {
        r.read_to_end(&mut message.body).await?;
    }
    Ok(Some(message))
}

async fn read_chunks<R: AsyncBufRead + Unpin>(r: &mut R) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).await?;
        let size = line.trim().split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size, 16).map_err(|_| invalid("chunk size"))?;
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                line.clear();
                if r.read_line(&mut line).await? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let from = body.len();
        body.resize(from + size, 0);
        r.read_exact(&mut body[from..]).await?;
        line.clear();
        r.read_line(&mut line).await?;
    }
}

/// Sends `request` to moto on a connection of its own and returns moto's response, re-framed
/// for the client.
async fn forward(moto: SocketAddr, request: &Message) -> std::io::Result<Vec<u8>> {
    let mut socket = TcpStream::connect(moto).await?;
    let _ = socket.set_nodelay(true);
    socket
        .write_all(&request.encode(&request.start, true))
        .await?;
    let mut read = BufReader::new(socket);
    let response = read_message(&mut read, false)
        .await?
        .ok_or_else(|| invalid("moto closed the connection without answering"))?;
    // Keep-alive towards the client whatever moto said: HTTP/1.1 and a length.
    let status = match response.start.split_once(' ') {
        Some((_, rest)) => format!("HTTP/1.1 {rest}"),
        None => response.start.clone(),
    };
    Ok(response.encode(&status, false))
}

impl Shared {
    /// The response to a registry page Query on the table, from memory; `None` for anything
    /// else (forwarded).
    fn answer(&self, request: &Message) -> Option<Vec<u8>> {
        if request.header("x-amz-target") != Some(QUERY_TARGET) {
            return None;
        }
        let query: Value = serde_json::from_slice(&request.body).ok()?;
        let is_page = query["TableName"] == self.table.as_str()
            && query["IndexName"].is_string()
            && query["KeyConditionExpression"] == "connected = :partition"
            && query["ProjectionExpression"]
                .as_str()
                .is_some_and(|p| p.split(',').next() == Some("connectionId"));
        if !is_page {
            return None;
        }
        let partition = query["ExpressionAttributeValues"][":partition"]["S"].as_str()?;
        let body = self.page(&query, partition);
        let response = Message {
            start: String::new(),
            headers: vec![
                (
                    "content-type".to_owned(),
                    "application/x-amz-json-1.0".to_owned(),
                ),
                ("x-amzn-requestid".to_owned(), apigw::ids::request_uuid()),
            ],
            body: body.to_string().into_bytes(),
        };
        Some(response.encode("HTTP/1.1 200 OK", false))
    }

    /// One page of `partition` after the query's ExclusiveStartKey, which holds the position
    /// of the last row of the page before.
    fn page(&self, query: &Value, partition: &str) -> Value {
        let from = query["ExclusiveStartKey"]["connectedAt"]["N"]
            .as_str()
            .and_then(|n| n.parse::<usize>().ok())
            .map_or(0, |last| last + 1);
        let limit = query["Limit"].as_u64().map_or(PAGE_ROWS, |l| {
            usize::try_from(l).unwrap_or(PAGE_ROWS).min(PAGE_ROWS)
        });
        let rows = self.rows.read().unwrap_or_else(PoisonError::into_inner);
        let ids = rows.get(partition).map_or(&[][..], Vec::as_slice);
        let from = from.min(ids.len());
        let to = (from + limit.max(1)).min(ids.len());
        let items: Vec<Value> = ids[from..to]
            .iter()
            .map(|id| json!({"connectionId": {"S": id}}))
            .collect();
        self.counts.pages.fetch_add(1, Ordering::Relaxed);
        self.counts
            .rows
            .fetch_add(items.len() as u64, Ordering::Relaxed);
        let mut page = json!({
            "Count": items.len(),
            "ScannedCount": items.len(),
            "Items": items,
        });
        if to < ids.len() {
            page["LastEvaluatedKey"] = json!({
                "connectionId": {"S": ids[to - 1]},
                "connected": {"S": partition},
                "connectedAt": {"N": (to - 1).to_string()},
            });
        }
        page
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn messages_are_read_with_a_length_chunked_or_to_the_end() {
        let text = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nX-Amz-Target: T\r\n\r\nbodyGET /next HTTP/1.1\r\n\r\n";
        let mut r = BufReader::new(text.as_bytes());
        let first = read_message(&mut r, true).await.unwrap().unwrap();
        assert_eq!(first.start, "POST / HTTP/1.1");
        assert_eq!(first.header("x-amz-target"), Some("T"));
        assert_eq!(first.body, b"body");
        let second = read_message(&mut r, true).await.unwrap().unwrap();
        assert_eq!(
            (second.start.as_str(), second.body.len()),
            ("GET /next HTTP/1.1", 0)
        );
        assert_eq!(read_message(&mut r, true).await.unwrap(), None);

        let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        let response = read_message(&mut BufReader::new(chunked.as_bytes()), false)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(response.body, b"abcde");
        let encoded = String::from_utf8(response.encode("HTTP/1.1 200 OK", false)).unwrap();
        assert_eq!(encoded, "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nabcde");

        let unframed = "HTTP/1.0 200 OK\r\nServer: w\r\n\r\nto the end";
        let response = read_message(&mut BufReader::new(unframed.as_bytes()), false)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(response.body, b"to the end");
    }

    fn query(table: &str, start: Option<&str>) -> Message {
        let mut body = json!({
            "TableName": table,
            "IndexName": "connected-connectedAt-index",
            "KeyConditionExpression": "connected = :partition",
            "ExpressionAttributeValues": {":partition": {"S": "true"}},
            "ProjectionExpression": "connectionId, entityTypes",
        });
        if let Some(position) = start {
            body["ExclusiveStartKey"] = json!({"connectionId": {"S": "x"}, "connected": {"S": "true"}, "connectedAt": {"N": position}});
        }
        Message {
            start: "POST / HTTP/1.1".into(),
            headers: vec![("x-amz-target".into(), QUERY_TARGET.into())],
            body: body.to_string().into_bytes(),
        }
    }

    #[tokio::test]
    async fn the_registry_pages_come_from_memory_and_the_rest_is_forwarded() {
        let rows = (0..PAGE_ROWS + 2).map(|i| ("true".to_owned(), format!("id-{i}")));
        let proxy = RegistryProxy::start(
            "127.0.0.1:9".parse().unwrap(),
            "conns",
            rows,
            Duration::ZERO,
        )
        .await
        .unwrap();
        proxy.insert_at_random([("true".to_owned(), "client".to_owned())]);
        let shared = &proxy.shared;
        let page = |response: Vec<u8>| {
            let text = String::from_utf8(response).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
            serde_json::from_str::<Value>(body).unwrap()
        };
        let first = page(shared.answer(&query("conns", None)).unwrap());
        assert_eq!(first["Count"], PAGE_ROWS);
        let next = first["LastEvaluatedKey"]["connectedAt"]["N"]
            .as_str()
            .unwrap();
        let second = page(shared.answer(&query("conns", Some(next))).unwrap());
        assert_eq!(second["Count"], 3);
        assert!(second.get("LastEvaluatedKey").is_none());
        let ids: Vec<&str> = first["Items"]
            .as_array()
            .unwrap()
            .iter()
            .chain(second["Items"].as_array().unwrap())
            .map(|i| i["connectionId"]["S"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), PAGE_ROWS + 3);
        assert!(ids.contains(&"client"));
        assert_eq!(proxy.counts().rows, PAGE_ROWS as u64 + 3);
        // Another table, or another request, is not answered here.
        assert!(shared.answer(&query("other", None)).is_none());
        let mut put = query("conns", None);
        put.headers = vec![("x-amz-target".into(), "DynamoDB_20120810.PutItem".into())];
        assert!(shared.answer(&put).is_none());
        let claim = Message {
            start: "POST / HTTP/1.1".into(),
            headers: vec![("x-amz-target".into(), "DynamoDB_20120810.UpdateItem".into())],
            body: br#"{"TableName":"s","Key":{"pk":{"S":"budget"},"sk":{"S":"1000"}}}"#.to_vec(),
        };
        assert!(is_claim(&claim));
        assert!(!is_claim(&put));
    }
}
