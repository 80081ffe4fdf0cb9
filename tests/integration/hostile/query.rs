//! Query strings a careless client sends (PROTOCOL.md sections 3 and 4): bytes that are
//! not UTF-8 once percent-decoded, and a parameter given twice, on every endpoint that
//! reads a query. Each is a 400 naming the parameter, never another document read in
//! silence (`key=%FF` and `key=%C3` once both read the key `"\u{FFFD}"`) nor one of two
//! values picked.

use serde_json::json;

use crate::admin::get;
use crate::common::TestServer;
use crate::ws::http;

const CONFIG: &str = "[users.alice]\ntoken = \"alice-t\"\ngroups = [\"g\"]\n\
                      [admin]\ntoken = \"root-t\"\n";

#[tokio::test]
async fn parameters_that_are_not_utf8_or_repeated_are_refused_by_name() {
    let server = TestServer::start_with(CONFIG);
    // A document whose key is the replacement character: what a lossy decoder reads for
    // any byte that is not UTF-8.
    let res = http()
        .post(server.url("/sync"))
        .header("authorization", "Bearer alice-t")
        .header("content-type", "application/json")
        .body(
            json!({"group": "g", "changes": [{"key": "\u{FFFD}", "base": 0, "value": 1}]})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let alice = Some("alice-t");
    let root = Some("root-t");
    for (path, token, needle) in [
        ("/sync/doc?group=g&key=%FF", alice, "key: is not UTF-8"),
        ("/sync/doc?group=g&key=%C3", alice, "key: is not UTF-8"),
        (
            "/sync/doc?group=g&key=a&key=b",
            alice,
            "key: given more than once",
        ),
        (
            "/sync?group=g&since=0&since=1",
            alice,
            "since: given more than once",
        ),
        (
            "/sync?group=g&group=h",
            alice,
            "group: given more than once",
        ),
        ("/sync?group=g&limit=%FF", alice, "limit: is not UTF-8"),
        ("/admin/groups?after=%E2%82", root, "after: is not UTF-8"),
        (
            "/admin/groups?limit=1&limit=2",
            root,
            "limit: given more than once",
        ),
        (
            "/admin/groups/g/docs?prefix=%FF",
            root,
            "prefix: is not UTF-8",
        ),
        (
            "/admin/groups/g/docs?after=%FF",
            root,
            "after: is not UTF-8",
        ),
    ] {
        let (status, body) = get(&server, path, token).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"], "bad_request", "{path}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(needle),
            "{path}: {message:?} lacks {needle:?}"
        );
    }

    // A token in a query that cannot be read: 401 saying why, not "missing".
    for path in [
        "/sync?group=g&token=alice-t&token=x",
        "/sync/ws?token=%FF",
        "/admin/groups?token=root-t&token=root-t",
    ] {
        let (status, body) = get(&server, path, None).await;
        assert_eq!(status, 401, "{path}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("the query cannot be read"),
            "{path}: {message:?}"
        );
    }

    // Well-formed queries still read what they name, the replacement character included.
    let (status, body) = get(&server, "/sync/doc?group=g&key=%EF%BF%BD", alice).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["doc"]["value"], 1);
    let (status, body) = get(&server, "/sync?group=g&since=0&token=alice-t", None).await;
    assert_eq!(
        (status.as_u16(), body["seq"].clone()),
        (200, json!(1)),
        "{body}"
    );
}
