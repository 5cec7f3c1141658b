// The registry's tiers in real workerd: isolate memory → KV (`registry:v1:<central>:<path>`) → GitHub's contents API, the
// TTL, a stale copy winning over an outage, and the refresh when a push edits the registry file.
// `worker.restart()` starts a fresh isolate (empty memory tier) and keeps KV, like a cold start.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { beforeEach, describe, test } from "node:test";

import {
  CENTRAL,
  GITHUB_API,
  KV_KEY,
  REGISTRY,
  REGISTRY_PATH,
  REGISTRY_TEXT,
  ROOT,
  TOKEN,
  publishingPush,
  pushChanging,
  github,
  useWorker,
  worker,
} from "./harness.mjs";

useWorker();
beforeEach(() => {
  github.clear();
  github.registry = { status: 200, body: REGISTRY_TEXT };
});

/// The registry with Codertocat/Hello-World disabled: tells apart which copy the worker used.
const DISABLED_TEXT = JSON.stringify({
  repositories: REGISTRY.repositories.map((r) =>
    r.url.endsWith("Codertocat/Hello-World") ? { ...r, status: "disabled" } : r,
  ),
});
const HELLO_DISABLED = "Codertocat/Hello-World is disabled in the registry";

// KV stubs die with the isolate (setOptions), so every use asks Miniflare for a fresh one.
async function kvCopy() {
  const value = await (await worker.kv()).get(KV_KEY);
  return value === null ? null : JSON.parse(value);
}

/// The worker writes its copy after the response (ctx.waitUntil): waits for the copy of `document`.
function copyWritten(document) {
  return worker.kvWritten(KV_KEY, (copy) => copy?.document === document, "the registry copy");
}

/// Puts a copy in KV and starts a fresh isolate, so the next delivery meets that copy first.
async function coldStartWith(document, ageMs) {
  const kv = await worker.kv();
  if (document === null) await kv.delete(KV_KEY);
  else await kv.put(KV_KEY, JSON.stringify({ fetched_at_ms: Date.now() - ageMs, document }));
  await worker.restart();
}

describe("caching", () => {
  test("the first delivery reads the file from GitHub and stores it in KV", async () => {
    assert.equal(await kvCopy(), null, "KV starts empty");
    const started = Date.now();
    const { status, body } = await worker.deliver(publishingPush());
    assert.equal(status, 200);
    assert.equal(body.outcome, "dispatched");

    assert.equal(github.registryFetches.length, 1);
    const [fetch] = github.registryFetches;
    assert.equal(fetch.url, `${GITHUB_API}/repos/${CENTRAL}/contents/${REGISTRY_PATH}`);
    assert.equal(fetch.headers.accept, "application/vnd.github.raw+json");
    assert.equal(fetch.headers.authorization, `Bearer ${TOKEN}`);
    assert.equal(fetch.body, "");

    const copy = await copyWritten(REGISTRY_TEXT);
    assert.deepEqual(Object.keys(copy).sort(), ["document", "fetched_at_ms"]);
    assert.equal(copy.document, REGISTRY_TEXT, "KV keeps the file's text as served");
    assert.ok(
      copy.fetched_at_ms >= started - 1000 && copy.fetched_at_ms <= Date.now() + 1000,
      `fetched_at_ms ${copy.fetched_at_ms} is now`,
    );
  });

  test("the next delivery in the same isolate asks neither GitHub nor KV again", async () => {
    const { status } = await worker.deliver(publishingPush());
    assert.equal(status, 200);
    assert.equal(github.registryFetches.length, 0);
    const health = await worker.health();
    assert.equal(health.body.registry.tier, "memory");
  });

  test("a fresh isolate uses the fresh KV copy instead of GitHub", async () => {
    await worker.restart();
    assert.equal((await worker.health()).body.registry, null, "/health reads memory only");
    const { status, body } = await worker.deliver(publishingPush());
    assert.equal(status, 200);
    assert.equal(body.outcome, "dispatched");
    assert.equal(github.registryFetches.length, 0, "no GitHub request while the KV copy is fresh");
    const { entries, age_seconds, tier } = (await worker.health()).body.registry;
    assert.deepEqual({ entries, tier }, { entries: 4, tier: "memory" });
    assert.ok(age_seconds >= 0 && age_seconds <= 5, `age ${age_seconds}`);
  });

  test("what KV holds is the registry in effect while it is fresh", async () => {
    await coldStartWith(DISABLED_TEXT, 5_000);
    const { status, body } = await worker.deliver(publishingPush());
    assert.equal(status, 200);
    assert.equal(body.reason, HELLO_DISABLED);
    assert.equal(github.registryFetches.length, 0);
    assert.equal(github.dispatches.length, 0);
  });

  test("a KV copy older than REGISTRY_TTL_SECONDS is refreshed from GitHub and rewritten", async () => {
    await coldStartWith(DISABLED_TEXT, 120_000);
    const { status, body } = await worker.deliver(publishingPush());
    assert.equal(status, 200);
    assert.equal(body.outcome, "dispatched", "GitHub's copy (active) wins over the stale one");
    assert.equal(github.registryFetches.length, 1);
    const copy = await copyWritten(REGISTRY_TEXT);
    assert.ok(Date.now() - copy.fetched_at_ms < 10_000, "KV holds the new fetch time");
  });

  test("the value scripts/registry-kv-value.mjs prints (dev.sh's seed) is read as a KV copy", async () => {
    const value = execFileSync(process.execPath, [join(ROOT, "scripts/registry-kv-value.mjs"), "tests/fixtures/registry.json"], {
      cwd: ROOT,
      encoding: "utf8",
    });
    await (await worker.kv()).put(KV_KEY, value);
    await worker.restart();
    const { status, body } = await worker.deliver(publishingPush());
    assert.equal(status, 200);
    assert.equal(body.outcome, "dispatched");
    assert.equal(github.registryFetches.length, 0);
    const health = await worker.health();
    assert.equal(health.body.registry.entries, 4, "tests/fixtures/registry.json registers four repositories");
  });
});

