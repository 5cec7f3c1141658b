// The HTTP surface in real workerd: health, routing (404/405), content types (415), size (413), signatures
// (401, secret rotation) and malformed deliveries (400).

import assert from "node:assert/strict";
import net from "node:net";
import { describe, test } from "node:test";

import {
  CENTRAL,
  KV_KEY,
  REGISTRY_TEXT,
  SECRET,
  VERSION,
  fixture,
  publishingPush,
  sign,
  waitFor,
  github,
  useWorker,
  worker,
} from "./harness.mjs";

// Rotation: the new secret is added next to the old one (a trailing comma must not add an empty secret).
const NEW_SECRET = "rotated-in-secret-2026";
const MAX_BODY = 25 * 1024 * 1024;

useWorker({ bindings: { WEBHOOK_SECRET: `${NEW_SECRET}, ${SECRET},` } });

const ping = () => fixture("ping/payload.json");

describe("GET /health", () => {
  test("before any delivery: status, version, no registry copy yet, no secrets, no log line", async () => {
    const { status, body } = await worker.health();
    assert.equal(status, 200);
    assert.deepEqual(body, {
      status: "ok",
      service: "upm-relay",
      version: VERSION,
      dispatch_repo: CENTRAL,
      dry_run: false,
      registry: null,
      registry_error: null,
      problems: [],
    });
    assert.equal(github.requests.length, 0, "health never asks GitHub");
  });

  test("anyone learns status and version only; no-store; a wrong token is anyone", async () => {
    for (const headers of [{}, { Authorization: "Bearer not-the-token" }, { Authorization: worker.bindings.HEALTH_TOKEN }]) {
      const { status, body, headers: answer } = await worker.request("/health", { headers }, { expectLog: false });
      assert.equal(status, 200);
      assert.deepEqual(body, { status: "ok", version: VERSION });
      assert.equal(answer.get("cache-control"), "no-store");
    }
    assert.equal((await worker.health()).headers.get("cache-control"), "no-store");
  });

  test("answers from the isolate's memory: no KV read (a broken KV binding does not matter)", async () => {
    // With KV seeded with a registry copy, a fresh isolate's /health still reports none: it did not look.
    await (await worker.kv()).put(KV_KEY, JSON.stringify({ fetched_at_ms: Date.now(), document: REGISTRY_TEXT }));
    await worker.restart();
    const { body } = await worker.health();
    assert.equal(body.registry, null);
    await (await worker.kv()).delete(KV_KEY);
  });

  test("after a delivery: the registry size and age from the isolate's memory", async () => {
    assert.equal((await worker.deliver(publishingPush())).status, 200);
    const { status, body } = await worker.health();
    assert.equal(status, 200);
    assert.deepEqual(body.registry, { entries: 4, age_seconds: 0, tier: "memory" });
  });

  test("HEAD answers 200 without a body", async () => {
    const { status, text } = await worker.request("/health", { method: "HEAD" }, { expectLog: false });
    assert.equal(status, 200);
    assert.equal(text, "");
  });
});

describe("routing", () => {
  for (const [method, path] of [
    ["POST", "/hooks"],
    ["GET", "/.env"],
    ["POST", "/webhook/extra"],
    ["GET", "/health/details"],
  ]) {
    test(`${method} ${path} is 404`, async () => {
      const { status, body } = await worker.request(path, { method });
      assert.equal(status, 404);
      assert.deepEqual(body, { outcome: "rejected", reason: "not found: deliveries go to POST / (or /webhook)" });
    });
  }

  for (const [method, path, allow] of [
    ["GET", "/", "POST"],
    ["PUT", "/webhook", "POST"],
    ["DELETE", "/", "POST"],
    ["POST", "/health", "GET, HEAD"],
    ["DELETE", "/health", "GET, HEAD"],
  ]) {
    test(`${method} ${path} is 405 with Allow: ${allow}`, async () => {
      const { status, headers, body } = await worker.request(path, { method });
      assert.equal(status, 405);
      assert.equal(headers.get("allow"), allow);
      assert.equal(body.outcome, "rejected");
      assert.equal(body.reason, `method not allowed (allowed: ${allow})`);
    });
  }
});

