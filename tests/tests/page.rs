//! The dashboard page in headless Chromium, driven over the Chrome DevTools Protocol: a
//! metrics-table write shows up on the page, and a screenshot is saved as a test artifact
//! (`target/test-artifacts/dashboard.png`); the page (the client library inside it)
//! reconnects when the gateway drops its connection; with authentication, it is refused
//! without a token and connects with one; its subscription control makes the server send only
//! the entity type it names, shows the filter in force and the ERROR a bad filter gets; and
//! after the server drops its socket it reconnects, re-subscribes, takes a snapshot and ends
//! with the latest values (issue 17's end-to-end test, with the page).
//!
//! Needs Debian's `chromium` (`make test` installs it: `apt-get install chromium`), or the
//! path of another Chromium in `$CHROMIUM`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use base64::Engine;
use e2e::{put_metric, put_typed, start_stack, update_metric};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use stack::{Stack, StackConfig};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const WAIT: Duration = Duration::from_secs(20);
const ENTITY: &str = "stream-042";

/// The value cell of `ENTITY`'s card: `null` until the card exists, else its raw and shown value.
const VALUE_CELL: &str = r#"(() => {
    const td = document.querySelector('[data-entity="stream-042"] [data-metric="metric_value"]');
    return td && { value: td.getAttribute('data-value'), text: td.textContent };
})()"#;

/// What the page knows, for failure messages.
const PAGE_STATE: &str = r#"JSON.stringify({
    status: document.querySelector('#status')?.getAttribute('data-state'),
    stats: window.dashboard && window.dashboard.stats,
    entities: window.dashboard && Object.keys(window.dashboard.entities),
})"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metric_write_shows_up_on_the_page_in_headless_chromium() -> anyhow::Result<()> {
    let stack = start_stack(StackConfig::for_tests()).await;
    let browser = Browser::launch().await?;
    let mut page = Cdp::open_page(&browser.devtools_url).await?;
    page.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
    )
    .await?;

    let navigated = page
        .call("Page.navigate", json!({"url": stack.page_url()}))
        .await?;
    assert!(
        navigated.get("errorText").is_none(),
        "navigating to {}: {navigated}",
        stack.page_url()
    );
    let status = "document.querySelector('#status')?.getAttribute('data-state')";
    page.wait_for("the page's WebSocket to open", status, |s| s == "open")
        .await?;

    put_metric(&stack, ENTITY, 4242.5).await;
    page.wait_for("the written value 4242.5 on the page", VALUE_CELL, |cell| {
        cell["value"] == "4242.5" && cell["text"] == "4,242.5"
    })
    .await?;

    update_metric(&stack, ENTITY, 777.0).await;
    page.wait_for("the updated value 777 on the page", VALUE_CELL, |cell| {
        cell["value"] == "777" && cell["text"] == "777"
    })
    .await?;

    let png = page.screenshot("dashboard.png").await?;
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "the screenshot is a PNG"
    );

    browser.close().await;
    stack.shutdown().await;
    Ok(())
}

/// With `AUTH_MODE=jwt`: the page without a token shows that it is refused; with `?token=` it
/// sends the token as its WebSocket subprotocol, which `$connect` must answer for Chromium to
/// keep the connection, and the written value arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_authentication_the_page_is_refused_then_connects_with_a_token_as_subprotocol()
-> anyhow::Result<()> {
    let mut config = StackConfig::for_tests();
    config.auth = Some(e2e::auth::config());
    let stack = start_stack(config).await;
    let browser = Browser::launch().await?;
    let mut page = Cdp::open_page(&browser.devtools_url).await?;
    let status = "document.querySelector('#status')?.getAttribute('data-state')";

    page.call("Page.navigate", json!({"url": stack.page_url()}))
        .await?;
    page.wait_for("the page to show it is refused", status, |s| s == "refused")
        .await?;

    let token = e2e::auth::token("page-user", None);
    let url = format!("{}?token={token}", stack.page_url());
    page.call("Page.navigate", json!({"url": url})).await?;
    page.wait_for("the page's WebSocket to open with the token", status, |s| {
        s == "open"
    })
    .await?;
    put_metric(&stack, ENTITY, 99.0).await;
    page.wait_for("the written value on the page", VALUE_CELL, |cell| {
        cell["value"] == "99"
    })
    .await?;
    let subjects = e2e::auth::subjects(&stack).await;
    assert_eq!(
        subjects,
        ["page-user"],
        "the row carries the token's subject"
    );

    browser.close().await;
    stack.shutdown().await;
    Ok(())
}

