//! Any bytes through the tagged-JSON reader: see `atomsync_proto::fuzzing::json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| atomsync_proto::fuzzing::json(data));
