//! The database the server writes is the one at its path (PROTOCOL.md section 1): deleted
//! or replaced while the server runs, pushes answer 503 and nothing more is acknowledged
//! (issue 11, fault 2). And a file that is not an Atomsync database is never touched.

use atomsync_proto::Value;
use reqwest::StatusCode;

use super::{http, push, push_raw};
use crate::common::{TestServer, run_server_binary, sqlite_only};

async fn health(server: &TestServer) -> StatusCode {
    http()
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap()
        .status()
}

async fn refused_503(server: &TestServer, key: &str) {
    let (status, body) = push_raw(server, "g", &[(key, 0, Some(Value::from(1)))]).await;
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("unavailable") && body.contains("deleted or replaced"),
        "{body}"
    );
}

#[tokio::test]
async fn a_deleted_database_answers_503_and_acknowledges_nothing() {
    if sqlite_only(
        "deletes the SQLite file; a PostgreSQL database dropped under a server is storage::postgres::tests::a_database_taken_away_is_unavailable_not_a_bug",
    ) {
        return;
    }
    let server = TestServer::start();
    push(&server, "g", &[("a", 0, Some(Value::from(1)))]).await;
    assert_eq!(health(&server).await, 200);
    std::fs::remove_file(server.db_path()).unwrap();
    refused_503(&server, "b").await;
    refused_503(&server, "c").await;
    assert_eq!(health(&server).await, 503);
    let res = http()
        .get(server.url("/sync?group=g"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503, "reads say so too");
    assert!(server.log().contains("deleted or replaced"));
}

#[tokio::test]
async fn a_replaced_database_answers_503() {
    if sqlite_only(
        "replaces the SQLite file; a PostgreSQL database taken away is storage::postgres::tests::a_database_taken_away_is_unavailable_not_a_bug",
    ) {
        return;
    }
    let server = TestServer::start();
    push(&server, "g", &[("a", 0, Some(Value::from(1)))]).await;
    let other = server.dir().join("other.db");
    std::fs::copy(server.db_path(), &other).unwrap();
    std::fs::rename(&other, server.db_path()).unwrap();
    // Health notices first this time.
    assert_eq!(health(&server).await, 503);
    refused_503(&server, "b").await;
}

/// Another application's SQLite file, and a file that is not SQLite at all: the server
/// stops with a clear message and leaves the file (and its folder) as they were.
#[test]
fn another_applications_file_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let foreign = dir.path().join("crm.db");
    let conn = rusqlite::Connection::open(&foreign).unwrap();
    conn.execute_batch(
        "CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL);
         INSERT INTO invoices (total) VALUES (12.5);",
    )
    .unwrap();
    drop(conn);
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "my notes").unwrap();
    for (file, needle) in [
        (&foreign, "another application"),
        (&text, "not an SQLite database"),
    ] {
        let before = std::fs::read(file).unwrap();
        let config = dir.path().join("a.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nbind = \"127.0.0.1:0\"\ndb = {:?}\n",
                file.display().to_string()
            ),
        )
        .unwrap();
        let out = run_server_binary(&config, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(err.contains(needle) && err.contains("untouched"), "{err}");
        assert_eq!(std::fs::read(file).unwrap(), before, "{}", file.display());
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["a.toml", "crm.db", "notes.txt"], "nothing created");
        // Neither does a backup take it for a database.
        let out = run_server_binary(&config, &["backup", "--out", "/nonexistent/x.db"]);
        assert!(String::from_utf8_lossy(&out.stderr).contains(needle));
    }
}
