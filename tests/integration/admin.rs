//! The admin API (`/admin/groups`, `/admin/groups/{g}`, `/admin/groups/{g}/docs`) and the
//! one-document read (`GET /sync/doc`) over HTTP: the admin token, both encodings, paging
//! with a cursor, and the errors.

use atomsync_proto::Encoding;
use atomsync_proto::wire::{DocAnswer, GroupsPage};
use reqwest::StatusCode;
use serde_json::{Value as Json, json};

use crate::common::TestServer;

const AUTH: &str =
    "[users.alice]\ntoken = \"alice-t\"\ngroups = [\"todo\"]\n[admin]\ntoken = \"root-t\"\n";

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// GETs `path` as `token` (a bearer token, or none): the status and the JSON answer.
pub(crate) async fn get(
    server: &TestServer,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, Json) {
    let mut request = client().get(server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// Pushes `{key: value}` changes with base 0 (and deletes `deleted`) as `token`.
async fn seed(server: &TestServer, token: &str, group: &str, keys: &[&str], deleted: &[&str]) {
    let mut changes: Vec<Json> = keys
        .iter()
        .map(|k| json!({"key": k, "base": 0, "value": {"k": k, "tags": {"$set": [{"$kw": "x"}]}}}))
        .collect();
    changes.extend(
        deleted
            .iter()
            .map(|k| json!({"key": k, "base": 0, "deleted": true})),
    );
    let response = client()
        .post(server.url("/sync"))
        .bearer_auth(token)
        .json(&json!({"group": group, "changes": changes}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
}

#[tokio::test]
async fn the_admin_token_and_nothing_else_opens_the_admin_api() {
    let server = TestServer::start_with(AUTH);
    for path in [
        "/admin/groups",
        "/admin/groups/todo",
        "/admin/groups/todo/docs",
    ] {
        let (status, body) = get(&server, path, None).await;
        assert_eq!(
            (status.as_u16(), &body["error"]),
            (401, &json!("unauthorized")),
            "{path}"
        );
        let (status, body) = get(&server, path, Some("wrong")).await;
        assert_eq!(
            (status.as_u16(), &body["error"]),
            (401, &json!("unauthorized")),
            "{path}"
        );
        let (status, body) = get(&server, path, Some("alice-t")).await;
        assert_eq!(
            (status.as_u16(), &body["error"]),
            (403, &json!("forbidden")),
            "{path}"
        );
        // ...and the admin token reads groups over /sync as over its API (never writes:
        // `ops::the_admin_token_loads_the_inspector_and_tails_any_group_read_only`).
        let (status, _) = get(&server, "/sync?group=todo", Some("root-t")).await;
        assert_eq!(status, 200);
    }
    let (status, body) = get(&server, "/admin/groups?token=root-t", None).await;
    assert_eq!(
        (status.as_u16(), body),
        (200, json!({"groups": [], "next": null}))
    );
    let response = client()
        .post(server.url("/admin/groups"))
        .bearer_auth("root-t")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);

    let off = TestServer::start();
    let (status, body) = get(&off, "/admin/groups", Some("anything")).await;
    assert_eq!(status, 403);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("admin API is off"),
        "{body}"
    );
}

#[tokio::test]
async fn groups_page_by_name_with_counts_in_both_encodings() {
    let server = TestServer::start_with("[admin]\ntoken = \"root-t\"\n");
    for group in ["g-c", "g-a", "g-b"] {
        seed(&server, "", group, &["k1", "k2"], &["gone"]).await;
    }
    let (status, first) = get(&server, "/admin/groups?limit=2", Some("root-t")).await;
    assert_eq!(status, 200);
    assert_eq!(
        first,
        json!({"groups": [
            {"name": "g-a", "seq": 3, "floor": 0, "documents": 2, "tombstones": 1, "subscribers": 0},
            {"name": "g-b", "seq": 3, "floor": 0, "documents": 2, "tombstones": 1, "subscribers": 0}],
            "next": "g-b"})
    );
    let (_, second) = get(&server, "/admin/groups?limit=2&after=g-b", Some("root-t")).await;
    assert_eq!(second["groups"][0]["name"], "g-c");
    assert_eq!(second["next"], Json::Null);

    // MessagePack when asked.
    let response = client()
        .get(server.url("/admin/groups"))
        .bearer_auth("root-t")
        .header("accept", "application/msgpack")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/msgpack");
    let page = GroupsPage::decode(&response.bytes().await.unwrap(), Encoding::MsgPack).unwrap();
    assert_eq!(page.groups.len(), 3);
    assert_eq!(page.next, None);

    let (status, one) = get(&server, "/admin/groups/g-b", Some("root-t")).await;
    assert_eq!((status.as_u16(), &one["documents"]), (200, &json!(2)));
    for (path, code, needle) in [
        ("/admin/groups/nope", 404, "has never been written"),
        ("/admin/groups/bad%20name", 400, "group: must be"),
        ("/admin/groups?limit=0", 400, "limit"),
        ("/admin/groups?after=bad%20name", 400, "after"),
    ] {
        let (status, body) = get(&server, path, Some("root-t")).await;
        assert_eq!(status.as_u16(), code, "{path}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(needle),
            "{path}: {body}"
        );
    }
}

#[tokio::test]
async fn a_groups_documents_page_in_key_order() {
    let server = TestServer::start_with("[admin]\ntoken = \"root-t\"\n");
    seed(
        &server,
        "",
        "docs",
        &["todo:2", "note:1", "todo:1", "todo:3"],
        &["todo:0"],
    )
    .await;
    let page = |query: &str| {
        let path = format!("/admin/groups/docs/docs?{query}");
        let server = &server;
        async move { get(server, &path, Some("root-t")).await.1 }
    };
    let keys = |body: &Json| -> Vec<String> {
        body["docs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["key"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = page("").await;
    assert_eq!(keys(&all), ["note:1", "todo:1", "todo:2", "todo:3"]);
    assert_eq!(
        all["docs"][0]["value"],
        json!({"k": "note:1", "tags": {"$set": [{"$kw": "x"}]}})
    );
    let first = page("prefix=todo:&limit=2&tombstones=true").await;
    assert_eq!(keys(&first), ["todo:0", "todo:1"]);
    assert_eq!(first["docs"][0]["deleted"], true);
    assert_eq!(first["next"], "todo:1");
    let second = page("prefix=todo:&limit=2&tombstones=true&after=todo:1").await;
    assert_eq!(keys(&second), ["todo:2", "todo:3"]);
    assert_eq!(second["next"], Json::Null);
    let (status, body) = get(
        &server,
        "/admin/groups/docs/docs?tombstones=maybe",
        Some("root-t"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn one_document_by_key() {
    let server = TestServer::start_with(AUTH);
    seed(&server, "alice-t", "todo", &["a"], &["gone"]).await;
    let (status, body) = get(&server, "/sync/doc?group=todo&key=a", Some("alice-t")).await;
    assert_eq!(status, 200);
    assert_eq!(body["doc"]["version"], 1);
    assert_eq!(
        body["doc"]["value"]["tags"],
        json!({"$set": [{"$kw": "x"}]})
    );
    assert!(body["epoch"].is_string());
    let (_, gone) = get(&server, "/sync/doc?group=todo&key=gone", Some("alice-t")).await;
    assert_eq!(
        gone["doc"],
        json!({"key": "gone", "version": 1, "seq": 2, "deleted": true})
    );
    let (_, never) = get(&server, "/sync/doc?group=todo&key=never", Some("alice-t")).await;
    assert_eq!(never["doc"], Json::Null);

    let response = client()
        .get(server.url("/sync/doc?group=todo&key=a"))
        .bearer_auth("alice-t")
        .header("accept", "application/msgpack")
        .send()
        .await
        .unwrap();
    let answer = DocAnswer::decode(&response.bytes().await.unwrap(), Encoding::MsgPack).unwrap();
    assert_eq!(answer.doc.unwrap().key, "a");

    for (path, token, code) in [
        ("/sync/doc?group=todo&key=a", None, 401),
        ("/sync/doc?group=other&key=a", Some("alice-t"), 403),
        ("/sync/doc?group=todo", Some("alice-t"), 400),
        ("/sync/doc?group=bad%20g&key=a", Some("alice-t"), 400),
        ("/sync/doc?group=todo&key=", Some("alice-t"), 400),
    ] {
        let (status, body) = get(&server, path, token).await;
        assert_eq!(status.as_u16(), code, "{path}: {body}");
        assert!(body["message"].is_string(), "{body}");
    }
}