describe("content type (415)", () => {
  for (const [label, contentType, reason] of [
    ["text/plain", "text/plain", /^unsupported Content-Type "text\/plain"/],
    ["multipart/form-data", "multipart/form-data; boundary=x", /^unsupported Content-Type "multipart\/form-data"/],
    ["no Content-Type", null, /^missing Content-Type/],
  ]) {
    test(label, async () => {
      const { status, body } = await worker.deliver(ping(), { event: "ping", contentType });
      assert.equal(status, 415);
      assert.equal(body.outcome, "rejected");
      assert.match(body.reason, reason);
    });
  }

  test("parameters and case do not matter: Application/JSON; charset=utf-8", async () => {
    const { status, body } = await worker.deliver(ping(), {
      event: "ping",
      contentType: "Application/JSON; charset=utf-8",
    });
    assert.equal(status, 200);
    assert.equal(body.reason, "pong");
  });
});

describe("size (413, GitHub caps payloads at 25 MB)", () => {
  const tooLarge = `body of ${MAX_BODY + 1} bytes exceeds the ${MAX_BODY}-byte limit (GitHub caps payloads at 25 MB)`;

  test("a declared Content-Length over the cap is refused before the body is read", async () => {
    const { status, body } = await worker.rawRequest("/", {
      headers: {
        "Content-Type": "application/json",
        "Content-Length": String(MAX_BODY + 1),
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": "too-large-declared",
      },
      bodyStart: "{",
    });
    assert.equal(status, 413);
    assert.equal(body.outcome, "rejected");
    assert.equal(body.reason, tooLarge);
  });

  test("a chunked body (no Content-Length) that never ends is refused once it passes the cap", async () => {
    // A raw socket sends 1 MiB chunks up to the cap, then one byte more, and then holds the body open
    // without ever ending it. Only a streaming cap answers that (413 once the cap is passed); without
    // one, the worker would wait for the rest of the body and this test would time out.
    // Stopping right past the cap leaves the worker nothing unread, so it closes cleanly: writing on
    // while it answered made it close with unread bytes, a TCP reset that could discard its answer here.
    const url = new URL(await worker.mf.ready);
    const before = worker.deliveryLogs.length;
    const chunk = Buffer.alloc(1024 * 1024, 0x20);
    const { status, text, sent } = await new Promise((resolve, reject) => {
      let raw = "";
      let sent = 0;
      let answered = false;
      const socket = net.connect(Number(url.port), url.hostname, async () => {
        socket.write(
          "POST / HTTP/1.1\r\n" +
            `Host: ${url.host}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n` +
            "X-GitHub-Event: push\r\nX-GitHub-Delivery: chunked-forever\r\n" +
            `X-Hub-Signature-256: sha256=${"0".repeat(64)}\r\nConnection: close\r\n\r\n`,
        );
        while (!answered && sent <= MAX_BODY && !socket.destroyed) {
          const piece = sent < MAX_BODY ? chunk : chunk.subarray(0, 1);
          socket.write(`${piece.length.toString(16)}\r\n`);
          socket.write(piece);
          const more = socket.write("\r\n");
          sent += piece.length;
          if (!more) await new Promise((r) => socket.once("drain", r).once("close", r));
        }
        // No terminating chunk: the body never ends.
      });
      socket.setTimeout(60_000, () => socket.destroy(new Error(`no answer after ${sent} bytes`)));
      socket.on("data", (d) => {
        answered = true;
        raw += d;
      });
      let failure;
      socket.on("error", (e) => (failure = e));
      socket.on("close", () =>
        raw || !failure
          ? resolve({ status: Number(raw.match(/^HTTP\/1\.1 (\d+)/)?.[1]), text: raw, sent })
          : reject(failure),
      );
    });
    worker.expectedLogLines += 1;
    assert.equal(status, 413, text.slice(0, 500));
    assert.match(text, /exceeds the 26214400-byte limit/);
    assert.ok(sent < 8 * MAX_BODY, `answered while the upload went on (${sent} bytes sent)`);
    // Its log line arrives on its own time; wait for it, so the next test does not take it for its own.
    const line = await waitFor(() => worker.deliveryLogs.slice(before).find((l) => l.delivery === "chunked-forever"));
    assert.equal(line?.status, 413);
  });

  test("a publishing push of exactly 25 MiB is accepted and dispatched", async () => {
    const json = JSON.stringify(publishingPush());
    const payload = Buffer.alloc(MAX_BODY, 0x20);
    payload.write(json, 0, "utf8");
    const { status, body } = await worker.deliver(payload);
    assert.equal(status, 200);
    assert.equal(body.outcome, "dispatched");
    assert.equal(github.dispatches.length, 1);
  });
});

