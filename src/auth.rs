//! Auth (PROTOCOL.md section 5): tokens to users, users to the groups they may read or
//! write, and the origins whose pages may open a WebSocket.
//!
//! With no users configured every group is open. A token is known by its SHA-256 only
//! (`token = "..."` is hashed when the config is read, `token_sha256 = "..."` is taken as
//! it is), so the plain token is never kept. A presented token is hashed and compared with
//! every user's digest in constant time, whatever matches first. Nothing here implements
//! `Debug` with a token or a digest in it.
//!
//! The rules can be replaced while the server runs ([`SharedAuth::replace`], on SIGHUP):
//! an [`Identity`] carries its own user's grants, so a request checked against one
//! version of the rules is never judged by another; WebSocket sessions watch for a new
//! version and check their token and subscriptions again.

use std::collections::HashSet;
use std::sync::Arc;

use atomsync_proto::{ErrorCode, WireError};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::watch;

use crate::config::Config;

/// What a request wants to do with a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Pull or subscribe.
    Read,
    /// Push.
    Write,
}

/// Who a request is from.
#[derive(Clone, PartialEq, Eq)]
pub enum Identity {
    /// Auth is off: everything is allowed.
    Open,
    /// A configured user, with the grants the rules gave it when the token was checked.
    User(Arc<User>),
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Open => f.write_str("Open"),
            Identity::User(user) => write!(f, "User({:?})", user.name),
        }
    }
}

/// One configured user: its name, its token's digest and its grants.
#[derive(PartialEq, Eq)]
pub struct User {
    name: String,
    digest: [u8; 32],
    write: Groups,
    read: Groups,
}

#[derive(PartialEq, Eq)]
enum Groups {
    All,
    Some(HashSet<String>),
}

impl Groups {
    fn new(names: &[String]) -> Groups {
        if names.iter().any(|g| g == "*") {
            Groups::All
        } else {
            Groups::Some(names.iter().cloned().collect())
        }
    }

    fn contains(&self, group: &str) -> bool {
        match self {
            Groups::All => true,
            Groups::Some(set) => set.contains(group),
        }
    }
}

/// The SHA-256 of a token: what the rules keep and compare.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The users, their grants and the allowed origins, read from one configuration.
pub struct Auth {
    users: Vec<Arc<User>>,
    allowed_origins: Vec<String>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.users.iter().map(|u| u.name.as_str()).collect();
        f.debug_struct("Auth")
            .field("users", &names)
            .field("allowed_origins", &self.allowed_origins)
            .finish()
    }
}

impl Auth {
    /// The rules of a configuration. A user whose token is unusable (which
    /// [`Config::validate`] refuses) is left out, never let in.
    pub fn from_config(config: &Config) -> Auth {
        let users = config
            .users
            .iter()
            .filter_map(|(name, u)| {
                let digest = u.token_digest().ok()?;
                Some(Arc::new(User {
                    name: name.clone(),
                    digest,
                    write: Groups::new(&u.groups),
                    read: Groups::new(&u.read),
                }))
            })
            .collect();
        Auth {
            users,
            allowed_origins: config
                .server
                .allowed_origins
                .iter()
                .map(|o| o.to_ascii_lowercase())
                .collect(),
        }
    }

    /// True when users are configured.
    pub fn is_on(&self) -> bool {
        !self.users.is_empty()
    }

    /// The origins, besides the server's own, whose pages may open a WebSocket (lower case).
    pub fn allowed_origins(&self) -> &[String] {
        &self.allowed_origins
    }

    /// The identity a token proves: 401 when auth is on and the token is missing or unknown.
    pub fn authenticate(&self, token: Option<&str>) -> Result<Identity, WireError> {
        if !self.is_on() {
            return Ok(Identity::Open);
        }
        let Some(token) = token else {
            return Err(WireError {
                code: ErrorCode::Unauthorized,
                message: "token: missing; send `Authorization: Bearer TOKEN` or `?token=TOKEN`"
                    .into(),
            });
        };
        self.recognize(&digest(token)).ok_or_else(|| WireError {
            code: ErrorCode::Unauthorized,
            message: "token: unknown".into(),
        })
    }

    /// The identity whose token has this digest under these rules: how a session that
    /// authenticated under older rules is checked again. `None` when auth is on and no
    /// user has it any more.
    pub fn recognize(&self, token_digest: &[u8; 32]) -> Option<Identity> {
        if !self.is_on() {
            return Some(Identity::Open);
        }
        // Every digest is compared, so the time taken says nothing about which matched.
        let mut found = None;
        for user in &self.users {
            if bool::from(user.digest.ct_eq(token_digest)) {
                found = Some(user.clone());
            }
        }
        found.map(Identity::User)
    }

    /// 403 unless `identity` may `access` `group`: reads need `groups` or `read`, writes
    /// need `groups`.
    pub fn authorize(identity: &Identity, group: &str, access: Access) -> Result<(), WireError> {
        let Identity::User(user) = identity else {
            return Ok(());
        };
        if user.write.contains(group) {
            return Ok(());
        }
        let readable = user.read.contains(group);
        let message = match (access, readable) {
            (Access::Read, true) => return Ok(()),
            (Access::Write, true) => {
                format!("group: user {:?} may only read group {group:?}", user.name)
            }
            _ => format!("group: user {:?} may not use group {group:?}", user.name),
        };
        Err(WireError {
            code: ErrorCode::Forbidden,
            message,
        })
    }
}

impl Identity {
    /// The digest of the token this identity was proven by; `None` when auth is off.
    pub fn token_digest(&self) -> Option<&[u8; 32]> {
        match self {
            Identity::Open => None,
            Identity::User(user) => Some(&user.digest),
        }
    }
}

