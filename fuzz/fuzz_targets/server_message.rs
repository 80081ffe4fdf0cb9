//! A message from the server, as a client decodes it: see `atomsync_proto::fuzzing::server_message`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| atomsync_proto::fuzzing::server_message(data));