/// The gateway drops the page's connection (`DELETE @connections/{id}`, as API Gateway's
/// management API does it): the page shows the retry, the client library reconnects after its
/// backoff, and the next write arrives on the new connection. A stage without snapshots answers
/// the library's `snapshot` with ERROR: the page shows no error for that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_reconnects_when_the_gateway_drops_its_connection() -> anyhow::Result<()> {
    let stack = start_stack(StackConfig::for_tests()).await;
    let browser = Browser::launch().await?;
    let mut page = Cdp::open_page(&browser.devtools_url).await?;
    let status = "document.querySelector('#status')?.getAttribute('data-state')";
    page.call("Page.navigate", json!({"url": stack.page_url()}))
        .await?;
    page.wait_for("the page's WebSocket to open", status, |s| s == "open")
        .await?;
    put_metric(&stack, ENTITY, 1.0).await;
    page.wait_for("the first value", VALUE_CELL, |cell| cell["value"] == "1")
        .await?;

    let before = stack.gateway.socket_ids();
    assert_eq!(before.len(), 1, "the page's one socket: {before:?}");
    delete_connection(&stack.gateway.management_endpoint(), &before[0]).await?;
    let reconnected = r#"(() => {
        const s = window.dashboard.stats;
        return { state: document.querySelector('#status').getAttribute('data-state'),
                 reconnects: s.reconnects, opens: s.opens, lastClose: s.lastClose };
    })()"#;
    page.wait_for(
        "the page to reconnect once after the drop",
        reconnected,
        |v| v["state"] == "open" && v["reconnects"] == 1 && v["opens"] == 2,
    )
    .await?;
    let after = stack.gateway.socket_ids();
    assert!(
        after.len() == 1 && after != before,
        "a new connection replaced the dropped one: {before:?} -> {after:?}"
    );

    update_metric(&stack, ENTITY, 2.0).await;
    page.wait_for("the next value on the new connection", VALUE_CELL, |cell| {
        cell["value"] == "2"
    })
    .await?;
    let shown = page
        .eval(
            r#"({ alert: document.querySelector('#alert').hidden,
                  ping: window.dashboard.stats.capabilities.ping,
                  reconnects: document.querySelector('#stat-reconnects').textContent })"#,
        )
        .await?;
    assert_eq!(
        shown,
        json!({"alert": true, "ping": "supported", "reconnects": "1"}),
        "no error shown, pings answered, one reconnect counted"
    );

    browser.close().await;
    stack.shutdown().await;
    Ok(())
}

const STATUS: &str = "document.querySelector('#status')?.getAttribute('data-state')";

/// The subscription line under the form: the library's status, the filter the server confirmed
/// (its SUBSCRIBED echo, `null` before one), the text shown, and the error line.
const SUBSCRIPTION: &str = r#"(() => {
    const line = document.querySelector('#subscription');
    const error = document.querySelector('#subscription-error');
    return { status: line.getAttribute('data-status'),
             confirmed: JSON.parse(line.getAttribute('data-filter') || 'null'),
             text: line.textContent,
             error: error.hidden ? null : error.textContent };
})()"#;

/// The entity ids of the cards on the page, sorted.
const CARDS: &str = r#"Array.from(document.querySelectorAll('[data-entity]'))
    .map((card) => card.getAttribute('data-entity')).sort()"#;

/// The raw `metric_value` of every card, by entity id (JSON object).
const VALUES: &str = r#"Object.fromEntries(Array.from(document.querySelectorAll('[data-entity]')).map((card) => {
    const td = card.querySelector('[data-metric="metric_value"]');
    return [card.getAttribute('data-entity'), td && td.getAttribute('data-value')];
}))"#;

