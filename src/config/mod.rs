//! Configuration: one [`Config`], loaded from a TOML file, then `ATOMSYNC_*` environment
//! variables, then the command line, each overriding the one before.
//!
//! Unknown keys, wrong types and unusable values (an address that does not parse, a
//! timeout of 0, a TLS file that cannot be read) stop start-up with a message naming the
//! file, the line and the key ([`Config::load`]). `config/atomsync.toml` shows every key
//! with a comment.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use atomsync_proto::Limits;
use atomsync_proto::wire::check_group;
use serde::Deserialize;

mod database;
mod duration;
mod locate;

pub use self::database::Database;
use self::database::redact_url;
pub use self::duration::{parse_duration, parse_seconds_or_duration};

/// How hard a commit is pushed to disk before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// `synchronous=FULL`: the WAL is fsynced before every acknowledgement; survives a power cut.
    Full,
    /// `synchronous=NORMAL`: survives a crash of the process, not of the machine.
    Normal,
}

/// The whole configuration of a server.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[server]`: where to listen, where the data lives, limits.
    #[serde(default)]
    pub server: ServerConfig,
    /// `[users.NAME]`: when empty, auth is off and every group is open.
    #[serde(default)]
    pub users: BTreeMap<String, UserConfig>,
    /// `[admin]`: the operator's token for the admin API (`/admin/...`).
    #[serde(default)]
    pub admin: AdminConfig,
    /// `[compaction]`: removing old tombstones (PROTOCOL.md section 8); off by default.
    #[serde(default)]
    pub compaction: CompactionConfig,
    /// `[metrics]`: whether the server counts what it does (`GET /metrics`).
    #[serde(default)]
    pub metrics: MetricsConfig,
}

/// The `[metrics]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Count requests, commits, connections... and serve them at `GET /metrics` (behind
    /// the admin token when one is configured). On by default; off, `/metrics` is 404.
    pub enabled: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { enabled: true }
    }
}

/// `[server.tls]`: serve HTTPS (and `wss://`) with this certificate chain and key.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file: the server's certificate, then any intermediates.
    pub cert: PathBuf,
    /// PEM file: its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The `[server]` table.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub bind: String,
    /// The database: an SQLite file (created when missing), or a PostgreSQL URL
    /// (`postgres://user@host/dbname`, the database must exist); see [`ServerConfig::database`].
    pub db: PathBuf,
    /// The state file that remembers which databases were served from `db` and how far
    /// (so that one that went back in time gets a new epoch), and locks it against a
    /// second server. `None`: beside the database, `<db>.state`.
    pub state_file: Option<PathBuf>,
    /// Durability of acknowledged writes.
    pub durability: Durability,
    /// Connections in the pool. SQLite: read connections (pull, catch-up, health), writes
    /// using one dedicated connection. PostgreSQL: every connection but the one that listens
    /// for other instances' commits, reads and writes alike.
    pub pool_size: u32,
    /// Largest request body (HTTP) or frame (WebSocket).
    pub max_body_bytes: usize,
    /// Largest value, measured in its MessagePack encoding.
    pub max_value_bytes: usize,
    /// Deepest nesting of containers in one value.
    pub max_depth: usize,
    /// Most changes in one push.
    pub max_changes: usize,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// How long a request's head and body may take to arrive, from the moment the
    /// connection is ready for it (PROTOCOL.md section 4, "Slow and idle connections").
    /// Like every timeout key: seconds (`30`, `0.5`) or a duration (`"30s"`, `"500ms"`).
    #[serde(with = "duration::timeout")]
    pub request_timeout: Duration,
    /// Open connections past which a new one is refused at once; 0 derives it from the
    /// process's open-file limit.
    pub max_connections: usize,
    /// Time between WebSocket pings.
    #[serde(with = "duration::timeout")]
    pub ping_interval: Duration,
    /// Silence (not even a pong) after which a WebSocket is closed.
    #[serde(with = "duration::timeout")]
    pub idle_timeout: Duration,
    /// How long a connection the server closes may take to go: past it its socket is
    /// aborted, whatever the peer does.
    #[serde(with = "duration::timeout")]
    pub close_timeout: Duration,
    /// Origins (`https://app.example`) whose pages may open a WebSocket besides the
    /// server's own (PROTOCOL.md section 5).
    pub allowed_origins: Vec<String>,
    /// How long a group with no subscriber keeps its actor before it is stopped (started
    /// again on the next subscription): seconds or a duration, e.g. `"60s"`.
    #[serde(with = "duration::timeout")]
    pub group_idle_timeout: Duration,
    /// `[server.tls]`: when set, the server speaks HTTPS only.
    pub tls: Option<TlsConfig>,
}

