//! Which database `[server] db` names, and how to name it where people read it.

use std::path::Path;

/// The database `[server] db` names: a PostgreSQL URL when it starts with `postgres://` or
/// `postgresql://`, else the path of an SQLite file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Database<'a> {
    /// An SQLite database file, created when missing.
    Sqlite(&'a Path),
    /// A PostgreSQL connection URL (`postgres://user:password@host:port/dbname?...`).
    Postgres(&'a str),
}

impl<'a> Database<'a> {
    /// Which database `db` names: a PostgreSQL URL when it starts with `postgres://` or
    /// `postgresql://`, else an SQLite file.
    pub fn of(db: &'a Path) -> Database<'a> {
        match db.to_str() {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Database::Postgres(url)
            }
            _ => Database::Sqlite(db),
        }
    }

    /// How to name the database in logs and errors: the path, or the URL without its
    /// password.
    pub fn redacted(&self) -> String {
        match self {
            Database::Sqlite(path) => path.display().to_string(),
            Database::Postgres(url) => redact_url(url),
        }
    }
}

/// `url` with the password of its user part and any `password=` parameter replaced by
/// `***`, so that it can be logged.
pub(super) fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (authority_end, _) = rest
        .char_indices()
        .find(|&(_, c)| c == '/' || c == '?')
        .unwrap_or((rest.len(), ' '));
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{name}:***@{host}"),
            None => format!("{user}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}
