//! The config's loading, layering and refusals, tested on files and environments made
//! by each test.

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
    let text = include_str!("../../config/atomsync.toml");
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
    let err = Config::from_toml("[compaction]\ntombstones_older_than = \"a month\"\n").unwrap_err();
    assert!(
        err.contains("tombstones_older_than") && err.contains("30d"),
        "{err}"
    );
}

#[test]
fn db_is_a_file_or_a_postgres_url() {
    let c = Config::from_toml("[server]\ndb = \"data/a.db\"\n").unwrap();
    assert_eq!(
        c.server.database(),
        Database::Sqlite(Path::new("data/a.db"))
    );
    let c = Config::from_toml("[server]\ndb = \"postgres://u:pw@h:5433/d\"\n").unwrap();
    assert_eq!(
        c.server.database(),
        Database::Postgres("postgres://u:pw@h:5433/d")
    );
    c.validate().unwrap();
    let c = Config::from_toml("[server]\ndb = \"postgresql://h/d?port=x\"\n").unwrap();
    let err = c.validate().unwrap_err().to_string();
    assert!(err.contains("server.db"), "{err}");
}

#[test]
fn a_postgres_password_is_never_shown() {
    for (url, shown) in [
        ("postgres://u:s3cret@h/d", "postgres://u:***@h/d"),
        (
            "postgres://u@h:1/d?password=s3cret&x=1",
            "postgres://u@h:1/d?password=***&x=1",
        ),
        ("postgresql://u:s3cret@h", "postgresql://u:***@h"),
        ("postgres://h/d", "postgres://h/d"),
    ] {
        assert_eq!(Database::Postgres(url).redacted(), shown);
    }
    let c = Config::from_toml("[server]\ndb = \"postgres://u:s3cret@h/d?port=x\"\n").unwrap();
    let err = c.validate().unwrap_err().to_string();
    assert!(!err.contains("s3cret"), "{err}");
    assert!(!format!("{c:?}").contains("s3cret"));
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
    let c = Config::from_toml(include_str!("../../config/atomsync.toml")).unwrap();
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
    let c =
        Config::from_toml("[users.a]\ntoken = \"t\"\ngroups = [\"*\"]\n[admin]\ntoken = \"t\"\n")
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
    let c = Config::from_toml("[server]\nrequest_timeout = \"250ms\"\nclose_timeout = \"1m\"\n")
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
    let c = Config::from_toml("[server]\nallowed_origins = [\"https://app.example/x\"]\n").unwrap();
    let err = c.validate().unwrap_err().to_string();
    assert!(err.contains("server.allowed_origins[0]"), "{err}");
}

#[test]
fn every_unusable_value_of_a_file_names_the_file_its_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("atomsync.toml");
    let header = "# the first line\n[server]\ndb = \"x.db\"\n";
    for (body, line, key) in [
        ("bind = \"nonsense\"\n", 4, "server.bind"),
        ("pool_size = 0\n", 4, "server.pool_size"),
        ("max_depth = 0\n", 4, "server.max_depth"),
        ("request_timeout = 0\n", 4, "server.request_timeout"),
        ("idle_timeout = \"2d\"\n", 4, "server.idle_timeout"),
        (
            "allowed_origins = [\n  \"https://ok\",\n  \"nope\",\n]\n",
            6,
            "server.allowed_origins[1]",
        ),
        ("\n[compaction]\nevery = \"0s\"\n", 6, "compaction.every"),
        ("\n[users.a]\ntoken = \"\"\n", 6, "users.a.token"),
        (
            "\n[users.a]\ngroups = []\n",
            5,
            "users.a.token or token_sha256",
        ),
        (
            "\n[users.a]\ntoken = \"t\"\ngroups = [\"ok\", \"bad group\"]\n",
            7,
            "users.a.groups[1]",
        ),
        (
            "\n[users.a]\ntoken = \"t\"\n[users.b]\ntoken = \"t\"\n",
            7,
            "users.b",
        ),
        ("\n[admin]\ntoken = \"\"\n", 6, "admin.token"),
        (
            "\n[server.tls]\ncert = \"/nonexistent/c.pem\"\nkey = \"/nonexistent/k.pem\"\n",
            6,
            "server.tls.cert",
        ),
    ] {
        std::fs::write(&path, format!("{header}{body}")).unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        let want = format!("{}: line {line}: {key}: ", path.display());
        assert!(
            err.starts_with(&want),
            "{body:?}: {err:?} is not at {want:?}"
        );
    }
    std::fs::write(&path, header).unwrap();
    assert!(Config::load(&path).is_ok());
}