/// The rules in force, replaceable while the server runs, and a signal for whoever holds
/// an identity checked under older ones.
///
/// A `watch` channel: reading the current rules is a clone of an `Arc` under a read lock,
/// and each WebSocket session keeps a receiver to learn of a replacement without polling.
pub struct SharedAuth {
    rules: watch::Sender<Arc<Auth>>,
}

impl std::fmt::Debug for SharedAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.current().fmt(f)
    }
}

impl SharedAuth {
    /// Starts with `auth`.
    pub fn new(auth: Auth) -> SharedAuth {
        SharedAuth {
            rules: watch::Sender::new(Arc::new(auth)),
        }
    }

    /// The rules in force now.
    pub fn current(&self) -> Arc<Auth> {
        self.rules.borrow().clone()
    }

    /// Puts `auth` in force and tells every watcher.
    pub fn replace(&self, auth: Auth) {
        self.rules.send_replace(Arc::new(auth));
    }

    /// A receiver that wakes when the rules are replaced.
    pub fn watch(&self) -> watch::Receiver<Arc<Auth>> {
        self.rules.subscribe()
    }

    /// [`Auth::authenticate`] under the rules in force.
    pub fn authenticate(&self, token: Option<&str>) -> Result<Identity, WireError> {
        self.current().authenticate(token)
    }

    /// [`Auth::authorize`]: the identity carries its grants, so no lookup is needed.
    pub fn authorize(
        &self,
        identity: &Identity,
        group: &str,
        access: Access,
    ) -> Result<(), WireError> {
        Auth::authorize(identity, group, access)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(toml: &str) -> Auth {
        Auth::from_config(&Config::from_toml(toml).unwrap())
    }

    #[test]
    fn off_without_users() {
        let a = auth("");
        assert!(!a.is_on());
        assert_eq!(a.authenticate(None).unwrap(), Identity::Open);
        Auth::authorize(&Identity::Open, "any", Access::Write).unwrap();
    }

    #[test]
    fn tokens_and_groups() {
        let a = auth(
            "[users.alice]\ntoken = \"abc\"\ngroups = [\"todo\"]\n[users.root]\ntoken = \"r\"\ngroups = [\"*\"]\n",
        );
        assert_eq!(
            a.authenticate(None).unwrap_err().code,
            ErrorCode::Unauthorized
        );
        for wrong in ["abd", "ab", "abcd", ""] {
            assert_eq!(
                a.authenticate(Some(wrong)).unwrap_err().code,
                ErrorCode::Unauthorized
            );
        }
        let alice = a.authenticate(Some("abc")).unwrap();
        Auth::authorize(&alice, "todo", Access::Write).unwrap();
        let err = Auth::authorize(&alice, "settings", Access::Read).unwrap_err();
        assert_eq!(err.code, ErrorCode::Forbidden);
        assert!(!err.message.contains("abc"));
        let root = a.authenticate(Some("r")).unwrap();
        Auth::authorize(&root, "settings", Access::Write).unwrap();
        assert!(!format!("{alice:?} {a:?}").contains("abc"));
    }

    #[test]
    fn read_grants_allow_reads_only() {
        let a = auth(
            "[users.viewer]\ntoken = \"v\"\ngroups = [\"todo\"]\nread = [\"reports\"]\n[users.auditor]\ntoken = \"x\"\nread = [\"*\"]\n",
        );
        let viewer = a.authenticate(Some("v")).unwrap();
        Auth::authorize(&viewer, "todo", Access::Write).unwrap();
        Auth::authorize(&viewer, "reports", Access::Read).unwrap();
        let err = Auth::authorize(&viewer, "reports", Access::Write).unwrap_err();
        assert_eq!(err.code, ErrorCode::Forbidden);
        assert!(err.message.contains("may only read"), "{}", err.message);
        let err = Auth::authorize(&viewer, "other", Access::Read).unwrap_err();
        assert!(err.message.contains("may not use"), "{}", err.message);
        let auditor = a.authenticate(Some("x")).unwrap();
        Auth::authorize(&auditor, "anything", Access::Read).unwrap();
        assert!(Auth::authorize(&auditor, "anything", Access::Write).is_err());
    }

    #[test]
    fn a_hashed_token_matches_its_plain_form() {
        // sha256("abc")
        let a = auth(
            "[users.h]\ntoken_sha256 = \"BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD\"\ngroups = [\"*\"]\n",
        );
        assert!(matches!(a.authenticate(Some("abc")), Ok(Identity::User(_))));
        assert!(a.authenticate(Some("abd")).is_err());
        // The digest itself is not a token.
        assert!(
            a.authenticate(Some(
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
            ))
            .is_err()
        );
    }

    #[test]
    fn a_replaced_rule_set_recognizes_or_forgets_a_session() {
        let shared = SharedAuth::new(auth("[users.a]\ntoken = \"t\"\ngroups = [\"g\"]\n"));
        let mut watcher = shared.watch();
        let a = shared.authenticate(Some("t")).unwrap();
        let token = *a.token_digest().unwrap();
        shared.replace(auth("[users.a]\ntoken = \"t\"\nread = [\"g\"]\n"));
        assert!(watcher.has_changed().unwrap());
        let again = watcher.borrow_and_update().recognize(&token).unwrap();
        assert!(Auth::authorize(&again, "g", Access::Write).is_err());
        // The old identity keeps the grants it was checked under.
        Auth::authorize(&a, "g", Access::Write).unwrap();
        shared.replace(auth("[users.b]\ntoken = \"u\"\ngroups = [\"g\"]\n"));
        assert!(shared.current().recognize(&token).is_none());
    }
}
