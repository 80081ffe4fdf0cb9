//! The browser client, served by the server itself: `GET /atomsync.js` (the ES module users
//! import) and the modules it imports, `GET /atomsync/*.js`; `GET /` or `GET /demo/` (the
//! todo demo); `GET /sw.js`, the demo's service worker, which keeps the page and the
//! modules available for a reload while the server is down. All are embedded in the binary
//! at build time ([`ASSETS`]), so a single executable is the whole deployment.
//!
//! Caching: `Cache-Control: no-cache` with a strong `ETag`, so browsers revalidate on every
//! load (cheap: 304) and never run a stale client against a newer server.
//!
//! `GET /inspect` is the inspector page and `/inspect/*.js` its modules (docs/protocol.md
//! section 13.3).
//!
//! With auth on these need a token like every path but `/healthz` (PROTOCOL.md section 5),
//! a user's or the admin's; only the inspector page, which holds no data and asks for the
//! admin token itself, is served without one.
//! A browser cannot put a header on a module import, so the token comes in the query
//! (`/atomsync.js?token=...`), and a relative import inside that module would lose it
//! (`./atomsync/atom.js` resolves without the query). So a module asked for with a
//! `token` parameter is served with that parameter added to each of its relative import
//! specifiers: the browser still resolves them natively, and each import carries the token
//! it needs. The body then depends on the URL alone, which is also what browsers key their
//! cache by, so the file's `ETag` still names it.

use actix_web::http::header;
use actix_web::web::Data;
use actix_web::{HttpRequest, HttpResponse, web};

use super::AppState;
use super::error::ApiError;
use super::request::{identify, param, query_pairs, response_encoding};

const JS: &str = "text/javascript; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

/// One embedded file.
struct Asset {
    /// Where it is served.
    path: &'static str,
    body: &'static str,
    content_type: &'static str,
    /// An ES module whose relative imports carry the request's token on.
    module: bool,
    /// Served without a token: a page that holds no data and asks for its token itself.
    open: bool,
}

/// A module of the browser client: `module!("atom")` is `client-js/atomsync/atom.js` at
/// `/atomsync/atom.js`.
macro_rules! module {
    ($name:literal) => {
        Asset {
            path: concat!("/atomsync/", $name, ".js"),
            body: include_str!(concat!("../../client-js/atomsync/", $name, ".js")),
            content_type: JS,
            module: true,
            open: false,
        }
    };
}

const DEMO_HTML: &str = include_str!("../../client-js/demo/index.html");
const INSPECT_HTML: &str = include_str!("../../client-js/inspect/index.html");

/// Every embedded file. A module added under `client-js/atomsync/` must be listed here
/// (a test checks it).
const ASSETS: &[Asset] = &[
    Asset {
        path: "/atomsync.js",
        body: include_str!("../../client-js/atomsync.js"),
        content_type: JS,
        module: true,
        open: false,
    },
    module!("atom"),
    module!("codec"),
    module!("connection"),
    module!("decode"),
    module!("encode"),
    module!("errors"),
    module!("http"),
    module!("inst"),
    module!("link"),
    module!("memory"),
    module!("pusher"),
    module!("records"),
    module!("storage"),
    module!("swap"),
    module!("syncer"),
    module!("tabs"),
    module!("timing"),
    module!("values"),
    // The inspector (`/inspect`): its page asks for the admin token, then imports its
    // modules with it.
    Asset {
        path: "/inspect",
        body: INSPECT_HTML,
        content_type: HTML,
        module: false,
        open: true,
    },
    Asset {
        path: "/inspect/inspect.js",
        body: include_str!("../../client-js/inspect/inspect.js"),
        content_type: JS,
        module: true,
        open: false,
    },
    Asset {
        path: "/inspect/render.js",
        body: include_str!("../../client-js/inspect/render.js"),
        content_type: JS,
        module: true,
        open: false,
    },
    Asset {
        path: "/sw.js",
        body: include_str!("../../client-js/demo/sw.js"),
        content_type: JS,
        module: false,
        open: false,
    },
    Asset {
        path: "/",
        body: DEMO_HTML,
        content_type: HTML,
        module: false,
        open: false,
    },
    Asset {
        path: "/demo/",
        body: DEMO_HTML,
        content_type: HTML,
        module: false,
        open: false,
    },
    Asset {
        path: "/demo",
        body: DEMO_HTML,
        content_type: HTML,
        module: false,
        open: false,
    },
];

/// An asset ready to serve: its ETag computed once, and for a module where its relative
/// import specifiers end.
struct Served {
    body: &'static str,
    content_type: &'static str,
    etag: String,
    import_ends: Vec<usize>,
    open: bool,
}

/// Registers the asset routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    for asset in ASSETS {
        let served = Data::new(Served {
            body: asset.body,
            content_type: asset.content_type,
            etag: format!("\"{:016x}\"", fnv1a(asset.body.as_bytes())),
            import_ends: if asset.module {
                relative_import_ends(asset.body)
            } else {
                Vec::new()
            },
            open: asset.open,
        });
        cfg.service(
            web::resource(asset.path)
                .app_data(served)
                .wrap(actix_web::middleware::Compress::default())
                .route(web::get().to(
                    |req: HttpRequest, state: Data<AppState>, served: Data<Served>| async move {
                        // The admin token loads them too: the inspector page imports them.
                        if !served.open && !super::admin::is_admin(&req, &state) {
                            identify(&req, &state.auth, response_encoding(&req))?;
                        }
                        Ok::<_, ApiError>(respond(&req, &served))
                    },
                ))
                .default_service(web::to(super::method_not_allowed("GET"))),
        );
    }
}

