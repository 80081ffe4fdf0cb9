//! Tombstone compaction (PROTOCOL.md section 8): a floor per group; a pull or subscribe
//! from below it answers as from 0 with `reset`; pages of a full pull asked with
//! `full=true` never loop; and a client offline across a compaction that removed a delete
//! keeps no deleted key, and keeps its own unsent changes.
