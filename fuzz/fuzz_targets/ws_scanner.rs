//! The WebSocket frame-length scanner against a whole-stream reading: see `atomsync::ws::frame_scanner`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| atomsync::ws::frame_scanner(data));
