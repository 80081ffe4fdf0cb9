//! A push body decoded and validated: see `atomsync_proto::fuzzing::push`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| atomsync_proto::fuzzing::push(data));
