//! The messages of the operator's endpoints, beside the sync contract: the admin API
//! (`GET /admin/groups`, `GET /admin/groups/{g}`, `GET /admin/groups/{g}/docs`) and the
//! one-document read (`GET /sync/doc`). Both encodings, written by the server and read
//! by the `atomsync` command line (and, later, the inspector page).
//!
//! Readers follow the rest of `wire`: unknown members are ignored so that a newer server
//! can add some, and the known ones are typed strictly, with errors naming the path.

use super::read::{Fields, Place, RESPONSE_MAX_DEPTH, decode_message, doc as read_doc};
use super::write::doc as write_doc;
use super::writer::Writer;
use super::{Doc, Encoding};
use crate::{Packed, Value, WireError};

/// One group as the admin API describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    /// The group's name.
    pub name: String,
    /// Its sequence: the `seq` of its latest accepted write.
    pub seq: u64,
    /// The highest `seq` among removed tombstones (0: none removed).
    pub floor: u64,
    /// Live documents (not tombstones).
    pub documents: u64,
    /// Tombstones kept.
    pub tombstones: u64,
    /// WebSocket subscriptions open on this server right now.
    pub subscribers: u64,
}

/// `GET /admin/groups`: one page of groups in name order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupsPage {
    /// The groups, ascending by name (byte order).
    pub groups: Vec<GroupInfo>,
    /// The name to pass as `after` for the next page; `None` on the last page.
    pub next: Option<String>,
}

/// `GET /admin/groups/{g}/docs`: one page of a group's documents in key order.
#[derive(Debug, Clone, PartialEq)]
pub struct DocsPage {
    /// The group.
    pub group: String,
    /// The documents, ascending by key (byte order of the UTF-8 key).
    pub docs: Vec<Doc>,
    /// The key to pass as `after` for the next page; `None` on the last page.
    pub next: Option<String>,
}

/// `GET /sync/doc`: one document at its latest state.
#[derive(Debug, Clone, PartialEq)]
pub struct DocAnswer {
    /// The group.
    pub group: String,
    /// The database's epoch.
    pub epoch: String,
    /// The document (a tombstone has no value); `None` when the key was never written.
    pub doc: Option<Doc>,
}

fn group_info(w: &mut Writer, group: &GroupInfo) {
    w.map(6);
    w.key("name");
    w.str(&group.name);
    w.key("seq");
    w.uint(group.seq);
    w.key("floor");
    w.uint(group.floor);
    w.key("documents");
    w.uint(group.documents);
    w.key("tombstones");
    w.uint(group.tombstones);
    w.key("subscribers");
    w.uint(group.subscribers);
    w.end();
}

fn opt_str(w: &mut Writer, text: Option<&str>) {
    match text {
        Some(text) => w.str(text),
        None => w.nil(),
    }
}

fn docs_capacity(docs: &[Doc]) -> usize {
    docs.iter()
        .map(|doc| 48 + doc.key.len() + doc.value.as_ref().map_or(0, Packed::len))
        .sum::<usize>()
        + 96
}

impl GroupInfo {
    /// Encodes one group's summary (`GET /admin/groups/{g}`).
    pub fn encode(&self, encoding: Encoding) -> Vec<u8> {
        let mut w = Writer::new(encoding, 160 + self.name.len());
        group_info(&mut w, self);
        w.finish()
    }

    /// Decodes one group's summary.
    pub fn decode(bytes: &[u8], encoding: Encoding) -> Result<GroupInfo, WireError> {
        let (message, _) = decode_message(bytes, encoding, RESPONSE_MAX_DEPTH, "body")?;
        read_group(&Fields::top(&message, "body")?)
    }
}

fn read_group(fields: &Fields<'_>) -> Result<GroupInfo, WireError> {
    Ok(GroupInfo {
        name: fields.string("name")?.to_owned(),
        seq: fields.uint("seq")?,
        floor: fields.uint("floor")?,
        documents: fields.uint("documents")?,
        tombstones: fields.uint("tombstones")?,
        subscribers: fields.uint("subscribers")?,
    })
}