describe("when GitHub cannot serve the registry", () => {
  for (const [label, failure, why] of [
    ["a 500", { status: 500, body: '{"message":"Server Error"}' }, "GitHub answered 500: Server Error"],
    ["a network error", "network", "network error: "],
  ]) {
    test(`a stale KV copy is used over ${label}, and the log says so`, async () => {
      await coldStartWith(REGISTRY_TEXT, 3_600_000);
      const before = await kvCopy();
      github.registry = failure;
      const { status, body, log } = await worker.deliver(publishingPush());
      assert.equal(status, 200);
      assert.equal(body.outcome, "dispatched");
      assert.equal(github.registryFetches.length, 1);
      assert.equal(github.dispatches.length, 1);
      assert.equal(log.level, "warn");
      assert.equal(log.notes.length, 2, JSON.stringify(log.notes));
      assert.ok(log.notes[0].startsWith(`registry: reading ${REGISTRY_PATH} from ${CENTRAL}: `), log.notes[0]);
      assert.ok(log.notes[0].includes(why), log.notes[0]);
      assert.match(log.notes[1], /^registry: using the copy from 360[0-2] s ago$/);
      assert.ok(!body.reason.includes("network error:"), "the runtime's text stays in the log");
      assert.deepEqual(await kvCopy(), before, "the stale copy is kept as it was");

      // For 30 s the failure holds: the next delivery does not ask GitHub again.
      const next = await worker.deliver(publishingPush());
      assert.equal(next.body.outcome, "dispatched");
      assert.equal(github.registryFetches.length, 1, "one request per 30 s during an outage");
    });
  }

  test("with no copy anywhere: 502, so GitHub records a failed delivery; then it recovers", async () => {
    await coldStartWith(null);
    github.registry = { status: 503, body: '{"message":"Service Unavailable"}' };
    const failed = await worker.deliver(publishingPush());
    assert.equal(failed.status, 502);
    assert.equal(failed.body.outcome, "failed");
    assert.equal(
      failed.body.reason,
      `registry unavailable and no cached copy: reading ${REGISTRY_PATH} from ${CENTRAL}: GitHub answered 503: Service Unavailable`,
    );
    assert.equal(github.dispatches.length, 0);
    assert.equal(await kvCopy(), null);

    // Within 30 s the isolate does not ask again; a new isolate (or the same one later) does.
    github.registry = { status: 200, body: REGISTRY_TEXT };
    assert.equal((await worker.deliver(publishingPush())).status, 502);
    assert.equal(github.registryFetches.length, 1, "the failure holds for 30 s");
    await worker.restart();
    const redelivered = await worker.deliver(publishingPush(), { delivery: failed.delivery });
    assert.equal(redelivered.status, 200);
    assert.equal(redelivered.body.outcome, "dispatched");
    await copyWritten(REGISTRY_TEXT);
  });

  test("an invalid registry file is never cached, and names what is wrong (a configuration error: 500)", async () => {
    await coldStartWith(null);
    github.registry = { status: 200, body: '{"repositories":[{"url":"Studio/A","status":"enabled"}]}' };
    const { status, body, log } = await worker.deliver(publishingPush());
    assert.equal(status, 500);
    assert.equal(log.level, "error");
    assert.match(body.reason, new RegExp(`^worker is not configured: ${REGISTRY_PATH} in ${CENTRAL} is invalid: repositories\\[0\\]\\.status: `));
    assert.equal(await kvCopy(), null);
  });

  test("a registry with a merge-conflict marker after valid JSON is invalid", async () => {
    await coldStartWith(null);
    github.registry = { status: 200, body: `${REGISTRY_TEXT}<<<<<<< HEAD\n` };
    const { status, body } = await worker.deliver(publishingPush());
    assert.equal(status, 500);
    assert.match(body.reason, /data after the JSON document/);
  });

  for (const code of [401, 403, 404]) {
    test(`a ${code} from the contents API is a configuration error (500), not an outage`, async () => {
      await coldStartWith(null);
      github.registry = { status: code, body: '{"message":"Not Found"}' };
      const { status, body, log } = await worker.deliver(publishingPush());
      assert.equal(status, 500);
      assert.equal(log.level, "error");
      assert.match(body.reason, /check DISPATCH_REPO, REGISTRY_PATH and the token's access/);
    });
  }

  test("a copy older than REGISTRY_MAX_STALE_SECONDS still serves, but the line is an error and /health says stale", async () => {
    await worker.reconfigure({ REGISTRY_MAX_STALE_SECONDS: "600" });
    await coldStartWith(REGISTRY_TEXT, 3_600_000);
    github.registry = { status: 503, body: "{}" };
    const { status, body, log } = await worker.deliver(publishingPush());
    assert.equal(status, 200);
    assert.equal(body.outcome, "dispatched");
    assert.equal(log.level, "error");
    assert.equal((await worker.health({ anonymous: true })).body.status, "stale");
    await worker.reconfigure({});
  });

  test("a KV copy dated a year ahead is not fresh forever", async () => {
    const kv = await worker.kv();
    await kv.put(KV_KEY, JSON.stringify({ fetched_at_ms: Date.now() + 365 * 86_400_000, document: DISABLED_TEXT }));
    await worker.restart();
    const { body } = await worker.deliver(publishingPush());
    assert.equal(body.outcome, "dispatched", "GitHub's copy (active) was read");
    assert.equal(github.registryFetches.length, 1);
  });

  test("an invalid file on GitHub does not replace a stale good copy", async () => {
    await coldStartWith(REGISTRY_TEXT, 3_600_000);
    github.registry = { status: 200, body: "not json" };
    const { status, body, log } = await worker.deliver(publishingPush());
    assert.equal(status, 200);
    assert.equal(body.outcome, "dispatched");
    assert.match(log.notes[0], /is invalid/);
    assert.equal(log.level, "error", "someone must fix the file");
    assert.equal((await kvCopy()).document, REGISTRY_TEXT);
  });
});

describe("a push that edits the registry file", () => {
  test("refreshes the copy at once, inside the TTL", async () => {
    await coldStartWith(REGISTRY_TEXT, 0);
    assert.equal((await worker.deliver(publishingPush())).body.outcome, "dispatched");
    assert.equal(github.registryFetches.length, 0, "the fresh KV copy served");

    // Someone disables Hello-World in the central repository and pushes.
    github.registry = { status: 200, body: DISABLED_TEXT };
    const edit = pushChanging([{ modified: [REGISTRY_PATH] }]);
    edit.repository.full_name = CENTRAL.toLowerCase();
    edit.repository.default_branch = "main";
    edit.ref = "refs/heads/main";
    const { status, body, log } = await worker.deliver(edit);
    assert.equal(status, 200);
    assert.equal(body.reason, "no package.json added or modified");
    assert.deepEqual(log.notes, ["registry: refreshed because this push changed it"]);
    assert.equal(github.registryFetches.length, 1);
    assert.equal(github.registryFetches[0].url, `${GITHUB_API}${github.contentsPath}?ref=${edit.after}`, "read as of the pushed commit");
    await copyWritten(DISABLED_TEXT);

    const next = await worker.deliver(publishingPush());
    assert.equal(next.body.reason, HELLO_DISABLED, "the edit is in effect for the very next delivery");
    assert.equal(github.registryFetches.length, 1);
  });

  test("an edit on another branch of the central repository changes nothing yet", async () => {
    await coldStartWith(REGISTRY_TEXT, 0);
    const edit = pushChanging([{ modified: [REGISTRY_PATH] }]);
    edit.repository.full_name = CENTRAL;
    edit.repository.default_branch = "main";
    edit.ref = "refs/heads/edit-registry";
    const { log } = await worker.deliver(edit);
    assert.equal(log.notes, undefined);
    assert.equal(github.registryFetches.length, 0);
  });

  test("the same file path in another repository changes nothing", async () => {
    await coldStartWith(REGISTRY_TEXT, 0);
    const other = pushChanging([{ modified: [REGISTRY_PATH] }]);
    const { log } = await worker.deliver(other);
    assert.equal(log.notes, undefined);
    assert.equal(github.registryFetches.length, 0);
  });
});
