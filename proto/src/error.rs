//! Errors of the codecs and of request validation, and the protocol's error codes.

/// A value could not be decoded. `path` names where (`changes[3].value[2]`), empty at the
/// top; see [`CodecError::at`] for its syntax. Displayed as `path: reason`, or just
/// `reason` when the path is empty.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The input ended in the middle of a value.
    #[error("{}input ends in the middle of a value", Where(path))]
    Incomplete {
        /// Where in the value.
        path: String,
    },
    /// The input is not a valid encoding (unknown tag or extension, bad payload, bad UTF-8, ...).
    #[error("{}{reason}", Where(path))]
    Invalid {
        /// Where in the value.
        path: String,
        /// What is wrong, in plain words.
        reason: String,
    },
    /// Containers nest deeper than allowed.
    #[error("{}nesting deeper than {max_depth}", Where(path))]
    TooDeep {
        /// Where in the value.
        path: String,
        /// The limit that was passed.
        max_depth: usize,
    },
}

impl CodecError {
    /// Where in the value the error is (`[3].text`), empty at the top.
    pub fn path(&self) -> &str {
        match self {
            CodecError::Incomplete { path }
            | CodecError::Invalid { path, .. }
            | CodecError::TooDeep { path, .. } => path,
        }
    }

    /// The same error with `prefix` put in front of its path, for a value that sits inside
    /// a larger message: `err.at("changes[3].value")` turns `[2]` into
    /// `changes[3].value[2]` and `tags` into `changes[3].value.tags`.
    ///
    /// Path syntax, shared by both codecs: `[i]` an item of a list or set, `name` (`.name`
    /// after another step) the value under a string key of a map, `{i}` the value of map
    /// entry `i` when its key is not a string, `{key i}` the key of entry `i` itself.
    pub fn at(mut self, prefix: &str) -> CodecError {
        let path = self.path_mut();
        let joint = match path.bytes().next() {
            None | Some(b'[' | b'{') => "",
            Some(_) => ".",
        };
        path.insert_str(0, joint);
        path.insert_str(0, prefix);
        self
    }

    /// The error as a public function returns it: a path that starts with a member name
    /// loses the `.` that joined it to the (absent) step before.
    pub(crate) fn top(mut self) -> CodecError {
        let path = self.path_mut();
        if path.starts_with('.') {
            path.remove(0);
        }
        self
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn incomplete() -> CodecError {
        CodecError::Incomplete {
            path: String::new(),
        }
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn invalid(reason: impl Into<String>) -> CodecError {
        CodecError::Invalid {
            path: String::new(),
            reason: reason.into(),
        }
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn too_deep(max_depth: usize) -> CodecError {
        CodecError::TooDeep {
            path: String::new(),
            max_depth,
        }
    }

    /// The same error one level further out: `seg` is the step from the enclosing
    /// container to the place the error came from. Paths are built only on the way out
    /// of a failure, so a successful decode never formats one.
    #[cold]
    #[inline(never)]
    pub(crate) fn within(mut self, seg: Seg<'_>) -> CodecError {
        let step = match seg {
            Seg::Index(index) => format!("[{index}]"),
            Seg::Key(name) => format!(".{name}"),
            Seg::Entry(index) => format!("{{{index}}}"),
            Seg::EntryKey(index) => format!("{{key {index}}}"),
        };
        self.path_mut().insert_str(0, &step);
        self
    }

    fn path_mut(&mut self) -> &mut String {
        match self {
            CodecError::Incomplete { path }
            | CodecError::Invalid { path, .. }
            | CodecError::TooDeep { path, .. } => path,
        }
    }
}

/// One step of an error path (syntax: see [`CodecError::at`]).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Seg<'a> {
    Index(usize),
    Key(&'a str),
    Entry(usize),
    EntryKey(usize),
}

/// Displays `path: ` before a reason, nothing for the top. A path longer than
/// [`SHOWN_PATH`] bytes (a value 60 levels deep, a key of a kilobyte) shows its start and
/// its end around `…`: an error message stays one readable line, and still says where.
struct Where<'a>(&'a String);

/// The longest path shown whole, in bytes.
const SHOWN_PATH: usize = 120;

impl std::fmt::Display for Where<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = self.0.as_str();
        if path.is_empty() {
            return Ok(());
        }
        if path.len() <= SHOWN_PATH {
            return write!(f, "{path}: ");
        }
        let head = path.floor_char_boundary(SHOWN_PATH * 2 / 3);
        let tail = path.ceil_char_boundary(path.len() - SHOWN_PATH / 3);
        write!(f, "{}…{}: ", &path[..head], &path[tail..])
    }
}

