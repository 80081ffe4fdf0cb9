/**
 * # inspect.js: the inspector page's logic (`GET /inspect`)
 *
 * Lists the server's groups with their counts, browses a group's documents in key order
 * with their values shown by type (see render.js), and tails the group's changes live.
 * Everything comes from the admin API (`/admin/groups`, `/admin/groups/{g}`,
 * `/admin/groups/{g}/docs`, docs/protocol.md section 13) in MessagePack, decoded by the
 * browser client's own decoder so every type survives; the live tail is a WebSocket
 * subscription (`/sync/ws`, binary frames) opened with the admin token, which the server
 * lets subscribe to any group and never push.
 *
 * The page (index.html) checks the token first, then imports this module with it and
 * calls {@link start}. State lives in this module; the DOM is rebuilt from it.
 * @module inspect/inspect
 */

import { decode, encode } from "../atomsync.js";
import { escapeHtml, renderValue, typeOf } from "./render.js";

/** How often the group list and the selected group's counts are read again. */
const REFRESH_MS = 3000;
/** Documents per page of the browser. */
const DOCS_PAGE = 100;
/** Groups read per refresh (the admin API's most per page). */
const GROUPS_PAGE = 1000;
/** Changes kept in the tail; older ones drop off the bottom. */
const TAIL_KEEP = 200;
/** How many recent changes a new tail starts with (read by catch-up, then live). */
const TAIL_BACK = 20;
/** Reconnect delays of the tail's WebSocket, growing up to the last. */
const BACKOFF_MS = [250, 1000, 3000, 5000];

/**
 * @typedef {{name: string, seq: number, floor: number, documents: number, tombstones: number, subscribers: number}} Group
 * @typedef {{key: string, version: number, seq: number, value?: unknown, deleted?: boolean}} Doc
 */

const state = {
  token: "",
  /** @type {Group[]} */
  groups: [],
  groupsMore: false,
  filter: "",
  /** @type {string | null} */
  selected: null,
  /** @type {Doc[]} */
  docs: [],
  /** @type {string | null} */
  docsNext: null,
  prefix: "",
  tombstones: false,
  /** @type {WebSocket | null} */
  socket: null,
  /** Bumped on every group change: late events of an older tail are dropped. */
  tailGeneration: 0,
  tailSeq: 0,
  tailFailures: 0,
};