fn respond(req: &HttpRequest, served: &Served) -> HttpResponse {
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .any(|t| t.trim() == served.etag || t.trim() == "*")
        });
    let mut response = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::ETAG, served.etag.clone()));
    if fresh {
        return response.finish();
    }
    let pairs = query_pairs(req).unwrap_or_default();
    match param(&pairs, "token") {
        Some(token) if !served.import_ends.is_empty() => {
            let query = format!("?token={}", percent_encode(token));
            response.content_type(served.content_type).body(with_query(
                served.body,
                &served.import_ends,
                &query,
            ))
        }
        _ => response.content_type(served.content_type).body(served.body),
    }
}

/// The byte offsets of the closing quotes of `body`'s relative import specifiers: in the
/// static `import`/`export ... from "./x.js"` (or `"../x.js"`) declarations, each on a line
/// that starts with `import`, `export` or the `}` closing a multi-line list. Comments and
/// strings elsewhere are not looked at.
fn relative_import_ends(body: &str) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut offset = 0;
    for line in body.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if ["import", "export", "}"]
            .iter()
            .any(|start| trimmed.starts_with(start))
        {
            for opening in ["\"./", "\"../"] {
                if let Some(at) = line.find(opening) {
                    let specifier = at + 1;
                    if let Some(len) = line[specifier..].find('"') {
                        ends.push(offset + specifier + len);
                    }
                }
            }
        }
        offset += line.len();
    }
    ends.sort_unstable();
    ends
}

/// `body` with `query` inserted at each of `ends`.
fn with_query(body: &str, ends: &[usize], query: &str) -> String {
    let mut out = String::with_capacity(body.len() + ends.len() * query.len());
    let mut from = 0;
    for &end in ends {
        out.push_str(&body[from..end]);
        out.push_str(query);
        from = end;
    }
    out.push_str(&body[from..]);
    out
}

/// Percent-encodes everything but RFC 3986's unreserved characters: the token lands inside
/// a JavaScript string literal, so nothing of it may be read as code or end the string.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// FNV-1a: a stable content hash for the ETag (not for security).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specifier ending at `end` in `body`.
    fn specifier(body: &str, end: usize) -> &str {
        let start = body[..end].rfind('"').unwrap() + 1;
        &body[start..end]
    }

    /// `./x.js` or `../x.js` from the module at `path`, as a served path.
    fn resolve(path: &str, spec: &str) -> String {
        let mut dir: Vec<&str> = path.split('/').collect();
        dir.pop();
        for part in spec.split('/') {
            match part {
                "." => {}
                ".." => {
                    dir.pop();
                }
                name => dir.push(name),
            }
        }
        dir.join("/")
    }

    #[test]
    fn every_relative_import_names_an_embedded_module() {
        let paths: Vec<&str> = ASSETS.iter().map(|a| a.path).collect();
        let mut imports = 0;
        for asset in ASSETS.iter().filter(|a| a.module) {
            for &end in &relative_import_ends(asset.body) {
                let target = resolve(asset.path, specifier(asset.body, end));
                assert!(
                    paths.contains(&target.as_str()),
                    "{} imports {target}, which is not embedded",
                    asset.path
                );
                imports += 1;
            }
        }
        assert!(imports > 20, "only {imports} imports found");
    }

    #[test]
    fn every_client_module_on_disk_is_embedded_and_cached_by_the_demo_worker() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("client-js/atomsync");
        let worker = ASSETS.iter().find(|a| a.path == "/sw.js").unwrap().body;
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let path = format!("/atomsync/{name}");
            assert!(
                ASSETS.iter().any(|a| a.path == path && a.module),
                "{path} is not in ASSETS"
            );
            assert!(
                worker.contains(&format!("\"{path}\"")),
                "the demo's worker does not cache {path}"
            );
        }
    }

    #[test]
    fn a_token_is_carried_on_to_every_relative_import_and_nowhere_else() {
        let body = "// import x from \"./not.js\";\n\
                    import { a } from \"./a.js\";\n\
                    export { b } from \"../b.js\";\n\
                    import {\n  c,\n} from \"./c.js\";\n\
                    import \"./d.js\";\n\
                    const s = \"./e.js\";\n";
        let ends = relative_import_ends(body);
        let query = format!("?token={}", percent_encode("a b\"&é"));
        assert_eq!(query, "?token=a%20b%22%26%C3%A9");
        let out = with_query(body, &ends, &query);
        for spec in ["./a.js", "../b.js", "./c.js", "./d.js"] {
            assert!(out.contains(&format!("\"{spec}{query}\"")), "{spec}: {out}");
        }
        assert!(out.contains("\"./not.js\";"), "{out}");
        assert!(out.contains("\"./e.js\";"), "{out}");
    }
}
