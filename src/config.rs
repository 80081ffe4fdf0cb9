//! Configuration: one [`Config`], loaded from a TOML file, then `ATOMSYNC_*` environment
//! variables, then the command line, each overriding the one before.
//!
//! Unknown keys and wrong types stop start-up with a message naming the file, the line and
//! the key. `config/atomsync.toml` shows every key with a comment.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use atomsync_proto::Limits;
use atomsync_proto::wire::check_group;
use serde::Deserialize;

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
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub bind: String,
    /// The SQLite database file (created when missing).
    pub db: PathBuf,
    /// The state file that remembers which databases were served from `db` and how far
    /// (so that one that went back in time gets a new epoch), and locks it against a
    /// second server. `None`: beside the database, `<db>.state`.
    pub state_file: Option<PathBuf>,
    /// Durability of acknowledged writes.
    pub durability: Durability,
    /// Read connections in the pool (pull, catch-up, health). Writes use one dedicated connection.
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

/// Durations in the config file as people write them. Timeouts take seconds as a number
/// (`30`, `0.5`) or a text (`"30s"`, `"500ms"`); compaction's horizons, where a unit
/// mistaken for another removes data for good, must say their unit (`"30d"`, `"1h"`).
mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    /// What a key may hold: a number of seconds, or a text with units.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Seconds(f64),
        Text(String),
    }

    pub(super) mod timeout {
        use super::*;

        pub(in super::super) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Duration, D::Error> {
            match Written::deserialize(d)? {
                Written::Seconds(seconds) => super::super::seconds(seconds),
                Written::Text(text) => super::super::parse_seconds_or_duration(&text),
            }
            .map_err(serde::de::Error::custom)
        }
    }

    pub(super) mod horizon {
        use super::*;

        pub(in super::super) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Duration, D::Error> {
            let text = String::deserialize(d)?;
            super::super::parse_duration(&text).map_err(serde::de::Error::custom)
        }
    }

    pub(super) mod horizon_option {
        use super::*;

        pub(in super::super) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Duration>, D::Error> {
            super::horizon::deserialize(d).map(Some)
        }
    }
}

/// A number of seconds (fractions allowed) as a `Duration`; the error says what was wrong.
fn seconds(seconds: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("{seconds} is not a number of seconds >= 0"))
}

/// A timeout as people write it: seconds (`"30"`, `"0.5"`) or a duration (`"30s"`,
/// `"500ms"`, `"1m"`); the error says what was expected. For flags and environment
/// variables as for the config file.
pub fn parse_seconds_or_duration(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<f64>() {
        Ok(number) => seconds(number),
        Err(_) => humantime::parse_duration(text.trim()).map_err(|e| {
            format!("{text:?} is neither seconds nor a duration ({e}); write it like 30, 0.5 or \"500ms\"")
        }),
    }
}

