//! `export` and `import`: a group copied into a second server comes back byte for byte,
//! typed values included; running an import again writes nothing; keys that exist are kept
//! or overwritten as asked; a server with small limits still takes the whole file.

use super::TYPED;
use super::run::Cli;
use crate::common::TestServer;

/// `n` lines of `{"key", "value"}` with every type, in the server's own JSON form.
fn seed(n: usize) -> String {
    let mut text = String::new();
    for i in 0..n {
        let value = match i % 4 {
            0 => TYPED.to_owned(),
            1 => format!(
                r#"{{"n":{i},"half":{}.5,"at":{{"$inst":"2026-01-0{}T00:00:00.000000001Z"}}}}"#,
                i,
                1 + i % 9
            ),
            2 => format!(r#"{{"$set":[{i},"{i}",{{"$kw":"k{i}"}}]}}"#),
            _ => format!(
                r#"[{{"$bytes":"AA=="}},{},-{i},1e300]"#,
                u64::MAX - i as u64
            ),
        };
        text.push_str(&format!("{{\"key\":\"k{i:03}\",\"value\":{value}}}\n"));
    }
    text
}

fn summary(ran: &super::run::Ran) -> &str {
    ran.stderr.trim_end()
}

#[test]
fn export_then_import_into_a_second_server_is_exact() {
    let (a, b) = (TestServer::start(), TestServer::start());
    let seed = seed(300);
    let loaded = Cli::new(&a, &["import", "copy", "--batch", "64"])
        .stdin(seed.clone())
        .run();
    assert!(summary(&loaded).contains("300 written"), "{loaded:#?}");
    // The export is what was imported, line for line (the group's seq order is the file's).
    let first = Cli::new(&a, &["export", "copy"]).run();
    assert_eq!(first.ok(), seed);
    assert!(
        summary(&first).contains("exported 300 documents of copy up to seq 300"),
        "{first:#?}"
    );

    // Deletions and updates show in the next export: deleted keys leave, changed ones
    // move to the end with their new value.
    Cli::new(&a, &["del", "copy", "k010"]).run().ok();
    Cli::new(&a, &["put", "copy", "k005", r#"{"$kw":"changed"}"#])
        .run()
        .ok();
    let exported = Cli::new(&a, &["export", "copy"]).run().ok().to_owned();
    let lines: Vec<&str> = exported.lines().collect();
    assert_eq!(lines.len(), 299);
    assert_eq!(lines[298], r#"{"key":"k005","value":{"$kw":"changed"}}"#);
    assert!(!exported.contains("\"k010\""));

    let imported = Cli::new(&b, &["import", "copy", "--batch", "100"])
        .stdin(exported.clone())
        .run();
    assert!(
        summary(&imported).contains("299 lines into copy")
            && summary(&imported).contains("299 written"),
        "{imported:#?}"
    );
    assert_eq!(Cli::new(&b, &["export", "copy"]).run().ok(), exported);
    for key in ["k000", "k001", "k002", "k003"] {
        assert_eq!(
            Cli::new(&a, &["get", "copy", key]).run().ok(),
            Cli::new(&b, &["get", "copy", key]).run().ok()
        );
    }

    // Running it again writes nothing: no new versions, no new seq.
    let again = Cli::new(&b, &["import", "copy"])
        .stdin(exported.clone())
        .run();
    assert!(summary(&again).contains("299 unchanged"), "{again:#?}");
    assert_eq!(
        Cli::new(&b, &["pull", "copy", "--since", "299"]).run().ok(),
        ""
    );

    // A key that holds another value is kept, unless asked to overwrite.
    Cli::new(&b, &["put", "copy", "k001", r#""mine""#])
        .run()
        .ok();
    let kept = Cli::new(&b, &["import", "copy"])
        .stdin(exported.clone())
        .run();
    assert_eq!(kept.code, Some(0), "{kept:#?}");
    assert!(
        summary(&kept).contains("298 unchanged, 1 kept"),
        "{kept:#?}"
    );
    assert!(summary(&kept).contains("--existing overwrite"), "{kept:#?}");
    assert_eq!(
        Cli::new(&b, &["get", "copy", "k001"]).run().ok(),
        "\"mine\"\n"
    );
    let over = Cli::new(&b, &["import", "copy", "--existing", "overwrite"])
        .stdin(exported.clone())
        .run();
    assert!(
        summary(&over).contains("1 written, 298 unchanged"),
        "{over:#?}"
    );
    assert_eq!(
        Cli::new(&b, &["get", "copy", "k001"]).run().ok(),
        Cli::new(&a, &["get", "copy", "k001"]).run().ok()
    );
}

#[test]
fn later_lines_win_and_deleted_lines_delete_what_the_import_wrote() {
    let server = TestServer::start();
    // What an export taken while `a` changed and `b` was deleted looks like.
    let file = "{\"key\":\"a\",\"value\":1}\n{\"key\":\"b\",\"value\":2}\n{\"key\":\"a\",\"value\":3}\n{\"key\":\"b\",\"deleted\":true}\n{\"key\":\"z\",\"deleted\":true}\n";
    for batch in ["1", "1000"] {
        let group = format!("later{batch}");
        let ran = Cli::new(&server, &["import", &group, "--batch", batch])
            .stdin(file)
            .run();
        assert_eq!(ran.code, Some(0), "{ran:#?}");
        assert_eq!(Cli::new(&server, &["get", &group, "a"]).run().ok(), "3\n");
        Cli::new(&server, &["get", &group, "z"])
            .run()
            .fails(4, "no such document");
        if batch == "1" {
            // Separate batches: b was written, then deleted.
            Cli::new(&server, &["get", &group, "b"])
                .run()
                .fails(4, "deleted");
            assert!(summary(&ran).contains("3 written, 1 deleted"), "{ran:#?}");
        } else {
            // One batch: the later line replaced the earlier before anything was sent.
            Cli::new(&server, &["get", &group, "b"])
                .run()
                .fails(4, "no such document");
        }
    }
}

#[test]
fn a_server_with_small_limits_takes_the_file_in_smaller_batches() {
    let server = TestServer::start_with("max_changes = 10\nmax_value_bytes = 2048\n");
    let file = seed(95);
    let ran = Cli::new(&server, &["import", "small", "--batch", "64"])
        .stdin(file.clone())
        .run();
    assert!(summary(&ran).contains("95 written"), "{ran:#?}");
    assert_eq!(Cli::new(&server, &["export", "small"]).run().ok(), file);

    let big = format!(
        "{{\"key\":\"fine\",\"value\":1}}\n{{\"key\":\"big\",\"value\":\"{}\"}}\n",
        "x".repeat(4000)
    );
    Cli::new(&server, &["import", "small"])
        .stdin(big)
        .run()
        .fails(1, "line 2 (key \"big\"): server: payload_too_large (413)");
}
