//! What `import` does with each line, free of files and sockets so it is tested directly.
//!
//! A line sets a key to a value, or (after an earlier line for the same key, as `export`
//! writes when a document is deleted during the export) marks it deleted. Each line is
//! pushed first with the base a new key has (0), or with the version this import itself
//! wrote for the key. What the server answers decides the rest:
//!
//! - accepted: written;
//! - the key holds the same value already: unchanged (so running an import again writes
//!   nothing and changes no version);
//! - the key is a tombstone: the document is created again on top of it;
//! - the key holds another value: kept as it is with `--existing skip` (the default), or
//!   written over with `--existing overwrite` (pushed again with the current version);
//! - the key changed under a version this import wrote, or again between the two rounds:
//!   a conflict (another client wrote it meanwhile); that client's value stays.

use std::collections::HashMap;

use atomsync_proto::Packed;
use atomsync_proto::wire::{Change, Doc, Op, PushResult};

/// What to do with a key that already holds another value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Existing {
    /// Keep the server's value.
    Skip,
    /// Write the file's value over it.
    Overwrite,
}

/// One line of the input.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Its line number, from 1.
    pub number: u64,
    /// The document's key.
    pub key: String,
    /// The value; `None` for `"deleted": true`.
    pub value: Option<Packed>,
}

/// Which push a result answers: the first, or the one retrying with the current version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// The first push of a line.
    First,
    /// The retry with the version the first one found.
    Retry,
}

/// The counts an import reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Documents written (created, created again over a tombstone, or overwritten).
    pub written: u64,
    /// Keys that already held the same value.
    pub unchanged: u64,
    /// Keys that hold another value and were kept (`--existing skip`).
    pub kept: u64,
    /// Documents this import wrote and then deleted, as a later line said.
    pub deleted: u64,
    /// Keys another client changed during the import.
    pub conflicts: u64,
    /// The first few conflicting keys, to name them.
    pub conflict_keys: Vec<String>,
}

/// How many conflicting keys the report names.
const NAMED_CONFLICTS: usize = 5;

/// The import's memory across batches.
#[derive(Debug)]
pub struct Plan {
    existing: Existing,
    /// The version this import last wrote (or found equal) for each key it settled.
    ours: HashMap<String, u64>,
    /// What happened so far.
    pub tally: Tally,
}

impl Plan {
    /// A plan for a new import.
    pub fn new(existing: Existing) -> Plan {
        Plan {
            existing,
            ours: HashMap::new(),
            tally: Tally::default(),
        }
    }

    /// The change to push first for `line`; `None` when there is nothing to do (a deletion
    /// of a key this import did not write: the file's own earlier line was not applied).
    pub fn first(&self, line: &Line) -> Option<Change> {
        let ours = self.ours.get(&line.key).copied();
        match &line.value {
            Some(value) => Some(change(line, ours.unwrap_or(0), Op::Set(value.clone()))),
            None => ours.map(|base| change(line, base, Op::Delete)),
        }
    }

    /// Records the server's answer to `line`'s push; returns the change to push again,
    /// if any (only after a [`Round::First`]).
    pub fn settle(&mut self, line: &Line, result: PushResult, round: Round) -> Option<Change> {
        let current = match result {
            PushResult::Accepted { version, .. } => {
                self.ours.insert(line.key.clone(), version);
                match line.value {
                    Some(_) => self.tally.written += 1,
                    None => self.tally.deleted += 1,
                }
                return None;
            }
            PushResult::Conflict { current, .. } => current,
        };
        let ours = self.ours.contains_key(&line.key);
        match (&line.value, current) {
            (
                Some(wanted),
                Some(Doc {
                    value: Some(have),
                    version,
                    ..
                }),
            ) if have.as_bytes() == wanted.as_bytes() => {
                self.tally.unchanged += 1;
                self.ours.insert(line.key.clone(), version);
                None
            }
            (
                None,
                Some(Doc {
                    value: None,
                    version,
                    ..
                }),
            ) => {
                // Deleted already, by someone else: the file's wish holds.
                self.tally.unchanged += 1;
                self.ours.insert(line.key.clone(), version);
                None
            }
            // A deletion of what this import wrote met another client's change.
            (None, _) => {
                self.conflict(line);
                None
            }
            (Some(_), _) if round == Round::Retry || ours => {
                self.conflict(line);
                None
            }
            (Some(wanted), None) => Some(change(line, 0, Op::Set(wanted.clone()))),
            (
                Some(wanted),
                Some(Doc {
                    value: None,
                    version,
                    ..
                }),
            ) => Some(change(line, version, Op::Set(wanted.clone()))),
            (Some(wanted), Some(Doc { version, .. })) => match self.existing {
                Existing::Overwrite => Some(change(line, version, Op::Set(wanted.clone()))),
                Existing::Skip => {
                    self.tally.kept += 1;
                    None
                }
            },
        }
    }

