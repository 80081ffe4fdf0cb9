//! Hostile and careless peers against the real binary (PROTOCOL.md sections 2, 4 "Slow
//! and idle connections", 5 and 6): stalled bodies, connection floods, readers that never
//! read, silent sockets, values that decode to two answers, query strings that are not
//! UTF-8 or repeat a parameter, foreign pages, narrowed and revoked grants. Raw sockets
//! play the peers no well-behaved client library would.

mod access;
mod query;
mod raw;
mod slow;
mod values;