/// Types `types` and `ids` into the subscribe form and submits it, as a user does.
async fn subscribe_with_the_form(page: &mut Cdp, types: &str, ids: &str) -> anyhow::Result<()> {
    let script = format!(
        "document.querySelector('#sub-types').value = {};
         document.querySelector('#sub-ids').value = {};
         document.querySelector('#subscribe-form').requestSubmit();",
        json!(types),
        json!(ids)
    );
    page.eval(&script).await?;
    Ok(())
}

/// The page's one connection id, and the filter its registry row holds (what fanout reads).
async fn the_pages_row(stack: &Stack) -> (String, registry::Filter) {
    let ids = stack.gateway.socket_ids();
    assert_eq!(ids.len(), 1, "the page's one socket: {ids:?}");
    let row = stack
        .registry
        .get(&ids[0])
        .await
        .expect("GetItem on the registry")
        .expect("the page's connection has a row");
    (ids[0].clone(), row.filter())
}

fn types_filter(types: &[&str]) -> registry::Filter {
    registry::Filter::new(Some(types.iter().map(|t| (*t).to_owned()).collect()), None)
        .expect("a valid filter")
}

/// The subscription control: the page subscribes to one entity type through the library, shows
/// the filter the server confirmed, and of a mixed batch of writes shows only that type's
/// cards, because the server sends nothing else (the library filtered nothing out). A filter
/// the server refuses shows its ERROR, and the subscription in force stays as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subscription_control_makes_the_page_receive_only_the_type_it_names()
-> anyhow::Result<()> {
    let stack = start_stack(StackConfig::for_tests()).await;
    let browser = Browser::launch().await?;
    let mut page = Cdp::open_page(&browser.devtools_url).await?;
    page.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
    )
    .await?;
    page.call("Page.navigate", json!({"url": stack.page_url()}))
        .await?;
    page.wait_for("the page's WebSocket to open", STATUS, |s| s == "open")
        .await?;
    page.wait_for(
        "the server to confirm the subscription to everything",
        SUBSCRIPTION,
        |s| s["status"] == "confirmed" && s["confirmed"] == json!({}),
    )
    .await?;

    subscribe_with_the_form(&mut page, "disk", "").await?;
    page.wait_for(
        "the subscription to disk confirmed and shown",
        SUBSCRIPTION,
        |s| {
            s["status"] == "confirmed"
                && s["confirmed"] == json!({"entityTypes": ["disk"]})
                && s["text"] == "Receiving type disk (confirmed by the server)"
                && s["error"].is_null()
        },
    )
    .await?;
    assert_eq!(the_pages_row(&stack).await.1, types_filter(&["disk"]));
    let url = page.eval("location.search").await?;
    assert_eq!(
        url, "?entityTypes=disk",
        "the address keeps the subscription"
    );

    for (id, kind) in [
        ("stream-1", "stream"),
        ("disk-1", "disk"),
        ("cpu-1", "cpu"),
        ("stream-2", "stream"),
        ("disk-2", "disk"),
    ] {
        put_typed(&stack, id, kind, 1.0).await;
    }
    // Written last, so every earlier write's round has been posted once it shows.
    put_typed(&stack, "disk-last", "disk", 2.0).await;
    page.wait_for("the disk cards", CARDS, |cards| {
        *cards == json!(["disk-1", "disk-2", "disk-last"])
    })
    .await?;
    let received = page
        .eval("({ filtered: window.dashboard.stats.filtered, types: Array.from(document.querySelectorAll('[data-entity]')).map((c) => c.getAttribute('data-type')) })")
        .await?;
    assert_eq!(
        received,
        json!({"filtered": 0, "types": ["disk", "disk", "disk"]}),
        "only disk cards, and the server sent no other type for the library to drop"
    );

    // A filter over the server's limit (values of 1 to 128 characters): ERROR, shown; the
    // server's filter is unchanged, and the page keeps receiving disks only.
    subscribe_with_the_form(&mut page, &"x".repeat(200), "").await?;
    page.wait_for(
        "the refused filter's ERROR on the page",
        SUBSCRIPTION,
        |s| {
            s["error"].as_str().is_some_and(|e| {
                e.starts_with(
                    "The server refused the filter: invalid filter (the filter is unchanged)",
                )
            })
        },
    )
    .await?;
    page.wait_for(
        "the subscription in force to stay disk",
        SUBSCRIPTION,
        |s| s["status"] == "confirmed" && s["confirmed"] == json!({"entityTypes": ["disk"]}),
    )
    .await?;
    assert_eq!(the_pages_row(&stack).await.1, types_filter(&["disk"]));
    put_typed(&stack, "stream-3", "stream", 3.0).await;
    put_typed(&stack, "disk-3", "disk", 3.0).await;
    page.wait_for("disk-3 on the page", CARDS, |cards| {
        cards
            .as_array()
            .is_some_and(|c| c.contains(&json!("disk-3")))
    })
    .await?;
    let cards = page.eval(CARDS).await?;
    assert!(
        cards.as_array().is_some_and(|c| c
            .iter()
            .all(|id| id.as_str().is_some_and(|id| id.starts_with("disk-")))),
        "only disk cards after the refusal: {cards}"
    );

    page.screenshot("dashboard-subscribed.png").await?;

    browser.close().await;
    stack.shutdown().await;
    Ok(())
}