    fn conflict(&mut self, line: &Line) {
        self.tally.conflicts += 1;
        if self.tally.conflict_keys.len() < NAMED_CONFLICTS {
            self.tally.conflict_keys.push(line.key.clone());
        }
    }
}

fn change(line: &Line, base: u64, op: Op) -> Change {
    Change {
        key: line.key.clone(),
        base,
        op,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atomsync_proto::Value;

    fn line(key: &str, value: Option<i64>) -> Line {
        Line {
            number: 1,
            key: key.into(),
            value: value.map(|v| Packed::from_value(&Value::Int(v))),
        }
    }

    fn doc(key: &str, version: u64, value: Option<i64>) -> Option<Doc> {
        Some(Doc {
            key: key.into(),
            version,
            seq: version,
            value: value.map(|v| Packed::from_value(&Value::Int(v))),
        })
    }

    fn accepted(key: &str, version: u64) -> PushResult {
        PushResult::Accepted {
            key: key.into(),
            version,
            seq: version,
        }
    }

    fn conflict(current: Option<Doc>) -> PushResult {
        PushResult::Conflict {
            key: "k".into(),
            current,
        }
    }

    #[test]
    fn new_keys_are_written_with_base_zero() {
        let mut plan = Plan::new(Existing::Skip);
        let l = line("k", Some(1));
        assert_eq!(plan.first(&l).unwrap().base, 0);
        assert_eq!(plan.settle(&l, accepted("k", 1), Round::First), None);
        assert_eq!(plan.tally.written, 1);
        // A later line for the same key builds on what this import wrote.
        let again = line("k", Some(2));
        assert_eq!(plan.first(&again).unwrap().base, 1);
    }

    #[test]
    fn the_same_value_is_left_alone_so_a_rerun_writes_nothing() {
        let mut plan = Plan::new(Existing::Overwrite);
        let l = line("k", Some(1));
        assert_eq!(
            plan.settle(&l, conflict(doc("k", 7, Some(1))), Round::First),
            None
        );
        assert_eq!(plan.tally.unchanged, 1);
        assert_eq!(plan.tally.written, 0);
    }

    #[test]
    fn another_value_is_kept_or_overwritten_as_asked() {
        let l = line("k", Some(1));
        let mut skip = Plan::new(Existing::Skip);
        assert_eq!(
            skip.settle(&l, conflict(doc("k", 7, Some(2))), Round::First),
            None
        );
        assert_eq!(skip.tally.kept, 1);
        let mut overwrite = Plan::new(Existing::Overwrite);
        let retry = overwrite
            .settle(&l, conflict(doc("k", 7, Some(2))), Round::First)
            .unwrap();
        assert_eq!(retry.base, 7);
        assert_eq!(overwrite.settle(&l, accepted("k", 8), Round::Retry), None);
        assert_eq!(overwrite.tally.written, 1);
    }

    #[test]
    fn a_tombstone_is_created_again_whatever_the_policy() {
        let mut plan = Plan::new(Existing::Skip);
        let l = line("k", Some(1));
        let retry = plan
            .settle(&l, conflict(doc("k", 4, None)), Round::First)
            .unwrap();
        assert_eq!((retry.base, matches!(retry.op, Op::Set(_))), (4, true));
    }

    #[test]
    fn changes_by_another_client_are_conflicts() {
        let mut plan = Plan::new(Existing::Overwrite);
        let l = line("k", Some(1));
        plan.settle(&l, accepted("k", 1), Round::First);
        // A later line for the key meets a version this import did not write.
        let later = line("k", Some(3));
        assert_eq!(
            plan.settle(&later, conflict(doc("k", 2, Some(2))), Round::First),
            None
        );
        // A retry that conflicts again.
        let other = line("j", Some(1));
        assert_eq!(
            plan.settle(&other, conflict(doc("j", 3, Some(2))), Round::Retry),
            None
        );
        assert_eq!(plan.tally.conflicts, 2);
        assert_eq!(plan.tally.conflict_keys, ["k", "j"]);
    }

    #[test]
    fn deletions_apply_only_to_what_this_import_wrote() {
        let mut plan = Plan::new(Existing::Overwrite);
        let gone = line("k", None);
        assert_eq!(plan.first(&gone), None, "a key this import never wrote");
        plan.settle(&line("k", Some(1)), accepted("k", 1), Round::First);
        let delete = plan.first(&gone).unwrap();
        assert_eq!((delete.base, delete.op), (1, Op::Delete));
        assert_eq!(plan.settle(&gone, accepted("k", 2), Round::First), None);
        assert_eq!(plan.tally.deleted, 1);
        // Already deleted by someone else: nothing to do.
        plan.settle(&line("j", Some(1)), accepted("j", 1), Round::First);
        let gone = line("j", None);
        assert_eq!(
            plan.settle(&gone, conflict(doc("j", 2, None)), Round::First),
            None
        );
        assert_eq!((plan.tally.unchanged, plan.tally.conflicts), (1, 0));
    }
}