/** @param {string} id */
function $(id) {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} missing from the page`);
  return element;
}

/**
 * A GET of the admin API in MessagePack; throws with the server's code and message.
 * @param {string} path
 * @returns {Promise<any>}
 */
async function admin(path) {
  /** @type {Record<string, string>} */
  const headers = { Accept: "application/msgpack" };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  const response = await fetch(path, { headers });
  const bytes = new Uint8Array(await response.arrayBuffer());
  /** @type {any} */
  let body;
  try {
    body = decode(bytes);
  } catch {
    throw new Error(`${path}: HTTP ${response.status}, not an Atomsync answer`);
  }
  if (!response.ok) throw new Error(`${body.error}: ${body.message}`);
  return body;
}

/** @param {string | null} message */
function banner(message) {
  const element = $("banner");
  element.hidden = !message;
  element.textContent = message ?? "";
}

/** @param {number} n */
function count(n) {
  return n.toLocaleString("en-US");
}

async function loadGroups() {
  const page = await admin(`/admin/groups?limit=${GROUPS_PAGE}`);
  state.groups = page.groups;
  state.groupsMore = page.next !== null;
  renderGroups();
  renderHead();
}

function renderGroups() {
  const filter = state.filter.toLowerCase();
  const shown = state.groups.filter((g) => g.name.toLowerCase().includes(filter));
  $("group-count").textContent = state.groupsMore ? `first ${count(state.groups.length)}` : count(state.groups.length);
  $("group-rows").innerHTML = shown
    .map((g) => {
      const selected = g.name === state.selected ? " selected" : "";
      const live = g.subscribers > 0 ? `<span class="subs" title="WebSocket subscribers now">${count(g.subscribers)}</span>` : `<span class="muted">0</span>`;
      return `<tr data-testid="group-row" data-group="${escapeHtml(g.name)}" class="${selected}">
        <td class="name">${escapeHtml(g.name)}</td><td class="n">${count(g.seq)}</td><td class="n">${count(g.documents)}</td>
        <td class="n">${count(g.tombstones)}</td><td class="n">${count(g.floor)}</td><td class="n">${live}</td></tr>`;
    })
    .join("");
  $("groups-empty").hidden = state.groups.length > 0;
}

function renderHead() {
  const group = state.groups.find((g) => g.name === state.selected);
  $("empty").hidden = state.selected !== null;
  $("group-view").hidden = state.selected === null;
  if (!state.selected) return;
  $("group-name").textContent = state.selected;
  const stats = group
    ? [
        ["seq", group.seq, "the group's sequence: one per accepted change"],
        ["documents", group.documents, "live documents"],
        ["tombstones", group.tombstones, "deleted documents still remembered"],
        ["floor", group.floor, "compaction floor: a client behind it starts over"],
        ["subscribers", group.subscribers, "WebSocket subscriptions open now"],
      ]
    : [];
  $("group-stats").innerHTML = stats
    .map(([label, value, title]) => `<div class="stat" title="${title}" data-testid="stat-${label}"><b>${count(Number(value))}</b><span>${label}</span></div>`)
    .join("");
}

/** @param {Doc} doc */
function docRow(doc) {
  const value = doc.deleted ? `<span class="badge deleted">deleted</span>` : renderValue(doc.value);
  const type = doc.deleted ? "tombstone" : typeOf(doc.value);
  return `<tr data-testid="doc-row" data-key="${escapeHtml(doc.key)}">
    <td class="key" title="${escapeHtml(doc.key)}">${escapeHtml(doc.key)}</td><td class="n">${doc.version}</td><td class="n">${doc.seq}</td>
    <td class="value"><div class="type">${escapeHtml(type)}</div><div class="val">${value}</div></td></tr>`;
}

function renderDocs() {
  $("doc-rows").innerHTML = state.docs.map(docRow).join("");
  $("docs-empty").hidden = state.docs.length > 0;
  $("docs-more").hidden = state.docsNext === null;
}

/** @param {boolean} more the next page, else from the start */
async function loadDocs(more) {
  const group = state.selected;
  if (!group) return;
  const query = new URLSearchParams({ limit: String(DOCS_PAGE) });
  if (state.prefix) query.set("prefix", state.prefix);
  if (state.tombstones) query.set("tombstones", "true");
  if (more && state.docsNext !== null) query.set("after", state.docsNext);
  const page = await admin(`/admin/groups/${encodeURIComponent(group)}/docs?${query}`);
  if (group !== state.selected) return;
  state.docs = more ? [...state.docs, ...page.docs] : page.docs;
  state.docsNext = page.next;
  renderDocs();
}

/** @param {boolean} live */
function setLive(live) {
  document.body.dataset.live = String(live);
  const badge = $("live");
  badge.className = `badge ${live ? "online" : "offline"}`;
  const label = badge.lastElementChild;
  if (label) label.textContent = live ? "live" : "connecting";
}

/**
 * @param {Doc} doc
 * @param {boolean} live
 */
function tailEntry(doc, live) {
  const time = new Date().toLocaleTimeString("en-GB", { hour12: false }) + "." + String(new Date().getMilliseconds()).padStart(3, "0");
  const value = doc.deleted ? `<span class="badge deleted">deleted</span>` : renderValue(doc.value);
  const li = document.createElement("li");
  li.dataset.testid = "tail-entry";
  li.className = live ? "live" : "past";
  li.innerHTML = `<div class="meta"><span class="seq">#${doc.seq}</span><span class="key">${escapeHtml(doc.key)}</span>
    <span class="ver">v${doc.version}</span><span class="when">${live ? time : "before"}</span></div><div class="val">${value}</div>`;
  const list = $("tail");
  list.prepend(li);
  while (list.childElementCount > TAIL_KEEP) list.lastElementChild?.remove();
  $("tail-empty").hidden = true;
}

/**
 * A live change of the selected group: into the tail, and into the documents shown.
 * @param {Doc} doc
 */
function applyLive(doc) {
  const at = state.docs.findIndex((d) => d.key === doc.key);
  const shown = (!doc.deleted || state.tombstones) && doc.key.startsWith(state.prefix);
  // A new key joins the page when it falls inside the keys loaded so far (key order).
  const inRange = state.docsNext === null || doc.key < state.docsNext;
  if (at >= 0 || (shown && inRange)) {
    if (at >= 0) state.docs.splice(at, 1);
    if (shown) {
      const before = state.docs.findIndex((d) => d.key > doc.key);
      state.docs.splice(before < 0 ? state.docs.length : before, 0, doc);
    }
    renderDocs();
    const row = document.querySelector(`[data-testid=doc-row][data-key="${CSS.escape(doc.key)}"]`);
    row?.classList.add("flash");
  }
  const group = state.groups.find((g) => g.name === state.selected);
  if (group && doc.seq > group.seq) {
    group.seq = doc.seq;
    renderGroups();
    renderHead();
  }
}

/**
 * Opens the tail of `group` from `since`; reconnects after a break, from the last seq.
 * @param {string} group
 * @param {number} since
 * @param {number} generation
 */
function openTail(group, since, generation) {
  const url = new URL("/sync/ws", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  if (state.token) url.searchParams.set("token", state.token);
  const socket = new WebSocket(url);
  socket.binaryType = "arraybuffer";
  state.socket = socket;
  state.tailSeq = since;
  let live = false;
  socket.onopen = () => socket.send(encode({ type: "subscribe", group, since: state.tailSeq }));
  socket.onmessage = (event) => {
    if (generation !== state.tailGeneration) return;
    /** @type {any} */
    const frame = decode(new Uint8Array(/** @type {ArrayBuffer} */ (event.data)));
    if (frame.type === "changes" && frame.group === group) {
      for (const doc of frame.changes) {
        if (doc.seq <= state.tailSeq) continue;
        state.tailSeq = doc.seq;
        tailEntry(doc, live);
        if (live) applyLive(doc);
      }
    } else if (frame.type === "subscribed" && frame.group === group) {
      live = true;
      state.tailSeq = Math.max(state.tailSeq, frame.seq);
      state.tailFailures = 0;
      setLive(true);
    } else if (frame.type === "error") {
      banner(`live tail: ${frame.error}: ${frame.message}`);
    }
  };
  socket.onclose = () => {
    if (generation !== state.tailGeneration) return;
    setLive(false);
    const delay = BACKOFF_MS[Math.min(state.tailFailures++, BACKOFF_MS.length - 1)];
    setTimeout(() => {
      if (generation === state.tailGeneration) openTail(group, state.tailSeq, generation);
    }, delay);
  };
}

/** @param {string} name */
async function select(name) {
  state.selected = name;
  state.docs = [];
  state.docsNext = null;
  history.replaceState(null, "", `#group=${encodeURIComponent(name)}`);
  state.tailGeneration += 1;
  state.socket?.close();
  state.socket = null;
  $("tail").innerHTML = "";
  $("tail-empty").hidden = false;
  setLive(false);
  renderGroups();
  renderHead();
  await loadDocs(false);
  const group = state.groups.find((g) => g.name === name);
  openTail(name, Math.max(0, (group?.seq ?? 0) - TAIL_BACK), state.tailGeneration);
}