/// A duration as people write it (`"30d"`, `"12h"`, `"1h 30m"`, `"45s"`); the error says
/// what was expected.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("{text:?} is not a duration ({e}); write it like \"30d\", \"12h\" or \"90s\"")
    })
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
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_embedded_default() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.server.bind, "127.0.0.1:8090");
        assert_eq!(c.server.db, PathBuf::from("atomsync.db"));
        assert_eq!(c.server.durability, Durability::Full);
        assert!(c.users.is_empty());
        c.validate().unwrap();
    }

    #[test]
    fn the_example_file_is_valid_with_its_users_too() {
        let text = include_str!("../config/atomsync.toml");
        Config::from_toml(text).unwrap().validate().unwrap();
        // Its commented users and admin token, uncommented, are valid as well.
        let users: String = text
            .lines()
            .map(|line| line.strip_prefix("# ").unwrap_or(line))
            .filter(|line| {
                [
                    "[users.",
                    "[admin]",
                    "token = ",
                    "token_sha256 = ",
                    "groups = ",
                    "read = ",
                ]
                .iter()
                .any(|start| line.starts_with(start))
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let c = Config::from_toml(&users).unwrap();
        c.validate().unwrap();
        assert_eq!(c.users.len(), 3);
        assert_eq!(c.admin.token.as_deref(), Some("change-me-too"));
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let err = Config::from_toml("[server]\nbind = \"127.0.0.1:1\"\nbnid = 3\n").unwrap_err();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("bnid"), "{err}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let err = Config::from_toml("[server]\npool_size = \"eight\"\n").unwrap_err();
        assert!(err.contains("line 2") && err.contains("pool_size"), "{err}");
    }

    #[test]
    fn users_are_checked() {
        let c = Config::from_toml(
            "[users.a]\ntoken = \"t\"\ngroups = [\"*\"]\n[users.b]\ntoken = \"t\"\ngroups = []\n",
        )
        .unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("same token"));
        let c = Config::from_toml("[users.a]\ntoken = \"t\"\ngroups = [\"bad group\"]\n").unwrap();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("users.a.groups[0]")
        );
    }

    #[test]
    fn durations_read_as_people_write_them() {
        let c = Config::from_toml(
            "[server]\ngroup_idle_timeout = \"90s\"\n[compaction]\ntombstones_older_than = \"30d\"\nevery = \"1h 30m\"\n",
        )
        .unwrap();
        assert_eq!(c.server.group_idle_timeout, Duration::from_secs(90));
        assert_eq!(
            c.compaction.tombstones_older_than,
            Some(Duration::from_secs(30 * 86400))
        );
        assert_eq!(c.compaction.every, Duration::from_secs(5400));
        c.validate().unwrap();
        let d = Config::default();
        assert_eq!(d.compaction.tombstones_older_than, None, "off by default");
        let err =
            Config::from_toml("[compaction]\ntombstones_older_than = \"a month\"\n").unwrap_err();
        assert!(
            err.contains("tombstones_older_than") && err.contains("30d"),
            "{err}"
        );
    }

    #[test]
    fn tokens_never_reach_debug_output() {
        let c = Config::from_toml(
            "[users.a]\ntoken = \"s3cret\"\ngroups = [\"*\"]\n[admin]\ntoken = \"r00t\"\n",
        )
        .unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("r00t"),
            "{shown}"
        );
    }

    #[test]
    fn the_example_config_is_valid() {
        let c = Config::from_toml(include_str!("../config/atomsync.toml")).unwrap();
        c.validate().unwrap();
        assert!(c.metrics.enabled);
    }

    #[test]
    fn metrics_and_tls_tables() {
        let c = Config::from_toml("").unwrap();
        assert!(c.metrics.enabled && c.server.tls.is_none());
        let c = Config::from_toml(
            "[server.tls]\ncert = \"/etc/a.pem\"\nkey = \"/etc/k.pem\"\n[metrics]\nenabled = false\n",
        )
        .unwrap();
        assert!(!c.metrics.enabled);
        let tls = c.server.tls.unwrap();
        assert_eq!(tls.cert, PathBuf::from("/etc/a.pem"));
        let err = Config::from_toml("[server.tls]\ncert = \"a\"\n").unwrap_err();
        assert!(err.contains("key"), "{err}");
        let err = Config::from_toml("[metrics]\nenable = true\n").unwrap_err();
        assert!(err.contains("enable"), "{err}");
    }

    #[test]
    fn admin_token_is_checked() {
        let c = Config::from_toml("[admin]\ntoken = \"\"\n").unwrap();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("admin.token")
        );
        let c = Config::from_toml(
            "[users.a]\ntoken = \"t\"\ngroups = [\"*\"]\n[admin]\ntoken = \"t\"\n",
        )
        .unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("admin.token") && err.contains("users.a"),
            "{err}"
        );
        let c = Config::from_toml("[admin]\ntoken = \"root\"\n").unwrap();
        c.validate().unwrap();
        assert_eq!(c.admin.token.as_deref(), Some("root"));
        assert!(
            Config::from_toml("[admin]\ntokn = \"x\"\n")
                .unwrap_err()
                .contains("tokn")
        );
        let c = Config::from_toml("[users.a]\ntoken = \"s3cret\"\ngroups = [\"*\"]\n").unwrap();
        assert!(!format!("{c:?}").contains("s3cret"));
        let hash = "ab".repeat(32);
        let c = Config::from_toml(&format!("[users.a]\ntoken_sha256 = \"{hash}\"\n")).unwrap();
        assert!(!format!("{c:?}").contains(&hash));
    }

    #[test]
    fn a_user_has_exactly_one_token_form() {
        let hash = "0123456789abcdefABCDEF".repeat(3);
        let hash = &hash[..64];
        let ok = Config::from_toml(&format!(
            "[users.a]\ntoken_sha256 = \"{hash}\"\nread = [\"reports\"]\n"
        ))
        .unwrap();
        ok.validate().unwrap();
        for (toml, wanted) in [
            (
                "[users.a]\ngroups = []\n".to_owned(),
                "users.a.token or token_sha256: missing",
            ),
            (
                format!("[users.a]\ntoken = \"t\"\ntoken_sha256 = \"{hash}\"\n"),
                "not both",
            ),
            (
                "[users.a]\ntoken_sha256 = \"abc\"\n".to_owned(),
                "users.a.token_sha256: must be 64",
            ),
            (
                format!("[users.a]\ntoken_sha256 = \"{}\"\n", "zz".repeat(32)),
                "64 hexadecimal",
            ),
            (
                "[users.a]\ntoken = \"\"\n".to_owned(),
                "users.a.token: must not be empty",
            ),
            (
                "[users.a]\ntoken = \"t\"\nread = [\"no way\"]\n".to_owned(),
                "users.a.read[0]",
            ),
        ] {
            let err = Config::from_toml(&toml)
                .unwrap()
                .validate()
                .unwrap_err()
                .to_string();
            assert!(err.contains(wanted), "{toml}: {err}");
        }
        // A plain token and the hash of the same token are the same token.
        let same = format!(
            "[users.a]\ntoken = \"abc\"\n[users.b]\ntoken_sha256 = \"{}\"\n",
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let err = Config::from_toml(&same)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("same token"), "{err}");
    }

    #[test]
    fn timeouts_are_positive_seconds() {
        let c = Config::from_toml("[server]\nrequest_timeout = 0.5\nidle_timeout = 3\n").unwrap();
        c.validate().unwrap();
        assert_eq!(c.server.request_timeout, Duration::from_millis(500));
        assert_eq!(c.server.idle_timeout, Duration::from_secs(3));
        let c =
            Config::from_toml("[server]\nrequest_timeout = \"250ms\"\nclose_timeout = \"1m\"\n")
                .unwrap();
        c.validate().unwrap();
        assert_eq!(c.server.request_timeout, Duration::from_millis(250));
        assert_eq!(c.server.close_timeout, Duration::from_secs(60));
        // A horizon must name its unit: 30 could be seconds or days.
        assert!(Config::from_toml("[compaction]\ntombstones_older_than = 30\n").is_err());
        for bad in [
            "request_timeout = 0",
            "ping_interval = -1",
            "close_timeout = 1e9",
            "idle_timeout = \"soon\"",
        ] {
            // Refused when read (not a duration) or when checked (out of range).
            let refused = Config::from_toml(&format!("[server]\n{bad}\n"))
                .and_then(|c| c.validate().map_err(|e| e.to_string()));
            assert!(refused.is_err(), "{bad}");
        }
        let c =
            Config::from_toml("[server]\nallowed_origins = [\"https://app.example/x\"]\n").unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("server.allowed_origins[0]"), "{err}");
    }
}
