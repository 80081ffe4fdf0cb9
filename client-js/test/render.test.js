// The inspector's value rendering (inspect/render.js): every type keeps its notation,
// text is escaped, and large values are bounded.
import assert from "node:assert/strict";
import { test } from "node:test";

import { float, inst, kw, uuid } from "../atomsync.js";
import { escapeHtml, renderValue, typeOf } from "../inspect/render.js";

/** The text of rendered HTML, tags removed and entities decoded. */
function text(html) {
  return html.replace(/<[^>]+>/g, "").replace(/&#(\d+);/g, (_, code) => String.fromCharCode(Number(code)));
}

test("each type is shown in its own notation", () => {
  const value = {
    text: "Buy milk",
    tags: new Set([kw("groceries")]),
    due: inst("2026-11-24T10:00:00.123456789Z"),
    id: uuid("550e8400-e29b-41d4-a716-446655440000"),
    raw: new Uint8Array([0, 1, 255]),
    big: 9007199254740993n,
    ratio: float(1),
    half: 0.5,
    done: false,
    note: null,
    list: [1, "two"],
  };
  assert.equal(
    text(renderValue(value)),
    '{text "Buy milk", tags #{:groceries}, due #inst "2026-11-24T10:00:00.123456789Z", ' +
      'id #uuid "550e8400-e29b-41d4-a716-446655440000", raw #bytes[3] 0001ff, big 9007199254740993, ' +
      'ratio 1.0, half 0.5, done false, note nil, list [1 "two"]}',
  );
  assert.equal(typeOf(value), "map of 11");
  assert.equal(typeOf(new Set([1])), "set of 1");
  assert.equal(typeOf(kw("a")), "keyword");
  assert.equal(typeOf(9007199254740993n), "integer");
  assert.equal(typeOf(float(2)), "float");
});

test("maps with keys that are not names show the keys as values", () => {
  const map = new Map([[kw("k"), 1], [42, "x"], ["with space", true]]);
  assert.equal(text(renderValue(map)), '{:k 1, 42 "x", "with space" true}');
});

test("text is escaped everywhere, so a value cannot inject markup", () => {
  const html = renderValue({ "<b>": "<script>alert(1)</script>", k: kw("a<b") });
  assert.ok(!html.includes("<script>"), html);
  assert.ok(!html.includes("<b>"), html);
  assert.equal(escapeHtml(`<"&'>`), "&#60;&#34;&#38;&#39;&#62;");
});

test("large values are bounded", () => {
  const long = "x".repeat(10000);
  const shown = text(renderValue(long));
  assert.ok(shown.length < 200 && shown.endsWith('…"'), shown);
  const wide = text(renderValue(Array.from({ length: 500 }, (_, i) => i)));
  assert.ok(wide.includes("…450 more"), wide);
  let deep = 0;
  for (let i = 0; i < 20; i++) deep = [deep];
  assert.ok(text(renderValue(deep)).includes("…"));
  assert.ok(text(renderValue(new Uint8Array(1000))).startsWith("#bytes[1000] 0000"));
});