/**
 * Runs `task`, showing its failure in the banner instead of throwing.
 * @param {() => Promise<void>} task
 */
async function guarded(task) {
  try {
    await task();
    banner(null);
  } catch (error) {
    banner(error instanceof Error ? error.message : String(error));
  }
}

/**
 * Starts the page with the admin token (empty when the server's admin API needs none).
 * @param {{token: string}} options
 */
export async function start({ token }) {
  state.token = token;
  $("server").textContent = location.host;
  $("group-rows").addEventListener("click", (event) => {
    const row = /** @type {HTMLElement} */ (event.target).closest("tr");
    const name = row?.dataset.group;
    if (name) guarded(() => select(name));
  });
  $("group-filter").addEventListener("input", (event) => {
    state.filter = /** @type {HTMLInputElement} */ (event.target).value;
    renderGroups();
  });
  let typing = 0;
  $("prefix").addEventListener("input", (event) => {
    state.prefix = /** @type {HTMLInputElement} */ (event.target).value;
    clearTimeout(typing);
    typing = setTimeout(() => guarded(() => loadDocs(false)), 200);
  });
  $("tombstones").addEventListener("change", (event) => {
    state.tombstones = /** @type {HTMLInputElement} */ (event.target).checked;
    guarded(() => loadDocs(false));
  });
  $("docs-more").addEventListener("click", () => guarded(() => loadDocs(true)));
  $("sign-out").addEventListener("click", () => {
    sessionStorage.removeItem("atomsync-inspect-token");
    location.reload();
  });
  await guarded(loadGroups);
  const wanted = new URLSearchParams(location.hash.slice(1)).get("group");
  const first = wanted ?? state.groups[0]?.name;
  if (first) await guarded(() => select(first));
  document.body.dataset.ready = "true";
  setInterval(() => guarded(loadGroups), REFRESH_MS);
}
