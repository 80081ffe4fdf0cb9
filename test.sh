#!/usr/bin/env bash
# Runs every Atomsync test on this machine, installing first whatever the tests need and
# the machine lacks: PostgreSQL (Debian's package) for the PostgreSQL backend and the
# scale-out tests, Chromium (Debian's package) for the browser tests, the npm packages of
# client-js/ and client-cljs/ (npm ci; nbb runs the ClojureScript). Then: formatting,
# clippy, the Rust tests (unit, codec, actor, end-to-end against the real server binary,
# the benchmark's smoke run), the backend-agnostic ones again on PostgreSQL, the browser
# client's type check (tsc over its JSDoc), its Node tests and its end-to-end tests in
# headless Chromium, and the ClojureScript client's tests (nbb, against the real server
# binary and the Rust client).
#
# The PostgreSQL tests start throwaway clusters of their own (initdb in a temporary folder,
# on a free loopback port, as the postgres user when run as root), which stop and vanish
# when the test process exits, whether it passed or not (tests/support/postgres.rs).
#
#   ./test.sh            everything
#   ./test.sh --no-browser   skip the Chromium tests (and the Chromium install)
set -euo pipefail
cd "$(dirname "$0")"

browser=1
[ "${1:-}" = "--no-browser" ] && browser=0

step() { printf '\n== %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
}

have_postgres() {
  [ -n "${ATOMSYNC_TEST_POSTGRES:-}" ] || [ -n "${ATOMSYNC_PG_BIN:-}" ] ||
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null
}

if ! have_postgres; then
  step "installing PostgreSQL (Debian package)"
  # The tests make their own clusters: Debian's default one would only sit on port 5432.
  as_root mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" |
    as_root tee /etc/postgresql-common/createcluster.d/no-main-cluster.conf >/dev/null
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq postgresql >/dev/null
fi

if [ "$browser" = 1 ] && ! command -v chromium >/dev/null; then
  step "installing Chromium (Debian package)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium >/dev/null
fi

step "npm ci (client-js)"
(cd client-js && npm ci --no-audit --no-fund --loglevel=error)

step "npm ci (client-cljs)"
(cd client-cljs && npm ci --no-audit --no-fund --loglevel=error)

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "cargo build (binaries used by the end-to-end tests)"
cargo build --workspace --bins --examples --quiet

step "cargo test"
cargo test --workspace --quiet 2>&1 | tee /tmp/atomsync-cargo-test.log

step "cargo test on PostgreSQL (the server's backend-agnostic tests again)"
# Unit, actor, session and end-to-end tests with every database on PostgreSQL; those that
# only PostgreSQL has ran above already.
ATOMSYNC_TEST_BACKEND=postgres cargo test -p atomsync-server --lib --test integration --quiet \
  -- --skip storage::postgres:: --skip scale:: 2>&1 | tee -a /tmp/atomsync-cargo-test.log
cargo_summary=$(grep -E '^test result:' /tmp/atomsync-cargo-test.log | awk '{p+=$4; f+=$6} END {print p" passed, "f" failed"}')

step "client-js type check (tsc --noEmit --checkJs)"
(cd client-js && npm run --silent typecheck)

step "client-js unit tests (node --test)"
(cd client-js && npm run --silent test:unit) 2>&1 | tee /tmp/atomsync-node-test.log

if [ "$browser" = 1 ]; then
  step "client-js end-to-end tests (headless Chromium)"
  (cd client-js && ATOMSYNC_SERVER_BIN="$PWD/../target/debug/atomsync-server" npm run --silent test:e2e) 2>&1 |
    tee -a /tmp/atomsync-node-test.log
fi

step "client-cljs tests (nbb, against the real server and the Rust client)"
# Node 20 has its WebSocket behind a flag (22 and later have it on); the tests need it.
ws_flags=$(node -e 'process.stdout.write(typeof WebSocket === "undefined" ? "--experimental-websocket --disable-warning=ExperimentalWarning" : "")')
(cd client-cljs && NODE_OPTIONS="$ws_flags" ATOMSYNC_SERVER_BIN="$PWD/../target/debug/atomsync-server" npm run --silent test) 2>&1 |
  tee /tmp/atomsync-cljs-test.log

step "done"
node_summary=$(awk '/^# pass /{p+=$3} /^# fail /{f+=$3} END {print p" passed, "f" failed"}' /tmp/atomsync-node-test.log)
cljs_summary=$(awk '/^# pass /{p+=$3} /^# fail /{f+=$3} END {print p" passed, "f" failed"}' /tmp/atomsync-cljs-test.log)
echo "cargo: $cargo_summary"
echo "node: $node_summary"
echo "cljs: $cljs_summary"
echo "$cargo_summary $node_summary $cljs_summary" | awk '{print "total: " $1+$5+$9 " passed, " $3+$7+$11 " failed"}'