/// Issue 17's end-to-end test, with the page. Entities written before the page connects show
/// up from the snapshot the library takes on open. The page subscribes to one type; the server
/// drops its socket; values are written while it is down. The page reconnects, subscribes
/// again (the new connection's registry row has the filter, and the server sends it nothing
/// else), takes a snapshot, and ends with the latest value of every entity of that type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_server_drops_it_the_page_resubscribes_takes_a_snapshot_and_shows_the_latest_values()
-> anyhow::Result<()> {
    let stack = start_stack(StackConfig::for_tests()).await;
    put_typed(&stack, "stream-1", "stream", 1.0).await;
    put_typed(&stack, "stream-2", "stream", 2.0).await;
    put_typed(&stack, "disk-1", "disk", 1.0).await;
    // The processor has those records (and broadcast them to nobody) before the page connects.
    let processed = e2e::eventually(WAIT, || {
        stack
            .stream_stats
            .records
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 3
    })
    .await;
    assert!(processed, "the stream poller delivered the three writes");
    tokio::time::sleep(Duration::from_millis(500)).await;

    let browser = Browser::launch().await?;
    let mut page = Cdp::open_page(&browser.devtools_url).await?;
    page.call("Page.navigate", json!({"url": stack.page_url()}))
        .await?;
    page.wait_for("the page's WebSocket to open", STATUS, |s| s == "open")
        .await?;
    // The snapshot on open: nothing was written since the page connected.
    page.wait_for(
        "the entities written before the page connected (the snapshot on open)",
        VALUES,
        |v| *v == json!({"stream-1": "1", "stream-2": "2", "disk-1": "1"}),
    )
    .await?;

    subscribe_with_the_form(&mut page, "stream", "").await?;
    page.wait_for("the subscription to stream confirmed", SUBSCRIPTION, |s| {
        s["status"] == "confirmed" && s["confirmed"] == json!({"entityTypes": ["stream"]})
    })
    .await?;
    page.wait_for("disk-1 to leave the page", CARDS, |c| {
        *c == json!(["stream-1", "stream-2"])
    })
    .await?;
    let (before, filter) = the_pages_row(&stack).await;
    assert_eq!(filter, types_filter(&["stream"]));
    let snapshots_before = page
        .eval("window.dashboard.stats.snapshotsCompleted")
        .await?
        .as_u64()
        .context("a snapshot count")?;

    delete_connection(&stack.gateway.management_endpoint(), &before).await?;
    // While it is down (the first retry waits up to 4 s) or just after.
    put_typed(&stack, "stream-1", "stream", 10.0).await;
    put_typed(&stack, "stream-3", "stream", 3.0).await;
    put_typed(&stack, "disk-1", "disk", 10.0).await;

    let reconnected = r#"(() => {
        const s = window.dashboard.stats;
        return { state: document.querySelector('#status').getAttribute('data-state'),
                 reconnects: s.reconnects, opens: s.opens };
    })()"#;
    page.wait_for("the page to reconnect once", reconnected, |v| {
        v["state"] == "open" && v["reconnects"] == 1 && v["opens"] == 2
    })
    .await?;
    page.wait_for(
        "the subscription confirmed again on the new connection",
        SUBSCRIPTION,
        |s| s["status"] == "confirmed" && s["confirmed"] == json!({"entityTypes": ["stream"]}),
    )
    .await?;
    let (after, filter) = the_pages_row(&stack).await;
    assert_ne!(after, before, "a new connection replaced the dropped one");
    assert_eq!(
        filter,
        types_filter(&["stream"]),
        "the new row has the filter"
    );

    page.wait_for("the latest values, of streams only", VALUES, |v| {
        *v == json!({"stream-1": "10", "stream-2": "2", "stream-3": "3"})
    })
    .await?;
    page.wait_for(
        "a snapshot taken on the new connection",
        "window.dashboard.stats.snapshotsCompleted",
        |n| n.as_u64().is_some_and(|n| n > snapshots_before),
    )
    .await?;
    let log = page
        .eval("Array.from(document.querySelectorAll('#log li')).map((li) => li.textContent)")
        .await?;
    let lines: Vec<&str> = log
        .as_array()
        .context("the event log")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    // Newest first: the last open, then (above it) a snapshot received after it.
    let opened = lines.iter().position(|l| l.contains("connected to "));
    let snapshot = lines.iter().position(|l| l.contains("snapshot received"));
    assert!(
        matches!((snapshot, opened), (Some(s), Some(o)) if s < o),
        "the page logs a snapshot after it reconnected: {lines:#?}"
    );

    // The server filters for the new connection: a disk write reaches it no more.
    let filtered = page.eval("window.dashboard.stats.filtered").await?;
    put_typed(&stack, "disk-2", "disk", 2.0).await;
    put_typed(&stack, "stream-4", "stream", 4.0).await;
    page.wait_for("stream-4 on the page", VALUES, |v| v["stream-4"] == "4")
        .await?;
    let cards = page.eval(CARDS).await?;
    assert_eq!(
        cards,
        json!(["stream-1", "stream-2", "stream-3", "stream-4"])
    );
    assert_eq!(
        page.eval("window.dashboard.stats.filtered").await?,
        filtered,
        "the server sent the page no disk update to drop"
    );

    browser.close().await;
    stack.shutdown().await;
    Ok(())
}