impl std::fmt::Debug for ServerConfig {
    // Hand-written so that a PostgreSQL password in `db` never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("bind", &self.bind)
            .field("db", &self.database().redacted())
            .field("durability", &self.durability)
            .field("pool_size", &self.pool_size)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_value_bytes", &self.max_value_bytes)
            .field("max_depth", &self.max_depth)
            .field("max_changes", &self.max_changes)
            .field("workers", &self.workers)
            .field("state_file", &self.state_file)
            .field("request_timeout", &self.request_timeout)
            .field("max_connections", &self.max_connections)
            .field("ping_interval", &self.ping_interval)
            .field("idle_timeout", &self.idle_timeout)
            .field("close_timeout", &self.close_timeout)
            .field("allowed_origins", &self.allowed_origins)
            .field("group_idle_timeout", &self.group_idle_timeout)
            .finish()
    }
}

impl ServerConfig {
    /// Which database [`db`](ServerConfig::db) names.
    pub fn database(&self) -> Database<'_> {
        Database::of(&self.db)
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        let limits = Limits::default();
        ServerConfig {
            bind: "127.0.0.1:8090".into(),
            db: PathBuf::from("atomsync.db"),
            durability: Durability::Full,
            pool_size: 8,
            max_body_bytes: 8 << 20,
            max_value_bytes: limits.max_value_bytes,
            max_depth: limits.max_depth,
            max_changes: limits.max_changes,
            workers: 0,
            request_timeout: Duration::from_secs(30),
            max_connections: 0,
            ping_interval: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(45),
            close_timeout: Duration::from_secs(2),
            allowed_origins: Vec::new(),
            state_file: None,
            group_idle_timeout: Duration::from_secs(60),
            tls: None,
        }
    }
}

/// The `[compaction]` table: tombstones older than a horizon are removed on a schedule,
/// and each group's floor rises (PROTOCOL.md section 8). Off unless
/// `tombstones_older_than` is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompactionConfig {
    /// Remove tombstones written longer ago than this, e.g. `"30d"`; `None`: never. A
    /// client offline for longer pulls its groups again from 0 when it returns.
    #[serde(with = "duration::horizon_option")]
    pub tombstones_older_than: Option<Duration>,
    /// How often to look for such tombstones, e.g. `"1h"` (and once at start).
    #[serde(with = "duration::horizon")]
    pub every: Duration,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        CompactionConfig {
            tombstones_older_than: None,
            every: Duration::from_secs(3600),
        }
    }
}

/// One `[users.NAME]` table: exactly one of `token` and `token_sha256`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The bearer token. Never logged.
    #[serde(default)]
    pub token: Option<String>,
    /// The SHA-256 of the bearer token, 64 hex digits, so that the file holds no secret.
    #[serde(default)]
    pub token_sha256: Option<String>,
    /// The groups this user may pull, subscribe to and push to; `"*"` means every group.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The groups this user may only pull and subscribe to; `"*"` means every group.
    #[serde(default)]
    pub read: Vec<String>,
}

impl std::fmt::Debug for UserConfig {
    // Hand-written so that a token never reaches a log through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserConfig")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field(
                "token_sha256",
                &self.token_sha256.as_ref().map(|_| "<redacted>"),
            )
            .field("groups", &self.groups)
            .field("read", &self.read)
            .finish()
    }
}

/// The `[admin]` table: who may use the admin API (`GET /admin/groups`, ...). Without a
/// token the admin API is off (every admin request gets 403), whatever `[users]` says.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// The admin bearer token. Never logged; must differ from every user's token.
    pub token: Option<String>,
}

impl std::fmt::Debug for AdminConfig {
    // Hand-written so that the token never reaches a log through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}
impl UserConfig {
    /// The SHA-256 of the user's token, from whichever key holds it; `Err` names what is
    /// wrong (`token`, `token_sha256`), without the secret.
    pub fn token_digest(&self) -> Result<[u8; 32], String> {
        match (&self.token, &self.token_sha256) {
            (Some(token), None) if token.is_empty() => Err("token: must not be empty".into()),
            (Some(token), None) => Ok(crate::auth::digest(token)),
            (None, Some(hex)) => parse_sha256(hex)
                .ok_or_else(|| "token_sha256: must be 64 hexadecimal digits".to_owned()),
            (Some(_), Some(_)) => Err("give either token or token_sha256, not both".into()),
            (None, None) => Err("token or token_sha256: missing".into()),
        }
    }
}

/// 64 hex digits (either case) as 32 bytes.
fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    let digits = hex.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let high = char::from(*pair.first()?).to_digit(16)?;
        let low = char::from(*pair.get(1)?).to_digit(16)?;
        *byte = u8::try_from(high * 16 + low).ok()?;
    }
    Some(out)
}
/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read the config file: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration (the message names line and key).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, with line, column and key.
        message: String,
    },
    /// A value is well-typed but unusable.
    #[error("config: {0}")]
    Invalid(String),
    /// A value of the file is well-typed but unusable: where it is, and why.
    #[error("{path}: line {line}: {key}: {message}")]
    InvalidInFile {
        /// The file.
        path: PathBuf,
        /// The key's line, from 1.
        line: usize,
        /// The key, e.g. `server.pool_size` or `users.alice.groups[1]`.
        key: String,
        /// What is wrong with its value.
        message: String,
    },
}

