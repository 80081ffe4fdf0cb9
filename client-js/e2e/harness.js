// The end-to-end harness: the real atomsync-server binary on a free loopback port with a
// database in a temporary directory (stopped and started again on the same port and
// database when a test needs the server down), and headless Debian Chromium driven by
// playwright-core. Nothing is downloaded: the browser is /usr/bin/chromium.
import { spawn, spawnSync } from "node:child_process";
import { get as httpsGet } from "node:https";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(here, "..", "..");
export const ARTIFACTS = join(REPO, "test-artifacts");
export const BINARY = process.env.ATOMSYNC_SERVER_BIN ?? join(REPO, "target", "debug", "atomsync-server");
const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";

/** The client files the server embeds at build time (src/http/assets.rs). */
const EMBEDDED = [
  ...["client-js/atomsync.js", "client-js/demo/index.html", "client-js/demo/sw.js"].map((path) => join(REPO, path)),
  ...["atomsync", "inspect"].flatMap((dir) => readdirSync(join(REPO, "client-js", dir)).map((name) => join(REPO, "client-js", dir, name))),
];

/**
 * Builds the server if the binary is missing or older than a client file it embeds: the
 * browser tests run the page and module the binary serves, not the ones on disk.
 */
function ensureBinary() {
  const stale = existsSync(BINARY) && EMBEDDED.some((path) => statSync(path).mtimeMs > statSync(BINARY).mtimeMs);
  if (existsSync(BINARY) && !stale) return;
  if (stale && process.env.ATOMSYNC_SERVER_BIN) {
    console.warn(`${BINARY} is older than the client files it embeds; the tests run the embedded ones`);
    return;
  }
  const build = spawnSync("cargo", ["build", "--bin", "atomsync-server"], { cwd: REPO, stdio: "inherit" });
  if (build.status !== 0 || !existsSync(BINARY)) throw new Error(`could not build ${BINARY}`);
}

/** A port nobody listens on right now (the server needs it known before it starts). */
function freePort() {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.unref();
    probe.on("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolvePort(port));
    });
  });
}

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

/**
 * Starts the server. `users`: `{name: {token, groups}}` turns auth on. `allowedOrigins`:
 * the origins besides its own whose pages may open a WebSocket (`[server] allowed_origins`).
 * `admin`: the `[admin] token` (the admin API and the inspector); `tls`: `{cert, key}`, PEM
 * files for `[server.tls]` (the server then speaks HTTPS only; see {@link makeCertificate}).
 * @returns {Promise<TestServer>}
 */
export async function startServer({ users, allowedOrigins, admin, tls } = {}) {
  ensureBinary();
  const dir = mkdtempSync(join(tmpdir(), "atomsync-e2e-"));
  const args = ["--bind", `127.0.0.1:${await freePort()}`, "--db", join(dir, "atomsync.db"), "--durability", "normal", "--log", "warn"];
  if (users || allowedOrigins || tls) {
    writeUsers(dir, users ?? {}, { allowedOrigins, tls });
    args.push("--config", join(dir, "atomsync.toml"));
  }
  if (admin) args.push("--admin-token", admin);
  const server = new TestServer(dir, args, tls, allowedOrigins);
  await server.start();
  return server;
}

/**
 * Writes the server's config file into `dir`: its users, its allowed origins, its TLS files.
 * @param {string} dir @param {Record<string, {token: string, groups: string[]}>} users
 * @param {{allowedOrigins?: string[], tls?: {cert: string, key: string}}} server
 */
function writeUsers(dir, users, { allowedOrigins, tls }) {
  const origins = allowedOrigins ? `[server]\nallowed_origins = ${JSON.stringify(allowedOrigins)}\n\n` : "";
  const files = tls ? `[server.tls]\ncert = ${JSON.stringify(tls.cert)}\nkey = ${JSON.stringify(tls.key)}\n\n` : "";
  const server = origins + files;
  const toml = Object.entries(users)
    .map(([name, { token, groups }]) => `[users.${name}]\ntoken = ${JSON.stringify(token)}\ngroups = ${JSON.stringify(groups)}\n`)
    .join("\n");
  writeFileSync(join(dir, "atomsync.toml"), server + toml);
}

