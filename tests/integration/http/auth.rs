//! Auth end to end (PROTOCOL.md section 5): tokens, group grants and the order of their
//! errors, and the browser assets behind the token when auth is on.

use serde_json::{Value as Json, json};

use super::{JSON, client};
use crate::common::TestServer;

#[tokio::test]
async fn auth_tokens_groups_and_error_order() {
    let server = TestServer::start_with(
        "[users.alice]\ntoken = \"abc123\"\ngroups = [\"todo\"]\n[users.admin]\ntoken = \"root\"\ngroups = [\"*\"]\n",
    );
    let c = client();
    let body =
        json!({"group": "todo", "changes": [{"key": "a", "base": 0, "value": 1}]}).to_string();
    // No token, wrong token: 401, and 401 comes before 415.
    let res = c
        .post(server.url("/sync"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = c
        .get(server.url("/sync?group=todo&token=nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.json::<Json>().await.unwrap()["error"], "unauthorized");
    // Health needs no token.
    assert_eq!(
        c.get(server.url("/healthz")).send().await.unwrap().status(),
        200
    );
    // Header and query tokens both work.
    let res = c
        .post(server.url("/sync"))
        .bearer_auth("abc123")
        .header("content-type", JSON)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = c
        .get(server.url("/sync?group=todo&token=abc123"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Another group: 403, for pull and push; 403 comes before per-change validation errors.
    let res = c
        .get(server.url("/sync?group=settings&token=abc123"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let bad_key =
        json!({"group": "settings", "changes": [{"key": "", "base": 0, "value": 1}]}).to_string();
    let res = c
        .post(server.url("/sync?token=abc123"))
        .header("content-type", JSON)
        .body(bad_key.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(res.json::<Json>().await.unwrap()["error"], "forbidden");
    let res = c
        .post(server.url("/sync"))
        .bearer_auth("root")
        .header("content-type", JSON)
        .body(bad_key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        400,
        "admin may use every group, so the change's own error shows"
    );
    assert!(!server.log().contains("abc123"), "tokens are never logged");
    assert!(server.log().contains("auth is on"));
}

#[tokio::test]
async fn browser_assets_are_served_with_etags_and_need_a_token_when_auth_is_on() {
    let open = TestServer::start();
    let c = client();
    for (path, content_type) in [
        ("/atomsync.js", "text/javascript; charset=utf-8"),
        ("/atomsync/atom.js", "text/javascript; charset=utf-8"),
        ("/sw.js", "text/javascript; charset=utf-8"),
        ("/", "text/html; charset=utf-8"),
        ("/demo/", "text/html; charset=utf-8"),
    ] {
        let res = c.get(open.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(res.headers()["content-type"], content_type);
        assert_eq!(res.headers()["cache-control"], "no-cache");
        let etag = res.headers()["etag"].to_str().unwrap().to_owned();
        assert!(!res.text().await.unwrap().is_empty());
        let res = c
            .get(open.url(path))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 304, "{path} revalidates");
    }
    let res = c.post(open.url("/atomsync.js")).send().await.unwrap();
    assert_eq!(res.status(), 405);

    let locked = TestServer::start_with("[users.alice]\ntoken = \"abc123\"\ngroups = [\"todo\"]\n");
    let res = c.get(locked.url("/atomsync.js")).send().await.unwrap();
    assert_eq!(res.status(), 401, "every path but /healthz needs the token");
    let res = c
        .get(locked.url("/atomsync.js?token=abc123"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // A module import cannot carry a header: the token in the query goes on to the
    // modules it imports, which need it too.
    let entry = res.text().await.unwrap();
    assert!(
        entry.contains("from \"./atomsync/atom.js?token=abc123\""),
        "{entry}"
    );
    let res = c.get(locked.url("/atomsync/atom.js")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res = c
        .get(locked.url("/atomsync/atom.js?token=abc123"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("from \"./syncer.js?token=abc123\"")
    );
    let res = c.get(locked.url("/?token=abc123")).send().await.unwrap();
    assert_eq!(res.status(), 200);
}