/// `DELETE {endpoint}/@connections/{id}` on the gateway's management API (plain HTTP/1.1: the
/// emulator checks no signature); fails unless it answers 204.
async fn delete_connection(endpoint: &str, id: &str) -> anyhow::Result<()> {
    let rest = endpoint
        .strip_prefix("http://")
        .context("an http:// management endpoint")?;
    let (host, stage) = rest.split_once('/').context("endpoint has a stage")?;
    let mut stream = TcpStream::connect(host).await?;
    let request = format!(
        "DELETE /{stage}/@connections/{id} HTTP/1.1\r\nHost: {host}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut response))
        .await
        .context("no answer to DELETE @connections")??;
    let status = response.lines().next().unwrap_or_default();
    assert!(
        status.starts_with("HTTP/1.1 204"),
        "DELETE @connections/{id}: {status}"
    );
    Ok(())
}

/// A headless Chromium with a fresh profile; killed (and its profile removed) when dropped,
/// so a failing test does not leave it running.
struct Browser {
    child: Child,
    profile: PathBuf,
    devtools_url: String,
}

impl Browser {
    async fn launch() -> anyhow::Result<Self> {
        let binary = std::env::var_os("CHROMIUM")
            .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
        assert!(
            binary.exists(),
            "Chromium not found at {}: `make test` installs it (apt-get install chromium), \
             or set CHROMIUM to a Chromium binary",
            binary.display()
        );
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
        let profile =
            std::env::temp_dir().join(format!("e2e-chromium-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&profile)?;
        let mut child = Command::new(&binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(["--remote-debugging-port=0", "about:blank"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stderr = child.stderr.take().context("chromium's stderr is piped")?;
        // Construct the guard before waiting, so that a timeout still kills the process.
        let mut browser = Self {
            child,
            profile,
            devtools_url: String::new(),
        };

        let mut lines = BufReader::new(stderr).lines();
        let mut seen = Vec::new();
        let found = tokio::time::timeout(WAIT, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    return Ok(Some(url.trim().to_owned()));
                }
                seen.push(line);
            }
            anyhow::Ok(None)
        })
        .await;
        browser.devtools_url = match found {
            Ok(Ok(Some(url))) => url,
            Ok(Ok(None)) => bail!(
                "chromium exited without a DevTools endpoint; stderr:\n{}",
                seen.join("\n")
            ),
            Ok(Err(e)) => return Err(e.context("reading chromium's stderr")),
            Err(_) => bail!(
                "no DevTools endpoint from chromium within {WAIT:?}; stderr:\n{}",
                seen.join("\n")
            ),
        };
        // Keep draining stderr so that chromium never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(browser)
    }

    async fn close(mut self) {
        let _ = self.child.kill().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// A minimal DevTools client: one request at a time, replies matched by id, events ignored.
/// Commands go to one page target through a flattened session.
struct Cdp {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    session: Option<String>,
    next_id: u64,
}

impl Cdp {
    /// Connects to the browser endpoint, creates a blank page and attaches to it.
    async fn open_page(devtools_url: &str) -> anyhow::Result<Self> {
        let (socket, _) = tokio_tungstenite::connect_async(devtools_url)
            .await
            .with_context(|| format!("connecting to DevTools at {devtools_url}"))?;
        let mut cdp = Self {
            socket,
            session: None,
            next_id: 0,
        };
        let target = cdp
            .call("Target.createTarget", json!({"url": "about:blank"}))
            .await?;
        let attached = cdp
            .call(
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await?;
        let session = attached["sessionId"]
            .as_str()
            .context("attachToTarget returns a sessionId")?;
        cdp.session = Some(session.to_owned());
        Ok(cdp)
    }

    async fn call(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut request = json!({"id": id, "method": method, "params": params});
        if let Some(session) = &self.session {
            request["sessionId"] = json!(session);
        }
        self.socket.send(Message::text(request.to_string())).await?;
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .with_context(|| format!("no reply to {method} within {WAIT:?}"))?
                .with_context(|| format!("DevTools socket closed while waiting for {method}"))??;
            let Message::Text(text) = frame else { continue };
            let reply: Value = serde_json::from_str(&text)?;
            if reply["id"] != id {
                continue; // an event, or a reply to something else
            }
            if let Some(error) = reply.get("error") {
                bail!("{method} failed: {error}");
            }
            return Ok(reply["result"].clone());
        }
    }

    /// The value of a JavaScript expression in the page (JSON-serialisable results only).
    /// Captures the page as a PNG, saved as `target/test-artifacts/{name}`; returns it.
    async fn screenshot(&mut self, name: &str) -> anyhow::Result<Vec<u8>> {
        let shot = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await?;
        let png = base64::engine::general_purpose::STANDARD.decode(
            shot["data"]
                .as_str()
                .context("captureScreenshot returns data")?,
        )?;
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(name);
        std::fs::write(&path, &png)?;
        eprintln!("screenshot saved to {}", path.display());
        Ok(png)
    }

    async fn eval(&mut self, expression: &str) -> anyhow::Result<Value> {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true}),
            )
            .await?;
        if let Some(exception) = result.get("exceptionDetails") {
            bail!("evaluating {expression}: {exception}");
        }
        Ok(result["result"]["value"].clone())
    }

    /// Polls `expression` every 100 ms until `done` holds for its value; fails after `WAIT`
    /// with the last value and the page's state.
    async fn wait_for(
        &mut self,
        what: &str,
        expression: &str,
        done: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let value = self.eval(expression).await?;
            if done(&value) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                let state = self.eval(PAGE_STATE).await.unwrap_or_default();
                panic!(
                    "timed out after {WAIT:?} waiting for {what}: last value {value}; page state {state}"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