describe("signature (401) and secret rotation", () => {
  test("either configured secret is accepted (rotation)", async () => {
    for (const secret of [SECRET, NEW_SECRET]) {
      const { status, body } = await worker.deliver(ping(), { event: "ping", secret });
      assert.equal(status, 200, secret);
      assert.equal(body.reason, "pong");
    }
  });

  const unauthorized = [
    ["a missing signature", { signature: null }, "missing X-Hub-Signature-256 header"],
    [
      "another secret",
      { secret: "not-our-secret" },
      "X-Hub-Signature-256 does not match the body for any configured secret",
    ],
    [
      "an empty secret (a trailing comma in WEBHOOK_SECRET adds none)",
      { secret: "" },
      "X-Hub-Signature-256 does not match the body for any configured secret",
    ],
    [
      "the sha1 header format",
      { signature: "sha1=0123456789abcdef0123456789abcdef01234567" },
      "malformed X-Hub-Signature-256 header: expected the sha256= prefix",
    ],
    [
      "a short digest",
      { signature: "sha256=abc123" },
      "malformed X-Hub-Signature-256 header: expected 64 hex digits",
    ],
    [
      "64 characters that are not hex",
      { signature: "sha256=" + "zz".repeat(32) },
      "malformed X-Hub-Signature-256 header: expected 64 hex digits",
    ],
    [
      "non-ASCII bytes in the header",
      { signature: "sha256=" + "\u00e9".repeat(64) },
      "malformed X-Hub-Signature-256 header: expected 64 hex digits",
    ],
    [
      "a 10 KB header",
      { signature: "sha256=" + "a".repeat(10_000) },
      "malformed X-Hub-Signature-256 header: expected 64 hex digits",
    ],
  ];
  for (const [label, options, reason] of unauthorized) {
    test(label, async () => {
      const { status, body, log } = await worker.deliver(publishingPush(), options);
      assert.equal(status, 401);
      assert.equal(body.outcome, "rejected");
      assert.equal(body.reason, reason);
      assert.equal(log.level, "warn");
      assert.equal(github.requests.length, 0, "an unauthenticated delivery reaches nothing");
    });
  }

  test("the signature covers the raw bytes: a re-serialised body does not verify", async () => {
    const push = publishingPush();
    const compact = JSON.stringify(push);
    const pretty = JSON.stringify(push, null, 2);
    const { status } = await worker.deliver(pretty, { signature: sign(SECRET, compact) });
    assert.equal(status, 401);
    const ok = await worker.deliver(pretty, { signature: sign(SECRET, pretty) });
    assert.equal(ok.status, 200);
  });
});

describe("malformed deliveries (400)", () => {
  const badRequests = [
    ["no X-GitHub-Event header", publishingPush, { event: null }, /^missing X-GitHub-Event header$/],
    ["no X-GitHub-Delivery header", publishingPush, { delivery: null }, /^missing X-GitHub-Delivery header$/],
    [
      "a malformed X-GitHub-Delivery header",
      publishingPush,
      { delivery: "../../etc/passwd" },
      /^malformed X-GitHub-Delivery header$/,
    ],
    ["a body that is not JSON", () => "{not json", {}, /^payload is not valid JSON/],
    ["an empty ping body", () => "", { event: "ping" }, /^payload is empty$/],
    [
      "a push whose repository.full_name is a number",
      () => {
        const push = publishingPush();
        push.repository.full_name = 42;
        return push;
      },
      {},
      /^payload field repository\.full_name: invalid type/,
    ],
    [
      "a push without `after`",
      () => {
        const push = publishingPush();
        delete push.after;
        return push;
      },
      {},
      /after/,
    ],
    [
      "a form body without a payload field",
      () => "zen=hello",
      { contentType: "application/x-www-form-urlencoded" },
      /^form-encoded body has no payload field$/,
    ],
  ];
  for (const [label, payload, options, reason] of badRequests) {
    test(label, async () => {
      const { status, body } = await worker.deliver(payload(), options);
      assert.equal(status, 400);
      assert.equal(body.outcome, "rejected");
      assert.match(body.reason, reason);
      assert.equal(github.dispatches.length, 0);
    });
  }
});
