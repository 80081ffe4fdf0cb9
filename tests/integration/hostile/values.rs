//! Values that cannot be decoded or that would decode to two answers (PROTOCOL.md
//! sections 2 and 6).