/**
 * A self-signed certificate for 127.0.0.1 and localhost, made with openssl into a new
 * temporary folder: `{cert, key, dir}` (paths; `cert` is also its own CA).
 */
export function makeCertificate() {
  const dir = mkdtempSync(join(tmpdir(), "atomsync-tls-"));
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  const made = spawnSync("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
    "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=atomsync test",
    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
  ], { encoding: "utf8" });
  if (made.status !== 0) throw new Error(`openssl could not make a certificate: ${made.stderr}`);
  return { cert, key, dir };
}

/**
 * The status of `GET url`; over https, trusting `ca` (PEM text).
 * @param {string} url
 * @param {string | undefined} ca
 * @returns {Promise<number>}
 */
function statusOf(url, ca) {
  if (!url.startsWith("https:")) return fetch(url).then((response) => response.status);
  return new Promise((resolve, reject) => {
    const request = httpsGet(url, { ca }, (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    });
    request.on("error", reject);
  });
}

export class TestServer {
  /**
   * @param {string} dir its folder @param {string[]} args its command line
   * @param {{cert: string, key: string} | undefined} tls
   * @param {string[] | undefined} allowedOrigins kept for `setUsers`, which rewrites the config
   */
  constructor(dir, args, tls, allowedOrigins) {
    this.dir = dir;
    this.args = args;
    this.tls = tls;
    this.allowedOrigins = allowedOrigins;
    this.ca = tls ? readFileSync(tls.cert, "utf8") : undefined;
    this.origin = `${tls ? "https" : "http"}://${args[1]}`;
    this.process = null;
    this.log = "";
  }

  async start() {
    const child = spawn(BINARY, this.args, { stdio: ["ignore", "pipe", "pipe"] });
    this.process = child;
    const keep = (chunk) => {
      this.log = (this.log + chunk).slice(-20000);
    };
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    const deadline = Date.now() + 20000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`atomsync-server exited with ${child.exitCode}:\n${this.log}`);
      try {
        if ((await statusOf(`${this.origin}/healthz`, this.ca)) === 200) return;
      } catch {
        // Not listening yet.
      }
      if (Date.now() > deadline) throw new Error(`atomsync-server did not become healthy:\n${this.log}`);
      await sleep(50);
    }
  }

  /** Stops the process (SIGTERM, then SIGKILL after 5 s) and waits for it to exit. */
  async stop() {
    const child = this.process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((done) => child.once("exit", done));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
    this.process = null;
  }

  /** Freezes the process (SIGSTOP): connections are accepted by the kernel, never answered. */
  pause() {
    this.process?.kill("SIGSTOP");
  }

  /** Lets a paused process run again (SIGCONT). */
  resume() {
    this.process?.kill("SIGCONT");
  }

  /**
   * Replaces the users of a server started with `users` (a token revoked, say); they
   * take effect at the next `start()`.
   */
  setUsers(users) {
    if (!this.args.includes("--config")) throw new Error("setUsers: this server was started without users");
    writeUsers(this.dir, users, { allowedOrigins: this.allowedOrigins, tls: this.tls });
  }

  /** Stops the server for good and removes its database. */
  async close() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /**
   * A pull over HTTP, `accept` choosing the encoding; returns the raw response.
   * @param {string} group
   * @param {{token?: string, accept?: string, since?: number}} [options]
   */
  async pull(group, { token, accept = "application/msgpack", since = 0 } = {}) {
    const headers = { Accept: accept };
    if (token) headers.Authorization = `Bearer ${token}`;
    return fetch(`${this.origin}/sync?group=${encodeURIComponent(group)}&since=${since}`, { headers });
  }

  /** A push with a JSON body (tagged JSON values), as curl or a Rust tool would send. */
  async pushJson(body, { token } = {}) {
    const headers = { "Content-Type": "application/json", Accept: "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    return fetch(`${this.origin}/sync`, { method: "POST", headers, body });
  }
}

/** Headless Chromium with the flags a sandboxed CI machine needs. */
export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

