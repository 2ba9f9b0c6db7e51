/** Subscription input: defaults, and a clear error naming the field for each bad value. */
import assert from "node:assert/strict";
import {
  parseSubscriptionInput,
  parseSubscriptionPatch,
  redactUrl,
  ValidationError,
} from "../../lib/webhooks/mod.ts";

function rejects(fn: () => unknown, pattern: RegExp) {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ValidationError, `expected a ValidationError, got ${err}`);
    assert.match(err.message, pattern);
    return true;
  });
}

Deno.test("validate: a bare URL gets every room and event, enabled", () => {
  assert.deepEqual(parseSubscriptionInput({ url: "https://example.com/hook" }), {
    url: "https://example.com/hook",
    rooms: null,
    events: ["stream.started", "stream.stopped"],
    secret: undefined,
    description: "",
    enabled: true,
  });
});

Deno.test("validate: every field", () => {
  const s = parseSubscriptionInput({
    url: "http://127.0.0.1:9000/x?y=1",
    rooms: ["a", "B_2", "a", "c-3"],
    events: ["stream.stopped"],
    secret: "0123456789abcdef",
    description: "billing",
    enabled: false,
  });
  assert.deepEqual(s.rooms, ["a", "B_2", "c-3"]);
  assert.deepEqual(s.events, ["stream.stopped"]);
  assert.equal(s.secret, "0123456789abcdef");
  assert.equal(s.enabled, false);
  // Events come back in canonical order, without duplicates.
  assert.deepEqual(
    parseSubscriptionInput({
      url: "http://x/",
      events: ["stream.stopped", "stream.started", "stream.stopped"],
    }).events,
    ["stream.started", "stream.stopped"],
  );
});

Deno.test("validate: bad input says what was expected", () => {
  rejects(() => parseSubscriptionInput(null), /expected a JSON object, got null/);
  rejects(() => parseSubscriptionInput([]), /expected a JSON object/);
  rejects(() => parseSubscriptionInput({}), /^url: required/);
  rejects(() => parseSubscriptionInput({ url: 5 }), /^url: expected an http or https URL, got 5/);
  rejects(() => parseSubscriptionInput({ url: "ftp://x/" }), /^url: expected an http or https/);
  rejects(() => parseSubscriptionInput({ url: "not a url" }), /^url: expected an http or https/);
  rejects(() => parseSubscriptionInput({ url: "javascript:alert(1)" }), /^url:/);
  rejects(
    () => parseSubscriptionInput({ url: `https://x/${"a".repeat(3000)}` }),
    /^url: expected at most 2048/,
  );
  rejects(
    () => parseSubscriptionInput({ url: "http://x/", rooms: "a" }),
    /^rooms: expected an array/,
  );
  rejects(
    () => parseSubscriptionInput({ url: "http://x/", rooms: [] }),
    /^rooms: expected at least one/,
  );
  rejects(
    () => parseSubscriptionInput({ url: "http://x/", rooms: ["ok", "bad room"] }),
    /^rooms: expected room names .*got "bad room"/,
  );
  rejects(
    () => parseSubscriptionInput({ url: "http://x/", rooms: ["a".repeat(65)] }),
    /^rooms: expected room names/,
  );
  rejects(
    () =>
      parseSubscriptionInput({
        url: "http://x/",
        rooms: Array.from({ length: 1001 }, (_, i) => `r${i}`),
      }),
    /^rooms: expected at most 1000 rooms, got 1001/,
  );
  rejects(
    () => parseSubscriptionInput({ url: "http://x/", events: ["stream.paused"] }),
    /^events: expected a non-empty array of "stream.started", "stream.stopped", got "stream.paused"/,
  );
  rejects(() => parseSubscriptionInput({ url: "http://x/", events: [] }), /^events:/);
  rejects(
    () => parseSubscriptionInput({ url: "http://x/", secret: "short" }),
    /^secret: expected a string of 16-256/,
  );
  rejects(
    () => parseSubscriptionInput({ url: "http://x/", secret: "with space 0123456789" }),
    /^secret:/,
  );
  rejects(
    () => parseSubscriptionInput({ url: "http://x/", description: 1 }),
    /^description: expected a string/,
  );
  rejects(
    () => parseSubscriptionInput({ url: "http://x/", description: "x".repeat(1001) }),
    /^description: expected at most 1000 characters, got 1001/,
  );
  rejects(
    () => parseSubscriptionInput({ url: "http://x/", enabled: "yes" }),
    /^enabled: expected true or false/,
  );
  rejects(
    () => parseSubscriptionInput({ url: "http://x/", color: "red" }),
    /^unknown field "color"/,
  );
});

Deno.test("validate: a wrong secret is never echoed", () => {
  const secret = "has a space but is long enough";
  assert.throws(() => parseSubscriptionInput({ url: "http://x/", secret }), (err: Error) => {
    assert.ok(!err.message.includes(secret));
    return true;
  });
});

Deno.test("validate: patches change only what they name; rooms null means every room", () => {
  assert.deepEqual(parseSubscriptionPatch({ enabled: false }), { enabled: false });
  assert.deepEqual(parseSubscriptionPatch({ rooms: null, events: ["stream.started"] }), {
    rooms: null,
    events: ["stream.started"],
  });
  rejects(() => parseSubscriptionPatch({}), /^expected at least one of url, rooms/);
  rejects(() => parseSubscriptionPatch({ enabled: 1 }), /^enabled:/);
  rejects(() => parseSubscriptionPatch({ id: "wh_x" }), /^unknown field "id"/);
});

Deno.test("validate: URLs in logs lose credentials, query and fragment", () => {
  assert.equal(
    redactUrl("https://user:pass@hooks.example.com:8443/in/abc?token=s3cret#frag"),
    "https://hooks.example.com:8443/in/abc",
  );
});
