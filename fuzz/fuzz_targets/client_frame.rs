//! A WebSocket client frame, its envelope and its push: see `atomsync_proto::fuzzing::client_frame`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| atomsync_proto::fuzzing::client_frame(data));