/** Opens the demo page and waits until its atom is loaded. */
export async function openDemo(context, server, query = "") {
  const page = await context.newPage();
  page.on("pageerror", (error) => {
    page.errors ??= [];
    page.errors.push(error);
  });
  await page.goto(`${server.origin}/${query}`);
  await page.waitForSelector("body[data-ready=true]", { timeout: 15000 });
  return page;
}

/**
 * Waits until the demo's service worker controls the page: from then on the page and the
 * module reload from its cache when the server is down (installing stored them all).
 */
export async function waitOfflineReady(page, timeout = 15000) {
  await page.waitForSelector("body[data-offline-ready=true]", { timeout });
}

/** Adds a todo through the page's form, as a user would. */
export async function addTodo(page, text) {
  await page.fill("[data-testid=new-text]", text);
  await page.press("[data-testid=new-text]", "Enter");
}

/** The todo texts shown on the page, in order. */
export function shownTodos(page) {
  return page.$$eval("[data-testid=list] li .text, [data-testid=list] li input.edit", (nodes) => nodes.map((n) => n.textContent || n.value));
}

/** Waits until the page shows exactly `texts` (order-insensitive). */
export async function expectTodos(page, texts, timeout = 15000) {
  const want = JSON.stringify([...texts].sort());
  const deadline = Date.now() + timeout;
  for (;;) {
    const have = JSON.stringify((await shownTodos(page)).sort());
    if (have === want) return;
    if (Date.now() > deadline) throw new Error(`page shows ${have}, expected ${want}`);
    await sleep(50);
  }
}

/** Waits until the page's atom status satisfies `check` (evaluated in the page). */
export async function waitStatus(page, check, timeout = 20000) {
  await page.waitForFunction(check, null, { timeout, polling: 50 });
}

export function artifactPath(name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  return join(ARTIFACTS, name);
}

/**
 * Pulls `group` from the server (MessagePack, decoded by our own decoder) until the todo
 * texts there are exactly `texts`; returns the documents.
 */
export async function expectServerTodos(server, group, texts, { token, timeout = 20000 } = {}) {
  const { decode } = await import("../atomsync.js");
  const want = JSON.stringify([...texts].sort());
  const deadline = Date.now() + timeout;
  for (;;) {
    const response = await server.pull(group, { token });
    if (!response.ok) throw new Error(`pull ${group}: ${response.status}`);
    const docs = decode(new Uint8Array(await response.arrayBuffer())).changes;
    const have = JSON.stringify(docs.filter((doc) => !doc.deleted).map((doc) => doc.value.text).sort());
    if (have === want) return docs;
    if (Date.now() > deadline) throw new Error(`server has ${have}, expected ${want}`);
    await sleep(100);
  }
}

const INTEROP = process.env.ATOMSYNC_INTEROP_BIN ?? join(REPO, "target", "debug", "examples", "interop");

/**
 * Runs the Rust client's interop example (client-rs/examples/interop.rs) against the
 * server with a fresh local database: `write` stores its every-type value under `key`,
 * `read` prints the key's value as tagged JSON. Resolves with its standard output.
 */
export async function rustInterop(server, command, group, key) {
  if (!existsSync(INTEROP)) {
    const build = spawnSync("cargo", ["build", "-p", "atomsync-client", "--example", "interop"], { cwd: REPO, stdio: "inherit" });
    if (build.status !== 0) throw new Error("could not build the interop example");
  }
  const db = join(mkdtempSync(join(tmpdir(), "atomsync-rs-")), "client.db");
  const child = spawn(INTEROP, [command, `${server.origin}/sync`, group, key, db], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.on("data", (chunk) => (out += chunk));
  child.stderr.on("data", (chunk) => (err += chunk));
  const timer = setTimeout(() => child.kill("SIGKILL"), 60000);
  const code = await new Promise((done) => child.once("exit", done));
  clearTimeout(timer);
  rmSync(dirname(db), { recursive: true, force: true });
  if (code !== 0) throw new Error(`interop ${command} exited with ${code}: ${err}`);
  return out.trim();
}
