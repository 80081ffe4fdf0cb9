//! Configuration: one [`Config`], loaded from a TOML file, then `ATOMSYNC_*` environment
//! variables, then the command line, each overriding the one before.
//!
//! Unknown keys and wrong types stop start-up with a message naming the file, the line and
//! the key. `config/atomsync.toml` shows every key with a comment.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file: the server's certificate, then any intermediates.
    pub cert: PathBuf,
    /// PEM file: its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The `[server]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub bind: String,
    /// The SQLite database file (created when missing).
    pub db: PathBuf,
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
            tls: None,
        }
    }
}

/// One `[users.NAME]` table.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The bearer token. Never logged.
    pub token: String,
    /// The groups this user may use; `"*"` means every group.
    pub groups: Vec<String>,
}

impl std::fmt::Debug for UserConfig {
    // Hand-written so that a token never reaches a log through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserConfig")
            .field("token", &"<redacted>")
            .field("groups", &self.groups)
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

    /// Checks what types alone cannot: an address that parses, positive limits, valid
    /// group names, unique non-empty tokens.
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
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid(format!(
                    "server.{name}: must be at least 1"
                )));
            }
        }
        let mut tokens = BTreeMap::new();
        for (user, u) in &self.users {
            if u.token.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "users.{user}.token: must not be empty"
                )));
            }
            if let Some(other) = tokens.insert(u.token.as_str(), user) {
                return Err(ConfigError::Invalid(format!(
                    "users.{user}.token: the same token as users.{other}"
                )));
            }
            for (i, group) in u.groups.iter().enumerate() {
                if group != "*" {
                    check_group(group).map_err(|e| {
                        ConfigError::Invalid(format!("users.{user}.groups[{i}]: {e}"))
                    })?;
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
            if let Some(user) = tokens.get(admin.as_str()) {
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
    }
}
