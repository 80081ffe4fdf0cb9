//! Auth (PROTOCOL.md section 5): tokens to users, users to the groups they may use.
//!
//! With no users configured every group is open. Tokens are compared in constant time
//! (every configured token is compared, whatever matches), and never logged: the token
//! is not kept in any type that implements `Debug` with its contents.

use std::collections::HashSet;

use atomsync_proto::{ErrorCode, WireError};
use subtle::ConstantTimeEq;

use crate::config::Config;

/// Who a request is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// Auth is off: everything is allowed.
    Open,
    /// The user at this index of the configuration.
    User(usize),
}

struct User {
    name: String,
    token: Vec<u8>,
    groups: Groups,
}

enum Groups {
    All,
    Some(HashSet<String>),
}

/// The users and their groups, read from the configuration.
pub struct Auth {
    users: Vec<User>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.users.iter().map(|u| u.name.as_str()).collect();
        f.debug_struct("Auth").field("users", &names).finish()
    }
}

impl Auth {
    /// The users of a (validated) configuration.
    pub fn from_config(config: &Config) -> Auth {
        let users = config
            .users
            .iter()
            .map(|(name, u)| User {
                name: name.clone(),
                token: u.token.as_bytes().to_vec(),
                groups: if u.groups.iter().any(|g| g == "*") {
                    Groups::All
                } else {
                    Groups::Some(u.groups.iter().cloned().collect())
                },
            })
            .collect();
        Auth { users }
    }

    /// True when users are configured.
    pub fn is_on(&self) -> bool {
        !self.users.is_empty()
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
        let mut found = None;
        for (i, user) in self.users.iter().enumerate() {
            if bool::from(user.token.ct_eq(token.as_bytes())) {
                found = Some(i);
            }
        }
        found.map(Identity::User).ok_or_else(|| WireError {
            code: ErrorCode::Unauthorized,
            message: "token: unknown".into(),
        })
    }

    /// 403 unless `identity` may use `group`.
    pub fn authorize(&self, identity: Identity, group: &str) -> Result<(), WireError> {
        let Identity::User(i) = identity else {
            return Ok(());
        };
        let Some(user) = self.users.get(i) else {
            return Err(WireError {
                code: ErrorCode::Forbidden,
                message: "unknown user".into(),
            });
        };
        match &user.groups {
            Groups::All => Ok(()),
            Groups::Some(set) if set.contains(group) => Ok(()),
            Groups::Some(_) => Err(WireError {
                code: ErrorCode::Forbidden,
                message: format!("group: user {:?} may not use group {group:?}", user.name),
            }),
        }
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
        a.authorize(Identity::Open, "any").unwrap();
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
        assert_eq!(
            a.authenticate(Some("abd")).unwrap_err().code,
            ErrorCode::Unauthorized
        );
        assert_eq!(
            a.authenticate(Some("ab")).unwrap_err().code,
            ErrorCode::Unauthorized
        );
        let alice = a.authenticate(Some("abc")).unwrap();
        a.authorize(alice, "todo").unwrap();
        let err = a.authorize(alice, "settings").unwrap_err();
        assert_eq!(err.code, ErrorCode::Forbidden);
        assert!(!err.message.contains("abc"));
        let root = a.authenticate(Some("r")).unwrap();
        a.authorize(root, "settings").unwrap();
    }
}
