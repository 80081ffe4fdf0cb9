//! The `atomsync` binary without a server: its help, its usage errors, and what it refuses
//! before sending anything. (Against a real server it is tested in the workspace's
//! end-to-end tests, `tests/integration/cli.rs`; having this file also makes
//! `cargo test --workspace` build the binary those tests run.)

use std::process::{Command, Output};

fn atomsync(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_atomsync"))
        .args(args)
        .env_remove("ATOMSYNC_SERVER")
        .env_remove("ATOMSYNC_TOKEN")
        .env_remove("ATOMSYNC_ADMIN_TOKEN")
        .output()
        .expect("run atomsync")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_names_every_command_and_the_exit_statuses() {
    let help = atomsync(&["--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for word in [
        "get",
        "put",
        "del",
        "pull",
        "watch",
        "export",
        "import",
        "groups",
        "scan",
        "ATOMSYNC_SERVER",
        "ATOMSYNC_TOKEN",
        "3 conflict",
        "4 not found",
    ] {
        assert!(text.contains(word), "{word} missing from:\n{text}");
    }
}

#[test]
fn bad_arguments_are_usage_errors() {
    let missing = atomsync(&["put", "todo", "k"]);
    assert_eq!(missing.status.code(), Some(2), "{}", stderr(&missing));
    let batch = atomsync(&["import", "g", "--batch", "0"]);
    assert_eq!(batch.status.code(), Some(2), "{}", stderr(&batch));
}

#[test]
fn bad_input_is_refused_before_anything_is_sent() {
    // Port 1 answers nothing: each of these must fail on its input, not on the network.
    let server = ["--server", "http://127.0.0.1:1"];
    for (args, needle) in [
        (
            vec!["put", "todo", "k", "{oops"],
            "atomsync: VALUE: not tagged JSON",
        ),
        (
            vec!["put", "a b", "k", "1"],
            "atomsync: GROUP \"a b\": must be 1..128",
        ),
        (
            vec!["get", "todo", ""],
            "atomsync: KEY \"\": must be 1..1024 bytes",
        ),
    ] {
        let args: Vec<&str> = args.into_iter().chain(server).collect();
        let out = atomsync(&args);
        let text = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {text}");
        assert_eq!(text.lines().count(), 1, "{args:?}: {text}");
        assert!(text.contains(needle), "{args:?}: {text}");
    }
    let out = atomsync(&["get", "todo", "k", "--server", "gopher://x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is not http, https, ws or wss"),
        "{}",
        stderr(&out)
    );
}