/// The protocol's error codes (PROTOCOL.md section 3), each with its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 400
    BadRequest,
    /// 401
    Unauthorized,
    /// 403
    Forbidden,
    /// 404
    NotFound,
    /// 405
    MethodNotAllowed,
    /// 408
    RequestTimeout,
    /// 413
    PayloadTooLarge,
    /// 415
    UnsupportedMediaType,
    /// 503
    Unavailable,
    /// 500
    Internal,
}

impl ErrorCode {
    /// Every code, in the order of the protocol's table.
    pub const ALL: [ErrorCode; 10] = [
        ErrorCode::BadRequest,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::RequestTimeout,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
    ];

    /// The wire name, e.g. `bad_request`.
    pub fn as_str(self) -> &'static str {
        self.entry().0
    }
    /// The HTTP status that goes with the code.
    pub fn status(self) -> u16 {
        self.entry().1
    }
    /// The code for a wire name; `None` for an unknown one.
    pub fn parse(name: &str) -> Option<ErrorCode> {
        ErrorCode::ALL
            .into_iter()
            .find(|code| code.as_str() == name)
    }

    /// The one table of PROTOCOL.md section 3: wire name and HTTP status of each code.
    fn entry(self) -> (&'static str, u16) {
        match self {
            ErrorCode::BadRequest => ("bad_request", 400),
            ErrorCode::Unauthorized => ("unauthorized", 401),
            ErrorCode::Forbidden => ("forbidden", 403),
            ErrorCode::NotFound => ("not_found", 404),
            ErrorCode::MethodNotAllowed => ("method_not_allowed", 405),
            ErrorCode::RequestTimeout => ("request_timeout", 408),
            ErrorCode::PayloadTooLarge => ("payload_too_large", 413),
            ErrorCode::UnsupportedMediaType => ("unsupported_media_type", 415),
            ErrorCode::Unavailable => ("unavailable", 503),
            ErrorCode::Internal => ("internal", 500),
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request or frame was refused: the code to answer with and a message that says what and where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct WireError {
    /// The protocol code (`bad_request`, `payload_too_large`, ...).
    pub code: ErrorCode,
    /// Plain words, naming the place: `changes[3].key: must be 1..1024 bytes`.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_name_and_status() {
        let table: Vec<(&str, u16)> = ErrorCode::ALL
            .iter()
            .map(|c| (c.as_str(), c.status()))
            .collect();
        assert_eq!(
            table,
            [
                ("bad_request", 400),
                ("unauthorized", 401),
                ("forbidden", 403),
                ("not_found", 404),
                ("method_not_allowed", 405),
                ("request_timeout", 408),
                ("payload_too_large", 413),
                ("unsupported_media_type", 415),
                ("unavailable", 503),
                ("internal", 500),
            ]
        );
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(ErrorCode::parse("teapot"), None);
    }

    #[test]
    fn paths_join_and_display() {
        let err = CodecError::invalid("bad")
            .within(Seg::Index(2))
            .within(Seg::Key("tags"))
            .top();
        assert_eq!(err.path(), "tags[2]");
        assert_eq!(err.to_string(), "tags[2]: bad");
        assert_eq!(
            err.at("changes[3].value").path(),
            "changes[3].value.tags[2]"
        );
        let top = CodecError::incomplete();
        assert_eq!(top.to_string(), "input ends in the middle of a value");
        assert_eq!(
            top.at("body").to_string(),
            "body: input ends in the middle of a value"
        );
        let entry = CodecError::too_deep(64)
            .within(Seg::EntryKey(1))
            .within(Seg::Entry(0));
        assert_eq!(
            entry.at("v").to_string(),
            "v{0}{key 1}: nesting deeper than 64"
        );
    }

    #[test]
    fn long_paths_show_their_start_and_end() {
        let mut deep = CodecError::too_deep(64).within(Seg::Key("léaf"));
        for _ in 0..100 {
            deep = deep.within(Seg::Index(0));
        }
        let shown = deep.clone().at("changes[3].value").to_string();
        assert!(shown.starts_with("changes[3].value[0][0]"), "{shown}");
        assert!(
            shown.ends_with("[0].léaf: nesting deeper than 64"),
            "{shown}"
        );
        assert!(shown.contains('…') && shown.len() < 160, "{shown}");
        // The path itself stays whole for callers that read it.
        assert_eq!(deep.path().len(), 100 * 3 + ".léaf".len());
    }
}