/// `next`: a string, or null / absent on the last page.
fn read_next(fields: &Fields<'_>) -> Result<Option<String>, WireError> {
    match fields.get("next")? {
        None | Some(Value::Nil) => Ok(None),
        Some(Value::Str(text)) => Ok(Some(text.clone())),
        Some(_) => Err(fields.fail("next", "must be a string or null")),
    }
}

impl GroupsPage {
    /// Encodes `{"groups": [GROUP, ...], "next": NAME | null}`.
    pub fn encode(&self, encoding: Encoding) -> Vec<u8> {
        let capacity = self
            .groups
            .iter()
            .map(|g| 160 + g.name.len())
            .sum::<usize>()
            + 300;
        let mut w = Writer::new(encoding, capacity);
        w.map(2);
        w.key("groups");
        w.list(self.groups.len());
        for group in &self.groups {
            group_info(&mut w, group);
        }
        w.end();
        w.key("next");
        opt_str(&mut w, self.next.as_deref());
        w.end();
        w.finish()
    }

    /// Decodes a page of groups.
    pub fn decode(bytes: &[u8], encoding: Encoding) -> Result<GroupsPage, WireError> {
        let (message, _) = decode_message(bytes, encoding, RESPONSE_MAX_DEPTH, "body")?;
        let fields = Fields::top(&message, "body")?;
        let groups = fields
            .list("groups")?
            .iter()
            .enumerate()
            .map(|(index, item)| read_group(&Fields::nested(item, Place::item("groups", index))?))
            .collect::<Result<_, _>>()?;
        Ok(GroupsPage {
            groups,
            next: read_next(&fields)?,
        })
    }
}

impl DocsPage {
    /// Encodes `{"group": G, "docs": [DOC, ...], "next": KEY | null}`.
    pub fn encode(&self, encoding: Encoding) -> Vec<u8> {
        let mut w = Writer::new(encoding, docs_capacity(&self.docs));
        w.map(3);
        w.key("group");
        w.str(&self.group);
        w.key("docs");
        w.list(self.docs.len());
        for each in &self.docs {
            write_doc(&mut w, each);
        }
        w.end();
        w.key("next");
        opt_str(&mut w, self.next.as_deref());
        w.end();
        w.finish()
    }

    /// Decodes a page of documents.
    pub fn decode(bytes: &[u8], encoding: Encoding) -> Result<DocsPage, WireError> {
        let (message, slots) = decode_message(bytes, encoding, RESPONSE_MAX_DEPTH, "body")?;
        let fields = Fields::top(&message, "body")?;
        let docs = fields
            .list("docs")?
            .iter()
            .enumerate()
            .map(|(index, item)| read_doc(item, Place::item("docs", index), &slots))
            .collect::<Result<_, _>>()?;
        Ok(DocsPage {
            group: fields.string("group")?.to_owned(),
            docs,
            next: read_next(&fields)?,
        })
    }
}

impl DocAnswer {
    /// Encodes `{"group": G, "epoch": E, "doc": DOC | null}`.
    pub fn encode(&self, encoding: Encoding) -> Vec<u8> {
        let mut w = Writer::new(
            encoding,
            docs_capacity(self.doc.as_slice()) + self.group.len(),
        );
        w.map(3);
        w.key("group");
        w.str(&self.group);
        w.key("epoch");
        w.str(&self.epoch);
        w.key("doc");
        match &self.doc {
            Some(doc) => write_doc(&mut w, doc),
            None => w.nil(),
        }
        w.end();
        w.finish()
    }

