//! `pull` and `export`: a group's documents, paged from the server until the end.
//!
//! - `pull GROUP [--since N]` prints the group's changes after cursor N as the server
//!   sends them: one document per line, ascending by `seq`, tombstones included.
//! - `export GROUP` writes the group's documents as `{"key": K, "value": V}` lines, the
//!   input of `import`. A document changed while the export runs comes again later in the
//!   file, at its newer state (a later line wins); one deleted meanwhile is followed by
//!   `{"key": K, "deleted": true}`. Tombstones of documents not in the file are left out.
//!
//! Values are transcoded from the server's MessagePack to tagged JSON without loss: every
//! type of PROTOCOL.md section 2 reads back as itself (`import` does).

use std::collections::HashSet;

use atomsync_proto::wire::PullResponse;
use atomsync_proto::{Value, json};

use crate::error::CliError;
use crate::output::{self, Notes, Output};
use crate::progress;
use crate::server::Server;

/// Documents in the first pull page: small, because the documents' size is not known yet
/// (100 values at the default 1 MiB limit are 100 MiB).
const FIRST_PAGE: u32 = 100;
/// The most documents a page asks for: the protocol's largest.
const MAX_PAGE: u32 = 10_000;
/// About how many bytes of documents a page should hold. Later pages ask for as many
/// documents as fit, by the size of those read so far, so a page stays near this size
/// even on a server that bounds a page by count alone.
const PAGE_BYTES: u64 = 4 << 20;

/// Pages through a group from a cursor to the end, checking that the pages fit together.
struct Pager<'a> {
    server: &'a Server,
    group: &'a str,
    since: u64,
    /// Later pages of a pull that started from 0 (or was reset) say so (section 8).
    full: bool,
    epoch: Option<String>,
    /// The compaction floor of the first page.
    floor: u64,
    done: bool,
    notes: Notes,
    /// Documents to ask for next.
    limit: u32,
    /// Documents read and their bytes (keys and values), to size the next page.
    read: (u64, u64),
}

impl<'a> Pager<'a> {
    fn new(server: &'a Server, group: &'a str, since: u64, notes: Notes) -> Pager<'a> {
        Pager {
            server,
            group,
            since,
            full: false,
            epoch: None,
            floor: 0,
            done: false,
            notes,
            limit: FIRST_PAGE,
            read: (0, 0),
        }
    }

    /// The next page, or `None` after the last.
    async fn next(&mut self) -> Result<Option<PullResponse>, CliError> {
        if self.done {
            return Ok(None);
        }
        let first = self.epoch.is_none();
        let page = self
            .server
            .pull(self.group, self.since, self.limit, self.full)
            .await?;
        self.size_next(&page);
        match &self.epoch {
            None => self.epoch = Some(page.epoch.clone()),
            Some(epoch) if *epoch != page.epoch => {
                return Err(CliError::Protocol(format!(
                    "the server's database changed during the pull (epoch {epoch} became {}); run it again",
                    page.epoch
                )));
            }
            Some(_) => {}
        }
        if first {
            self.floor = page.floor;
        } else if self.full && page.floor > self.floor {
            // A tombstone this pull has not reached may be gone (PROTOCOL.md section 8).
            return Err(CliError::Protocol(
                "the group was compacted during the pull; run it again".into(),
            ));
        }
        if page.reset {
            if !first {
                return Err(CliError::Protocol(
                    "the group was compacted during the pull; run it again".into(),
                ));
            }
            self.notes.say(format!(
                "atomsync: cursor {} is below the group's compaction floor: this pull starts again from 0",
                self.since
            ));
        }
        if first && (self.since == 0 || page.reset) {
            self.full = true;
        }
        if page.more && page.seq <= self.since && !page.reset {
            return Err(CliError::Protocol(format!(
                "a pull page with more to come did not advance the cursor ({})",
                page.seq
            )));
        }
        self.since = page.seq;
        self.done = !page.more;
        Ok(Some(page))
    }

    /// Sizes the next page by the documents read so far.
    fn size_next(&mut self, page: &PullResponse) {
        let bytes: u64 = page
            .changes
            .iter()
            .map(|doc| (doc.key.len() + doc.value.as_ref().map_or(0, |v| v.len()) + 16) as u64)
            .sum();
        self.read = (self.read.0 + page.changes.len() as u64, self.read.1 + bytes);
        if let Some(each) = self.read.1.checked_div(self.read.0) {
            let fits = PAGE_BYTES / each.max(1);
            self.limit = u32::try_from(fits).unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
        }
    }

    /// The cursor after the pages read so far.
    fn cursor(&self) -> u64 {
        self.since
    }
}

