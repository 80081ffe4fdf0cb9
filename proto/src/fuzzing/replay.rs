//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) through the same checks
//! the fuzz targets run, on stable, so that every input a fuzzer kept stays green in CI.

use std::path::PathBuf;

/// Runs `check` on every file of `fuzz/corpus/<target>/`, which must hold some.
fn replay(target: &str, check: fn(&[u8])) {
    let dir: PathBuf = [env!("CARGO_MANIFEST_DIR"), "..", "fuzz", "corpus", target]
        .iter()
        .collect();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut count = 0;
    for entry in entries {
        let path = entry.expect("a corpus entry").path();
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // The file's name says which input failed, if one does.
        let outcome = std::panic::catch_unwind(|| check(&bytes));
        assert!(outcome.is_ok(), "{target}: {} fails", path.display());
        count += 1;
    }
    assert!(count >= 10, "{}: only {count} inputs", dir.display());
}

#[test]
fn the_msgpack_corpus_replays() {
    replay("msgpack", super::msgpack);
}

#[test]
fn the_json_corpus_replays() {
    replay("json", super::json);
}

#[test]
fn the_push_corpus_replays() {
    replay("push", super::push);
}

#[test]
fn the_client_frame_corpus_replays() {
    replay("client_frame", super::client_frame);
}

#[test]
fn the_server_message_corpus_replays() {
    replay("server_message", super::server_message);
}
