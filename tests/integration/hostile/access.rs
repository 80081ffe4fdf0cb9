//! Origin and Host checks, read-only grants, hashed tokens and revocation (PROTOCOL.md
//! section 5).
