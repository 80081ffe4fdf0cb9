//! End-to-end tests: each starts the real `atomsync-server` binary on a free loopback port
//! with a temporary database (see [`common`]), and drives it as a client would.

mod admin;
mod cli;
mod client;
mod common;
mod hostile;
mod http;
mod ops;
mod safety;
mod ws;
