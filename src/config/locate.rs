//! Where a key is in a config file: the line a validation error points at.
//!
//! Types are checked by serde while the file is parsed, and toml's message names the line;
//! what validation finds later (an address that does not parse, a timeout of 0, a group
//! name with a space) is found on the parsed values, which have lost their place. This
//! finds it again from the key's path, on toml's spanned document.

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The 1-based line of `key` (`server.pool_size`, `server.allowed_origins[2]`,
/// `users.alice.groups[0]`) in the TOML `text`: of its deepest part found there (its
/// table when the key itself is not written); `None` when not even its table is.
pub fn line_of(text: &str, key: &str) -> Option<usize> {
    let document = DeTable::parse(text).ok()?;
    let mut table = document.get_ref();
    let mut found = None;
    let mut parts = segments(key).into_iter().peekable();
    while let Some(part) = parts.next() {
        let Segment::Name(name) = part else {
            return found;
        };
        let Some((name_span, value)) = table
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == name)
            .map(|(k, v)| (k.span(), v))
        else {
            return found;
        };
        found = Some(line_at(text, name_span.start));
        let mut value: &Spanned<DeValue<'_>> = value;
        while let Some(Segment::Index(i)) = parts.peek() {
            let DeValue::Array(items) = value.get_ref() else {
                return found;
            };
            let Some(item) = items.get(*i) else {
                return found;
            };
            found = Some(line_at(text, item.span().start));
            value = item;
            parts.next();
        }
        match value.get_ref() {
            DeValue::Table(inner) => table = inner,
            _ => return found,
        }
    }
    found
}

enum Segment<'k> {
    Name(&'k str),
    Index(usize),
}

/// `a.b[2].c` as `a`, `b`, `2`, `c`. Anything after a space (`users.bob.token or
/// token_sha256`) is prose, not key.
fn segments(key: &str) -> Vec<Segment<'_>> {
    let key = key.split(' ').next().unwrap_or_default();
    let mut out = Vec::new();
    for part in key.split('.') {
        let mut pieces = part.split('[');
        if let Some(name) = pieces.next().filter(|n| !n.is_empty()) {
            out.push(Segment::Name(name));
        }
        for index in pieces {
            match index.trim_end_matches(']').parse() {
                Ok(i) => out.push(Segment::Index(i)),
                Err(_) => return out,
            }
        }
    }
    out
}

fn line_at(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(0, |before| before.matches('\n').count())
        + 1
}

#[cfg(test)]
mod tests {
    use super::line_of;

    const FILE: &str = "# a comment\n\
        [server]\n\
        bind = \"x\"\n\
        allowed_origins = [\n  \"https://a\",\n  \"ftp\",\n]\n\
        \n\
        [users.alice]\n\
        token = \"t\"\n\
        groups = [\"a\", \"b c\"]\n\
        [server.tls]\n\
        cert = \"c.pem\"\n";

    #[test]
    fn keys_are_found_on_their_lines() {
        for (key, line) in [
            ("server.bind", Some(3)),
            ("server.allowed_origins[1]", Some(6)),
            ("server.allowed_origins[9]", Some(4)),
            ("users.alice.groups[1]", Some(11)),
            ("users.alice.token or token_sha256", Some(10)),
            ("users.alice", Some(9)),
            ("server.tls.cert", Some(13)),
            ("server.pool_size", Some(2)),
            ("admin.token", None),
        ] {
            assert_eq!(line_of(FILE, key), line, "{key}");
        }
    }
}
