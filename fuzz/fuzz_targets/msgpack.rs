//! Any bytes through every MessagePack reader: see `atomsync_proto::fuzzing::msgpack`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| atomsync_proto::fuzzing::msgpack(data));
