//! What an operator sees: `GET /metrics` (counts of requests, changes, commits, WebSocket
//! sessions; behind the admin token; off by config), the access log (one line per request
//! and per WebSocket session, text or JSON, never a token), TLS (`[server.tls]`) with a
//! certificate the test makes, reached by the native client over HTTPS and WSS, and a
//! config file with a mistake, which stops the start naming the file, the line and the key.

use std::time::{Duration, Instant};

use atomsync_client::{Options, RootCertificate, Store, value};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value as Json, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::common::TestServer;

const WAIT: Duration = Duration::from_secs(20);

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn scrape(server: &TestServer, token: Option<&str>) -> (u16, String) {
    let mut request = client().get(server.url("/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The value of the sample named exactly `series` (name and labels as rendered).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().unwrap())
        })
        .unwrap_or_else(|| panic!("{series} not in\n{text}"))
}

async fn push(server: &TestServer, token: Option<&str>, body: Json) -> Json {
    let mut request = client().post(server.url("/sync")).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Polls the metrics until `check` holds on them.
async fn metrics_until(server: &TestServer, what: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, text) = scrape(server, None).await;
        if check(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "never {what}:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn metrics_count_requests_changes_commits_and_websocket_sessions() {
    let server = TestServer::start();
    let group = "metrics-secret-group-name";
    let answer = push(
        &server,
        None,
        json!({"group": group, "changes": [
            {"key": "a", "base": 0, "value": 1},
            {"key": "b", "base": 7, "value": 2}]}),
    )
    .await;
    assert_eq!(answer["seq"], 1);

    // A WebSocket session: subscribe, push one change, see it come back, close.
    let (mut socket, _) = tokio_tungstenite::connect_async(server.ws_url("/sync/ws"))
        .await
        .unwrap();
    let subscribe = json!({"type": "subscribe", "group": group, "since": 0});
    socket
        .send(Message::Text(subscribe.to_string().into()))
        .await
        .unwrap();
    let push_frame = json!({"type": "push", "id": 1, "group": group,
                            "changes": [{"key": "c", "base": 0, "value": 3}]});
    socket
        .send(Message::Text(push_frame.to_string().into()))
        .await
        .unwrap();
    let mut seen_live = false;
    let deadline = Instant::now() + WAIT;
    while !seen_live {
        assert!(Instant::now() < deadline, "no live frame");
        if let Some(Ok(Message::Text(text))) = socket.next().await {
            let frame: Json = serde_json::from_str(&text).unwrap();
            seen_live = frame["type"] == "changes" && frame["seq"] == 2;
        }
    }
    let text = metrics_until(&server, "one subscription", |t| {
        t.contains("atomsync_ws_subscriptions 1") && t.contains("atomsync_ws_connections 1")
    })
    .await;
    assert_eq!(sample(&text, "atomsync_groups_open"), 1.0);
    socket.close(None).await.unwrap();

    let text = metrics_until(&server, "the session closed", |t| {
        t.contains("atomsync_ws_connections 0") && t.contains("atomsync_ws_subscriptions 0")
    })
    .await;
    let at = |series: &str| sample(&text, series);
    assert_eq!(at("atomsync_changes_total{outcome=\"accepted\"}"), 2.0);
    assert_eq!(at("atomsync_changes_total{outcome=\"conflict\"}"), 1.0);
    assert_eq!(
        at("atomsync_http_requests_total{method=\"POST\",route=\"/sync\",status=\"200\"}"),
        1.0
    );
    assert_eq!(
        at("atomsync_http_requests_total{method=\"GET\",route=\"/sync/ws\",status=\"101\"}"),
        1.0
    );
    assert_eq!(at("atomsync_ws_connections_total"), 1.0);
    assert_eq!(at("atomsync_commit_batch_pushes_sum"), 2.0);
    assert_eq!(at("atomsync_commit_batch_changes_sum"), 3.0);
    assert!(at("atomsync_commit_duration_seconds_count") >= 2.0);
    // The harness runs durability = "normal": no commit waits for an fsync.
    assert_eq!(at("atomsync_commit_fsyncs_total"), 0.0);
    // Sent: subscribed, the pushed answer, the live change; received: two frames.
    assert!(at("atomsync_ws_frames_sent_total") >= 3.0);
    assert_eq!(at("atomsync_ws_frames_received_total"), 2.0);
    assert!(at("atomsync_ws_bytes_sent_total") > 100.0);
    assert_eq!(at("atomsync_ws_slow_consumer_closes_total"), 0.0);
    assert!(at("atomsync_pool_wait_seconds_count") >= 1.0);
    // Group names never become labels.
    assert!(!text.contains(group), "{text}");
}

#[tokio::test]
async fn metrics_need_the_admin_token_when_one_is_configured_and_can_be_off() {
    let server = TestServer::start_with(
        "[users.alice]\ntoken = \"alice-t\"\ngroups = [\"*\"]\n[admin]\ntoken = \"root-t\"\n",
    );
    assert_eq!(scrape(&server, None).await.0, 401);
    assert_eq!(scrape(&server, Some("nope")).await.0, 401);
    assert_eq!(scrape(&server, Some("alice-t")).await.0, 403);
    let (status, text) = scrape(&server, Some("root-t")).await;
    assert_eq!(status, 200);
    assert!(text.contains("# TYPE atomsync_http_requests_total counter"));

    let off = TestServer::start_with("[metrics]\nenabled = false\n");
    let (status, body) = scrape(&off, None).await;
    assert_eq!(status, 404);
    assert!(body.contains("enabled = false"), "{body}");
}

/// Every request (and every WebSocket session) makes one access line, in JSON with
/// `--log-format json`; no token, from a header or a query, reaches the log.
#[tokio::test]
async fn the_json_access_log_has_one_line_per_request_and_never_a_token() {
    let server = TestServer::start_with_flags(
        "[users.alice]\ntoken = \"alice-S3CRET\"\ngroups = [\"todo\"]\n[admin]\ntoken = \"root-S3CRET\"\n",
        &["--log-format", "json"],
    );
    push(
        &server,
        Some("alice-S3CRET"),
        json!({"group": "todo", "changes": [{"key": "k", "base": 0, "value": "v"}]}),
    )
    .await;
    for (path, token) in [
        ("/sync?group=todo&since=0&token=alice-S3CRET", None),
        ("/sync?group=todo&token=wrong-S3CRET", None),
        ("/admin/groups/todo", Some("root-S3CRET")),
        ("/metrics?token=root-S3CRET", None),
        ("/no/such/path", Some("alice-S3CRET")),
    ] {
        let mut request = client().get(server.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap();
    }
    let url = server.ws_url("/sync/ws?token=alice-S3CRET");
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let frame = json!({"type": "push", "id": 1, "group": "todo",
                       "changes": [{"key": "k2", "base": 0, "value": 1}]});
    socket
        .send(Message::Text(frame.to_string().into()))
        .await
        .unwrap();
    let _answer = socket.next().await;
    let bye = CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    };
    socket.close(Some(bye)).await.unwrap();

    let deadline = Instant::now() + WAIT;
    let lines: Vec<Json> = loop {
        let log = server.log();
        let lines: Vec<Json> = log
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
            .collect();
        if lines
            .iter()
            .any(|l| l["message"] == "websocket session ended")
        {
            break lines;
        }
        assert!(Instant::now() < deadline, "no session line in\n{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let log = server.log();
    assert!(!log.contains("S3CRET"), "a token reached the log:\n{log}");
    let access: Vec<&Json> = lines
        .iter()
        .filter(|l| l["target"] == "atomsync::access")
        .collect();
    let find = |route: &str, status: u64| {
        access
            .iter()
            .find(|l| l["route"] == route && l["status"] == status)
            .unwrap_or_else(|| panic!("no {route} {status} line in\n{log}"))
    };
    let pushed = find("/sync", 200);
    assert_eq!(pushed["method"], "POST");
    assert_eq!(pushed["group"], "todo");
    assert_eq!(pushed["changes"], 1);
    assert!(pushed["bytes_in"].as_u64().unwrap() > 0);
    assert!(pushed["bytes_out"].as_u64().unwrap() > 0);
    assert!(pushed["ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(pushed["level"], "INFO");
    let refused = find("/sync", 401);
    assert_eq!(refused["error"], "token: unknown");
    assert_eq!(find("/admin/groups/{group}", 200)["group"], "todo");
    find("/metrics", 200);
    find("other", 404);
    find("/sync/ws", 101);
    let session = lines
        .iter()
        .find(|l| l["message"] == "websocket session ended")
        .unwrap();
    assert_eq!(session["pushes"], 1);
    assert_eq!(session["changes"], 1);
    assert_eq!(session["frames_in"], 1);
    assert_eq!(session["close"], 1000);
    // One line per request: 7 HTTP requests (the push, 5 GETs, the upgrade), beside the
    // harness's health probes.
    assert_eq!(
        access
            .iter()
            .filter(|l| l["message"] == "request" && l["route"] != "/healthz")
            .count(),
        7,
        "{log}"
    );
}

/// A certificate authority and a server certificate it signed for 127.0.0.1, made here.
struct TestCa {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

/// A server on HTTPS with a certificate signed by a CA made here; and that CA, in PEM.
pub(crate) fn tls_server() -> (TestServer, String) {
    let ca = make_ca();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), &ca.cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), &ca.key_pem).unwrap();
    let toml = format!(
        "[server.tls]\ncert = {:?}\nkey = {:?}\n",
        dir.path().join("cert.pem").display().to_string(),
        dir.path().join("key.pem").display().to_string()
    );
    (TestServer::start_in(dir, &toml, &[]), ca.ca_pem)
}

fn make_ca() -> TestCa {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Atomsync test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    TestCa {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// `[server.tls]` with a made CA: the native client syncs over HTTPS and WSS once told to
/// trust the CA, and refuses the server when not.
#[tokio::test]
async fn tls_serves_the_native_client_over_https_and_wss() {
    let (server, ca_pem) = tls_server();
    assert!(server.url("/sync").starts_with("https://"));
    assert!(server.log().contains("listening on https://"));

    let root = RootCertificate::from_pem(ca_pem.as_bytes()).unwrap();
    let trusted = |url: String| Options::new(url).add_root_certificate(root.clone());
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let a = Store::open(a_dir.path().join("a.db")).unwrap();
    let b = Store::open(b_dir.path().join("b.db")).unwrap();
    let atom_a = a.synced_atom("tls", trusted(server.url("/sync"))).unwrap();
    let atom_b = b.synced_atom("tls", trusted(server.url("/sync"))).unwrap();
    atom_a.ready().await;
    atom_b.ready().await;
    atom_a
        .swap(|m| {
            m.insert("greeting".into(), value!({"text": "over TLS"}));
        })
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while atom_b.snapshot().get("greeting").is_none() {
        assert!(
            Instant::now() < deadline,
            "b never got the change: {:?}",
            atom_b.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        atom_b.status().connection,
        atomsync_client::Connection::Live,
        "b syncs over wss://"
    );

    // Without the CA the same server is refused, and says why.
    let c_dir = tempfile::tempdir().unwrap();
    let c = Store::open(c_dir.path().join("c.db")).unwrap();
    let atom_c = c
        .synced_atom("tls", Options::new(server.url("/sync")))
        .unwrap();
    atom_c.ready().await;
    let error = atom_c.status().last_error.map(|e| e.to_string());
    assert!(
        error.as_deref().is_some_and(|e| e.contains("certificate")),
        "{error:?}"
    );
    assert!(atom_c.snapshot().is_empty());
    for store in [a, b, c] {
        store.close().await;
    }
}

/// The inspector's needs with auth on: its page without a token, the browser client with
/// the admin token, and read-only access: it pulls and subscribes to any group, its pushes
/// (HTTP and WebSocket) are refused and apply nothing.
#[tokio::test]
async fn the_admin_token_loads_the_inspector_and_tails_any_group_read_only() {
    let server = TestServer::start_with(
        "[users.alice]\ntoken = \"alice-t\"\ngroups = [\"todo\"]\n[admin]\ntoken = \"root-t\"\n",
    );
    let get = |path: &str| client().get(server.url(path)).send();
    let page = get("/inspect").await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Atomsync inspector"));
    assert_eq!(get("/inspect/inspect.js").await.unwrap().status(), 401);
    let module = get("/inspect/inspect.js?token=root-t").await.unwrap();
    assert_eq!(module.status(), 200);
    assert!(
        module
            .text()
            .await
            .unwrap()
            .contains("\"../atomsync.js?token=root-t\"")
    );
    assert_eq!(
        get("/atomsync.js?token=root-t").await.unwrap().status(),
        200
    );
    assert_eq!(get("/atomsync.js?token=nope").await.unwrap().status(), 401);
    // Over HTTP as over the WebSocket: it reads any group, and never writes.
    assert_eq!(
        get("/sync?group=todo&token=root-t").await.unwrap().status(),
        200
    );
    let refused = client()
        .post(server.url("/sync"))
        .bearer_auth("root-t")
        .json(&json!({"group": "todo", "changes": [{"key": "c", "base": 0, "value": 3}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let body: Json = refused.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("reads only"),
        "{body}"
    );

    push(
        &server,
        Some("alice-t"),
        json!({"group": "todo", "changes": [{"key": "a", "base": 0, "value": 1}]}),
    )
    .await;
    let (mut socket, _) = tokio_tungstenite::connect_async(server.ws_url("/sync/ws?token=root-t"))
        .await
        .unwrap();
    let mut send = async |frame: Json| {
        socket
            .send(Message::Text(frame.to_string().into()))
            .await
            .unwrap();
    };
    send(json!({"type": "subscribe", "group": "todo", "since": 0})).await;
    send(json!({"type": "push", "id": 7, "group": "todo",
                "changes": [{"key": "b", "base": 0, "value": 2}]}))
    .await;
    let (mut caught_up, mut refused) = (false, false);
    let deadline = Instant::now() + WAIT;
    while !(caught_up && refused) {
        assert!(
            Instant::now() < deadline,
            "caught up {caught_up}, refused {refused}"
        );
        let Some(Ok(Message::Text(text))) = socket.next().await else {
            continue;
        };
        let frame: Json = serde_json::from_str(&text).unwrap();
        match frame["type"].as_str() {
            Some("changes") => caught_up = frame["changes"][0]["key"] == "a",
            Some("error") => {
                assert_eq!(frame["id"], 7);
                assert_eq!(frame["error"], "forbidden");
                refused = true;
            }
            _ => {}
        }
    }
    let doc = client()
        .get(server.url("/sync/doc?group=todo&key=b"))
        .bearer_auth("alice-t")
        .send()
        .await
        .unwrap()
        .json::<Json>()
        .await
        .unwrap();
    assert_eq!(doc["doc"], Json::Null, "the refused push wrote nothing");
}

/// A value that parses but cannot be used stops the start (and every command) with the
/// file, the line and the key, as a value of the wrong type does.
#[test]
fn an_unusable_config_value_names_the_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("atomsync.toml");
    for (text, at) in [
        (
            "[server]\nbind = \"127.0.0.1:0\"\npool_size = 0\n",
            "line 3: server.pool_size: must be at least 1",
        ),
        (
            "[server]\nbind = \"127.0.0.1:0\"\n\n[users.alice]\ntoken = \"t\"\ngroups = [\"todo\", \"my todo\"]\n",
            "line 6: users.alice.groups[1]: must be 1..128 characters",
        ),
        (
            "[server]\nbind = \"127.0.0.1:0\"\n[server.tls]\ncert = \"/nonexistent/c.pem\"\nkey = \"/nonexistent/k.pem\"\n",
            "line 4: server.tls.cert: cannot read /nonexistent/c.pem",
        ),
    ] {
        std::fs::write(&config, text).unwrap();
        for args in [&[][..], &["compact", "--older-than", "1d"][..]] {
            let out = crate::common::run_server_binary(&config, args);
            assert!(!out.status.success(), "{text:?} {args:?} started");
            let stderr = String::from_utf8_lossy(&out.stderr);
            let want = format!("{}: {at}", config.display());
            assert!(
                stderr.contains(&want),
                "{args:?}: {stderr:?} lacks {want:?}"
            );
        }
    }
}