impl Config {
    /// Reads and parses a TOML file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    /// Reads, parses and validates a TOML file (TLS files included) as it stands, before
    /// any environment variable or flag is put on top: every error names the file, and the
    /// line and key of a value that is unusable. What [`Config::validate`] then finds on
    /// the merged configuration comes from the environment or the command line.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let config = Config::from_file(path)?;
        let checked = config.validate().and_then(|()| match &config.server.tls {
            Some(tls) => crate::tls::server_config(tls).map(drop),
            None => Ok(()),
        });
        match checked {
            Err(ConfigError::Invalid(text)) => Err(config.place(path, text)),
            other => other.map(|()| config),
        }
    }

    /// `text` (`key: message`) as an error at the key's line of the file `path`.
    fn place(&self, path: &Path, text: String) -> ConfigError {
        let file = std::fs::read_to_string(path).unwrap_or_default();
        let located = text.split_once(": ").and_then(|(key, message)| {
            locate::line_of(&file, key).map(|line| (line, key, message))
        });
        match located {
            Some((line, key, message)) => ConfigError::InvalidInFile {
                path: path.to_owned(),
                line,
                key: key.to_owned(),
                message: message.to_owned(),
            },
            None => ConfigError::Invalid(format!("{}: {text}", path.display())),
        }
    }

    /// Parses TOML text; the error is toml's message (line, column, key).
    pub fn from_toml(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
    }

    /// The value limits requests are checked against.
    pub fn limits(&self) -> Limits {
        Limits {
            max_value_bytes: self.server.max_value_bytes,
            max_depth: self.server.max_depth,
            max_changes: self.server.max_changes,
        }
    }

    /// Checks what types alone cannot: an address that parses, positive limits and
    /// timeouts, valid origins and group names, one non-empty token per user, unique.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        s.bind.parse::<SocketAddr>().map_err(|e| {
            ConfigError::Invalid(format!("server.bind: {:?} is not an address: {e}", s.bind))
        })?;
        for (name, value) in [
            ("pool_size", s.pool_size as usize),
            ("max_body_bytes", s.max_body_bytes),
            ("max_value_bytes", s.max_value_bytes),
            ("max_depth", s.max_depth),
            ("max_changes", s.max_changes),
            (
                "group_idle_timeout",
                s.group_idle_timeout.as_millis() as usize,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid(format!(
                    "server.{name}: must be at least 1"
                )));
            }
        }
        if let Database::Postgres(url) = s.database() {
            // The driver's own parser, so that what passes here is what connects; its
            // message never repeats the password.
            url.parse::<tokio_postgres::Config>().map_err(|e| {
                ConfigError::Invalid(format!(
                    "server.db: {} is not a PostgreSQL URL: {e}",
                    redact_url(url)
                ))
            })?;
        }
        for (name, timeout) in [
            ("request_timeout", s.request_timeout),
            ("ping_interval", s.ping_interval),
            ("idle_timeout", s.idle_timeout),
            ("close_timeout", s.close_timeout),
            ("group_idle_timeout", s.group_idle_timeout),
        ] {
            // A day at most: past that a timeout is a mistake, and `Duration` arithmetic
            // stays far from overflow.
            if timeout.is_zero() || timeout > Duration::from_secs(86_400) {
                return Err(ConfigError::Invalid(format!(
                    "server.{name}: must be above 0 and at most a day (86400 seconds)"
                )));
            }
        }
        for (i, origin) in s.allowed_origins.iter().enumerate() {
            crate::http::guard::check_origin_entry(origin)
                .map_err(|e| ConfigError::Invalid(format!("server.allowed_origins[{i}]: {e}")))?;
        }
        if self.compaction.every.is_zero() {
            return Err(ConfigError::Invalid(
                "compaction.every: must be longer than 0s".into(),
            ));
        }
        let mut tokens = BTreeMap::new();
        for (user, u) in &self.users {
            let digest = u
                .token_digest()
                .map_err(|e| ConfigError::Invalid(format!("users.{user}.{e}")))?;
            if let Some(other) = tokens.insert(digest, user) {
                return Err(ConfigError::Invalid(format!(
                    "users.{user}: the same token as users.{other}"
                )));
            }
            for (key, groups) in [("groups", &u.groups), ("read", &u.read)] {
                for (i, group) in groups.iter().enumerate() {
                    if group != "*" {
                        check_group(group).map_err(|e| {
                            ConfigError::Invalid(format!("users.{user}.{key}[{i}]: {e}"))
                        })?;
                    }
                }
            }
        }
        if let Some(admin) = &self.admin.token {
            if admin.is_empty() {
                return Err(ConfigError::Invalid(
                    "admin.token: must not be empty (leave it out to turn the admin API off)"
                        .into(),
                ));
            }
            // One token, one identity: a user's token must never also open the admin API.
            if let Some(user) = tokens.get(&crate::auth::digest(admin)) {
                return Err(ConfigError::Invalid(format!(
                    "admin.token: the same token as users.{user}; give the admin its own"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