    /// Decodes the answer to a one-document read.
    pub fn decode(bytes: &[u8], encoding: Encoding) -> Result<DocAnswer, WireError> {
        let (message, slots) = decode_message(bytes, encoding, RESPONSE_MAX_DEPTH, "body")?;
        let fields = Fields::top(&message, "body")?;
        let doc = match fields.get("doc")? {
            None | Some(Value::Nil) => None,
            Some(doc) => Some(read_doc(doc, fields.place_of("doc"), &slots)?),
        };
        Ok(DocAnswer {
            group: fields.string("group")?.to_owned(),
            epoch: fields.string("epoch")?.to_owned(),
            doc,
        })
    }
}

/// Encodes one document alone, `{"key", "version", "seq", "value"}` or, for a tombstone,
/// `{"key", "version", "seq", "deleted": true}`: a line of `atomsync pull` or `watch`.
pub fn encode_doc(doc: &Doc, encoding: Encoding) -> Vec<u8> {
    let mut w = Writer::new(encoding, docs_capacity(std::slice::from_ref(doc)));
    write_doc(&mut w, doc);
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(key: &str, value: Option<Value>) -> Doc {
        Doc {
            key: key.into(),
            version: 3,
            seq: 9,
            value: value.as_ref().map(Packed::from_value),
        }
    }

    #[test]
    fn every_message_round_trips_in_both_encodings() {
        let info = GroupInfo {
            name: "todo".into(),
            seq: 12,
            floor: 0,
            documents: 10,
            tombstones: 2,
            subscribers: 1,
        };
        let groups = GroupsPage {
            groups: vec![info.clone()],
            next: Some("todo".into()),
        };
        let page = DocsPage {
            group: "todo".into(),
            docs: vec![
                doc(
                    "a",
                    Some(Value::Map(vec![(
                        Value::from("tags"),
                        Value::Set(vec![Value::Kw("x".into())]),
                    )])),
                ),
                doc("b", None),
            ],
            next: None,
        };
        let answer = DocAnswer {
            group: "todo".into(),
            epoch: "e".into(),
            doc: Some(doc("a", Some(Value::List(vec![1.into(), 2.5.into()])))),
        };
        let missing = DocAnswer {
            doc: None,
            ..answer.clone()
        };
        for enc in [Encoding::Json, Encoding::MsgPack] {
            assert_eq!(GroupInfo::decode(&info.encode(enc), enc).unwrap(), info);
            assert_eq!(
                GroupsPage::decode(&groups.encode(enc), enc).unwrap(),
                groups
            );
            assert_eq!(DocsPage::decode(&page.encode(enc), enc).unwrap(), page);
            assert_eq!(DocAnswer::decode(&answer.encode(enc), enc).unwrap(), answer);
            assert_eq!(
                DocAnswer::decode(&missing.encode(enc), enc).unwrap(),
                missing
            );
        }
    }

    #[test]
    fn json_shapes_are_the_documented_ones() {
        let groups = GroupsPage {
            groups: vec![GroupInfo {
                name: "todo".into(),
                seq: 12,
                floor: 0,
                documents: 10,
                tombstones: 2,
                subscribers: 1,
            }],
            next: None,
        };
        assert_eq!(
            String::from_utf8(groups.encode(Encoding::Json)).unwrap(),
            r#"{"groups":[{"name":"todo","seq":12,"floor":0,"documents":10,"tombstones":2,"subscribers":1}],"next":null}"#
        );
        let line = encode_doc(&doc("k", None), Encoding::Json);
        assert_eq!(
            String::from_utf8(line).unwrap(),
            r#"{"key":"k","version":3,"seq":9,"deleted":true}"#
        );
    }

    #[test]
    fn bad_answers_name_the_path() {
        let err = GroupsPage::decode(br#"{"groups":[{"name":"a"}],"next":null}"#, Encoding::Json)
            .unwrap_err();
        assert_eq!(err.message, "groups[0].seq: must be an integer >= 0");
        let err =
            DocAnswer::decode(br#"{"group":"g","epoch":"e","doc":7}"#, Encoding::Json).unwrap_err();
        assert_eq!(err.message, "doc: must be a map");
    }
}