/// `pull GROUP [--since N]`.
pub async fn pull(server: &Server, group: &str, since: u64, notes: Notes) -> Result<(), CliError> {
    let mut pager = Pager::new(server, group, since, notes);
    let mut out = Output::buffered();
    let mut count = 0u64;
    while let Some(page) = pager.next().await? {
        for doc in &page.changes {
            out.doc(doc)?;
        }
        count += page.changes.len() as u64;
    }
    out.flush()?;
    notes.say(format!(
        "atomsync: pulled {} of {group}; cursor {} (pass it as --since to continue)",
        output::count(count, "change"),
        pager.cursor()
    ));
    Ok(())
}

/// `export GROUP`.
pub async fn export(server: &Server, group: &str, notes: Notes) -> Result<(), CliError> {
    let started = std::time::Instant::now();
    let mut pager = Pager::new(server, group, 0, notes);
    let mut out = Output::buffered();
    let bar = progress::counter(&notes, "documents");
    // Keys already written: a later line for one of them is a change made during the export.
    let mut written: HashSet<String> = HashSet::new();
    let (mut again, mut deleted) = (0u64, 0u64);
    let mut line = Vec::new();
    while let Some(page) = pager.next().await? {
        for doc in page.changes {
            line.clear();
            line.extend_from_slice(b"{\"key\":");
            json::encode_into(&Value::Str(doc.key.clone()), &mut line);
            match &doc.value {
                Some(value) => {
                    line.extend_from_slice(b",\"value\":");
                    value.write_json(&mut line);
                    if !written.insert(doc.key) {
                        again += 1;
                    }
                }
                None if written.remove(&doc.key) => {
                    line.extend_from_slice(b",\"deleted\":true");
                    deleted += 1;
                }
                None => continue,
            }
            line.push(b'}');
            out.line(&line)?;
            bar.inc(1);
        }
    }
    out.flush()?;
    bar.finish_and_clear();
    let mut summary = format!(
        "atomsync: exported {} of {group} up to seq {} in {:.1} s",
        output::count(written.len() as u64, "document"),
        pager.cursor(),
        started.elapsed().as_secs_f64()
    );
    if again + deleted > 0 {
        summary.push_str(&format!(
            "; {again} changed and {deleted} deleted during the export (later lines win)"
        ));
    }
    notes.say(summary);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use atomsync_proto::Packed;
    use atomsync_proto::wire::Doc;

    fn page(docs: usize, value_bytes: usize) -> PullResponse {
        let value = Packed::from_value(&Value::Bytes(vec![0; value_bytes]));
        PullResponse {
            group: "g".into(),
            epoch: "e".into(),
            changes: (0..docs)
                .map(|i| Doc {
                    key: format!("k{i}"),
                    version: 1,
                    seq: i as u64 + 1,
                    value: Some(value.clone()),
                })
                .collect(),
            seq: docs as u64,
            more: true,
            reset: false,
            floor: 0,
        }
    }

    #[test]
    fn pages_are_sized_by_the_documents_read() {
        let server = Server::new("127.0.0.1:1", None, None, None).unwrap();
        let mut pager = Pager::new(&server, "g", 0, Notes::new(true));
        assert_eq!(pager.limit, FIRST_PAGE);
        pager.size_next(&page(100, 1 << 20));
        assert_eq!(pager.limit, 3, "4 MiB of 1 MiB documents");
        let mut pager = Pager::new(&server, "g", 0, Notes::new(true));
        pager.size_next(&page(100, 100));
        assert_eq!(pager.limit, MAX_PAGE);
        pager.size_next(&page(0, 0));
        assert_eq!(pager.limit, MAX_PAGE, "an empty page changes nothing");
    }
}
