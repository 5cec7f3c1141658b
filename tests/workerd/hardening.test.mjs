// Hardening in real workerd: the WebCrypto signature check against the shared vectors, a body shorter
// than its Content-Length, the one request deadline against a GitHub that stalls, deliveries in flight
// twice at once, and one push delivered under two ids.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import { describe, test } from "node:test";

import { ROOT, SECRET, publishingPush, github, sign, useWorker, waitFor, worker } from "./harness.mjs";

useWorker();

describe("signature vectors (tests/fixtures/signature-vectors.json), checked by WebCrypto", () => {
  const { vectors } = JSON.parse(readFileSync(join(ROOT, "tests/fixtures/signature-vectors.json"), "utf8"));
  const bySecrets = Map.groupBy(vectors, (v) => v.secrets);
  for (const [secrets, group] of bySecrets) {
    test(`WEBHOOK_SECRET=${JSON.stringify(secrets.slice(0, 24))}…: ${group.length} vectors`, async () => {
      await worker.reconfigure({ WEBHOOK_SECRET: secrets });
      try {
        for (const v of group) {
          const { status, body } = await worker.deliver(v.body, { event: "ping", signature: v.header });
          if (v.expect === "match") {
            assert.notEqual(status, 401, `${v.name}: ${body.reason}`);
          } else {
            assert.equal(status, 401, v.name);
            const expected = v.expect === "mismatch" ? /does not match/ : /^(missing|malformed) X-Hub-Signature-256/;
            assert.match(body.reason, expected, v.name);
          }
        }
      } finally {
        await worker.reconfigure({});
      }
    });
  }
});

/// Writes a request on a raw socket: headers, then `body`, then half-closes (what a client that gave up
/// mid-upload does). Resolves the parsed answer.
function halfClosed(headers, body) {
  return new Promise(async (resolve, reject) => {
    const url = new URL(await worker.mf.ready);
    const socket = net.connect(Number(url.port), url.hostname, () => {
      const lines = Object.entries({ Host: url.host, Connection: "close", ...headers }).map(([k, v]) => `${k}: ${v}`);
      socket.write(`POST / HTTP/1.1\r\n${lines.join("\r\n")}\r\n\r\n`);
      socket.end(body);
    });
    let raw = "";
    socket.setTimeout(15_000, () => socket.destroy(new Error("no answer within 15 s")));
    socket.on("data", (d) => (raw += d));
    socket.on("error", reject);
    socket.on("close", () => {
      const status = Number(raw.match(/^HTTP\/1\.1 (\d+)/)?.[1]);
      resolve({ status, text: raw.slice(raw.indexOf("\r\n\r\n") + 4) });
    });
  });
}

describe("a body shorter than its Content-Length", () => {
  test("is the client's fault: 400 naming the delivery, logged at warn, not 500", async () => {
    const push = JSON.stringify(publishingPush());
    const sent = Buffer.from(push.slice(0, 100));
    const before = worker.deliveryLogs.length;
    const { status, text } = await halfClosed(
      {
        "Content-Type": "application/json",
        "Content-Length": String(Buffer.byteLength(push)),
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": "half-closed-1",
        "X-Hub-Signature-256": sign(SECRET, push),
      },
      sent,
    );
    assert.equal(status, 400, text);
    const body = JSON.parse(text.trim().split("\r\n").find((l) => l.startsWith("{")) ?? text);
    assert.equal(body.delivery, "half-closed-1");
    assert.match(body.reason, /could not be read in full/);
    worker.expectedLogLines += 1;
    const line = await waitFor(() => worker.deliveryLogs.slice(before).find((l) => l.delivery === "half-closed-1"));
    assert.ok(line, "logged with its delivery id");
    assert.equal(line.level, "warn");
    assert.equal(github.requests.length, 0);
  });
});

describe("one deadline per request", () => {
  test("a dispatch that stalls for 20 s is cut off at the deadline and answered 502, not 'dispatched' after 20 s", async () => {
    await worker.deliver(publishingPush()); // the registry into memory
    github.clear();
    github.failNext({ status: 204, delayMs: 20_000 });
    const started = Date.now();
    const { status, body, log } = await worker.deliver(publishingPush());
    const took = Date.now() - started;
    assert.equal(status, 502, JSON.stringify(body));
    assert.ok(took < 9_500, `answered after ${took} ms, inside GitHub's 10 s`);
    assert.ok(took >= 7_000, `waited for the deadline (${took} ms)`);
    assert.match(body.reason, /no answer within \d+ ms/);
    assert.match(log.notes.join(" "), /dispatch attempt 1: no answer within/);
  });
});

describe("copies of one push", () => {
  test("two copies of one delivery in flight at once: one dispatches, the other is 409 (redeliverable)", async () => {
    await worker.deliver(publishingPush());
    github.clear();
    github.failNext({ status: 204, delayMs: 500 });
    const body = Buffer.from(JSON.stringify(publishingPush()));
    const init = () => ({
      method: "POST",
      body,
      headers: {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": "in-flight-twice-1",
        "X-Hub-Signature-256": sign(SECRET, body),
      },
    });
    // Straight to Miniflare: the harness pairs a response with "the next" log line, which two requests
    // at once would confuse.
    const answers = await Promise.all([1, 2].map(() => worker.mf.dispatchFetch("http://worker.test/", init())));
    const results = await Promise.all(answers.map(async (r) => ({ status: r.status, body: await r.json() })));
    worker.expectedLogLines += 2;
    await waitFor(() => worker.deliveryLogs.filter((l) => l.delivery === "in-flight-twice-1").length === 2);
    const statuses = results.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 409], results.map((r) => r.body.reason).join(" / "));
    assert.equal(results.find((r) => r.status === 409).body.outcome, "duplicate");
    assert.equal(github.dispatches.length, 1);
  });

  test("one push under two delivery ids (an org hook and a repository hook): dispatched once", async () => {
    const push = publishingPush();
    const first = await worker.deliver(push);
    assert.equal(first.body.outcome, "dispatched");
    await worker.kvWritten(`push:${push.repository.full_name.toLowerCase()}:${push.after}`, Boolean, "the push's dedup record");
    await worker.restart(); // another isolate: only KV knows
    const second = await worker.deliver(push);
    assert.equal(second.status, 200);
    assert.equal(second.body.outcome, "duplicate");
    assert.match(second.body.reason, /the same push arrived twice/);
    assert.equal(github.dispatches.length, 1);
  });
});
