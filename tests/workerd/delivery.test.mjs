// Deliveries through the real workerd runtime: what publishes (and the exact dispatch GitHub receives),
// what is ignored and why, and what happens when GitHub refuses or fails the dispatch.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  CENTRAL,
  GITHUB_API,
  TOKEN,
  VERSION,
  fixture,
  publishingPush,
  pushChanging,
  github,
  useWorker,
  worker,
} from "./harness.mjs";

useWorker();


function onlyDispatch() {
  assert.equal(github.dispatches.length, 1, "exactly one dispatch");
  return JSON.parse(github.dispatches[0].body);
}

describe("a push that publishes", () => {
  test("is dispatched with exactly the request GitHub documents", async () => {
    const push = publishingPush();
    const SHA = push.after;
    const { status, body, log, delivery } = await worker.deliver(push);
    assert.equal(status, 200);
    assert.deepEqual(body, {
      outcome: "dispatched",
      reason: "dispatched Codertocat/Hello-World@8f1d2c3b4a59 (Packages/com.codertocat.hello)",
      delivery,
      event: "push",
      repository: "Codertocat/Hello-World",
      branch: "master",
      commit_sha: SHA,
      package_path: "Packages/com.codertocat.hello",
      attempts: 1,
    });

    assert.equal(github.dispatches.length, 1);
    const [request] = github.dispatches;
    assert.equal(request.url, `${GITHUB_API}/repos/${CENTRAL}/dispatches`);
    assert.equal(request.headers.authorization, `Bearer ${TOKEN}`);
    assert.equal(request.headers.accept, "application/vnd.github+json");
    assert.equal(request.headers["content-type"], "application/json");
    assert.equal(request.headers["x-github-api-version"], "2022-11-28");
    assert.equal(request.headers["user-agent"], `upm-relay/${VERSION}`);
    const dispatched = JSON.parse(request.body);
    assert.deepEqual(dispatched, {
      event_type: "package_publish",
      client_payload: {
        repository: "Codertocat/Hello-World",
        commit_sha: SHA,
        commit_message: "feat: bump com.codertocat.hello to 1.1.0",
        commit_author: "Codertocat",
        branch: "master",
        package_path: "Packages/com.codertocat.hello",
        delivery,
      },
    });
    assert.ok(Object.keys(dispatched.client_payload).length <= 10, "GitHub allows 10 properties");

    assert.equal(log.level, "info");
    assert.equal(log.delivery, delivery);
    assert.equal(log.event, "push");
    assert.equal(log.repository, "Codertocat/Hello-World");
    assert.equal(log.commit_sha, SHA);
    assert.equal(log.attempts, 1);
    assert.equal(log.notes, undefined);
  });

  test("is taken at /webhook too", async () => {
    const { status, body } = await worker.deliver(publishingPush(), { path: "/webhook" });
    assert.equal(status, 200);
    assert.equal(body.outcome, "dispatched");
    assert.equal(github.dispatches.length, 1);
  });

  test("form-encoded (payload=…) is read and verified over the raw form body", async () => {
    const { status, body, delivery } = await worker.deliver(publishingPush(), { form: true });
    assert.equal(status, 200);
    assert.equal(body.outcome, "dispatched");
    assert.equal(onlyDispatch().client_payload.delivery, delivery);
    assert.equal(onlyDispatch().client_payload.package_path, "Packages/com.codertocat.hello");
  });

  test("a unicode and emoji commit message reaches GitHub unchanged", async () => {
    const push = publishingPush();
    const message = "feat: 🎉 ünïcode — 日本語 release 🚀\n\nCo-authored-by: Zoë <zoe@example.com>";
    push.head_commit.message = message;
    push.head_commit.author.name = "Zoë Ångström";
    const { status } = await worker.deliver(push);
    assert.equal(status, 200);
    const { client_payload } = onlyDispatch();
    assert.equal(client_payload.commit_message, message);
    assert.equal(client_payload.commit_author, "Zoë Ångström");
  });

  test("a very long emoji message is cut on a character boundary, well under 64 KB", async () => {
    const push = publishingPush();
    push.head_commit.message = "🚀 ünïcode ".repeat(3000);
    const { status } = await worker.deliver(push);
    assert.equal(status, 200);
    const raw = github.dispatches[0].body;
    assert.ok(Buffer.byteLength(raw) < 64 * 1024, `${Buffer.byteLength(raw)} bytes`);
    const { commit_message } = JSON.parse(raw).client_payload;
    assert.ok(Buffer.byteLength(commit_message) <= 4096, `${Buffer.byteLength(commit_message)} bytes`);
    assert.ok(commit_message.endsWith("… [truncated]"), commit_message.slice(-40));
    assert.ok(!commit_message.includes("\uFFFD"), "no broken character");
    assert.ok(push.head_commit.message.startsWith(commit_message.slice(0, -"… [truncated]".length)));
  });

  test("several package.json files become a comma-separated package_path, in order", async () => {
    const push = pushChanging([
      { modified: ["Packages/com.studio.a/package.json", "Packages/com.studio.a/Runtime/A.cs"] },
      { added: ["package.json", "Packages/com.studio.b/package.json"] },
    ]);
    const { status, body } = await worker.deliver(push);
    assert.equal(status, 200);
    assert.equal(body.package_path, "Packages/com.studio.a,.,Packages/com.studio.b");
    assert.equal(onlyDispatch().client_payload.package_path, "Packages/com.studio.a,.,Packages/com.studio.b");
  });

  test("a push at GitHub's 2048-commit cap (files unknown) asks the publisher to find every package", async () => {
    const push = pushChanging(Array.from({ length: 2048 }, () => ({ modified: ["README.md"] })));
    const { status, body } = await worker.deliver(push);
    assert.equal(status, 200);
    assert.equal(body.reason, "dispatched Codertocat/Hello-World@8f1d2c3b4a59 (every package)");
    assert.equal(onlyDispatch().client_payload.package_path, "*");
  });

  test("more package directories than fit in the payload: every package", async () => {
    const manifests = Array.from({ length: 1000 }, (_, i) => `Packages/com.studio.package-number-${i}/package.json`);
    const { status, body } = await worker.deliver(pushChanging([{ modified: manifests }]));
    assert.equal(status, 200);
    assert.equal(body.package_path, "*");
    assert.ok(Buffer.byteLength(github.dispatches[0].body) < 64 * 1024);
  });

  test("the registry lookup ignores case", async () => {
    const push = publishingPush();
    push.repository.full_name = "CODERTOCAT/hello-world";
    const { status, body } = await worker.deliver(push);
    assert.equal(status, 200);
    assert.equal(body.outcome, "dispatched");
    assert.equal(onlyDispatch().client_payload.repository, "CODERTOCAT/hello-world");
  });

  test("a registry branch override publishes from that branch, not the default", async () => {
    const push = publishingPush();
    push.repository.full_name = "Studio/Release-Train";
    push.repository.default_branch = "main";
    push.ref = "refs/heads/release";
    const published = await worker.deliver(push);
    assert.equal(published.status, 200);
    assert.equal(published.body.outcome, "dispatched");
    assert.equal(onlyDispatch().client_payload.branch, "release");

    github.clear();
    push.ref = "refs/heads/main";
    const ignored = await worker.deliver(push);
    assert.equal(ignored.status, 200);
    assert.equal(ignored.body.outcome, "ignored");
    assert.equal(ignored.body.reason, "push to main, but Studio/Release-Train publishes from release");
    assert.equal(github.dispatches.length, 0);
  });
});

describe("deliveries that are acknowledged and ignored (200, nothing dispatched)", () => {
  const ignoredCases = [
    {
      name: "ping (real payload) answers pong",
      payload: () => fixture("ping/payload.json"),
      event: "ping",
      reason: "pong",
    },
    {
      name: "another event (real issues payload)",
      payload: () => fixture("issues/opened.payload.json"),
      event: "issues",
      reason: "issues events are not acted on: only push publishes",
    },
    {
      name: "a release event (real payload)",
      payload: () => fixture("release/published.payload.json"),
      event: "release",
      reason: "release events are not acted on: only push publishes",
    },
    {
      name: "a tag push (real payload)",
      payload: () => fixture("push/payload.json"),
      reason: "tag push (simple-tag): only branch pushes publish",
    },
    {
      name: "a push that adds only README.md (real payload)",
      payload: () => fixture("push/with-new-branch.payload.json"),
      reason: "no package.json added or modified",
    },
    {
      name: "a deleted branch",
      payload: () => Object.assign(publishingPush(), { deleted: true, after: "0".repeat(40) }),
      reason: "branch master was deleted",
    },
    {
      name: "a push to another branch",
      payload: () => Object.assign(publishingPush(), { ref: "refs/heads/feature/x" }),
      reason: "push to feature/x, but Codertocat/Hello-World publishes from master",
    },
    {
      name: "an unregistered repository",
      payload: () => {
        const push = publishingPush();
        push.repository.full_name = "Studio/Unknown";
        return push;
      },
      reason: "Studio/Unknown is not in the registry (config/repositories.json)",
    },
    {
      name: "a disabled repository",
      payload: () => {
        const push = publishingPush();
        push.repository.full_name = "studio/disabled-repo";
        return push;
      },
      reason: "studio/disabled-repo is disabled in the registry",
    },
    {
      name: "a pending repository",
      payload: () => {
        const push = publishingPush();
        push.repository.full_name = "Studio/Pending-Repo";
        return push;
      },
      reason: "Studio/Pending-Repo is pending in the registry",
    },
    {
      name: "my-package.json is not a package manifest",
      payload: () => pushChanging([{ modified: ["Packages/com.studio.a/my-package.json"] }]),
      reason: "no package.json added or modified",
    },
    {
      name: "a package.json that was only removed",
      payload: () => pushChanging([{ removed: ["Packages/com.studio.a/package.json"] }]),
      reason: "no package.json added or modified",
    },
    {
      name: "a package.json added, then removed in the same push",
      payload: () =>
        pushChanging([
          { added: ["Packages/com.studio.a/package.json"] },
          { removed: ["Packages/com.studio.a/package.json"] },
        ]),
      reason: "no package.json added or modified",
    },
    {
      name: "a vendored node_modules/…/package.json",
      payload: () => pushChanging([{ modified: ["Tools/node_modules/left-pad/package.json"] }]),
      reason: "no package.json added or modified",
    },
    {
      name: "the publisher's own commit ([skip ci], loop guard)",
      payload: () => {
        const push = publishingPush();
        push.head_commit.message = "chore: changelog for 1.1.0 [skip ci]";
        return push;
      },
      reason: "head commit message contains [skip ci] (loop guard)",
    },
    {
      name: "a push by the publisher's bot account (IGNORE_SENDERS, loop guard)",
      payload: () => {
        const push = publishingPush();
        push.sender.login = "github-actions[bot]";
        return push;
      },
      reason: "pushed by github-actions[bot], the publisher's own account (loop guard)",
    },
  ];

  for (const { name, payload, event = "push", reason } of ignoredCases) {
    test(name, async () => {
      const { status, body, log } = await worker.deliver(payload(), { event });
      assert.equal(status, 200);
      assert.equal(body.outcome, "ignored");
      assert.equal(body.reason, reason);
      assert.equal(body.event, event);
      assert.equal(github.dispatches.length, 0, "nothing dispatched");
      assert.equal(log.level, "info");
    });
  }
});

describe("when GitHub refuses or fails the dispatch", () => {
  test("three 500s: 502 after 3 attempts with 250 and 500 ms between them", async () => {
    github.failNext(500, 500, 500);
    const started = Date.now();
    const { status, body, log } = await worker.deliver(publishingPush());
    const took = Date.now() - started;
    assert.equal(status, 502);
    assert.equal(body.outcome, "failed");
    assert.equal(body.attempts, 3);
    assert.equal(
      body.reason,
      `repository_dispatch to ${CENTRAL} failed: GitHub answered 500: Server Error 500 (after 3 attempts)`,
    );
    assert.equal(github.dispatches.length, 3);
    assert.ok(
      github.dispatches.every((r) => r.body === github.dispatches[0].body),
      "every attempt sends the same body",
    );
    assert.ok(took >= 700, `backoff waited (${took} ms)`);
    assert.equal(log.level, "error");
    assert.deepEqual(log.notes, [
      "dispatch attempt 1 failed (GitHub answered 500: Server Error 500); retrying in 250 ms",
      "dispatch attempt 2 failed (GitHub answered 500: Server Error 500); retrying in 500 ms",
    ]);
  });

  test("a 401 is final: 502 after one attempt, naming GitHub's message", async () => {
    github.failNext(401);
    const { status, body } = await worker.deliver(publishingPush());
    assert.equal(status, 502);
    assert.equal(body.outcome, "failed");
    assert.equal(body.attempts, 1);
    assert.equal(body.reason, `repository_dispatch to ${CENTRAL} failed: GitHub answered 401: Bad credentials`);
    assert.equal(github.dispatches.length, 1);
  });

  test("network errors (connection reset) are retried, then 502", async () => {
    github.failNext("network", "network", "network");
    const { status, body, log } = await worker.deliver(publishingPush());
    assert.equal(status, 502);
    assert.equal(body.attempts, 3);
    // The body (stored on GitHub's Recent Deliveries page) never carries the runtime's own error text;
    // the log line's notes do.
    assert.equal(body.reason, `repository_dispatch to ${CENTRAL} failed: network error (after 3 attempts)`);
    assert.match(log.notes.join(" "), /dispatch attempt 1: network error: /);
    assert.equal(github.dispatches.length, 3);
  });

  test("a 500 then a 204: dispatched on the second attempt, the retry noted in the log", async () => {
    github.failNext(500);
    const { status, body, log } = await worker.deliver(publishingPush());
    assert.equal(status, 200);
    assert.equal(body.outcome, "dispatched");
    assert.equal(body.attempts, 2);
    assert.equal(github.dispatches.length, 2);
    assert.equal(log.level, "warn", "a retried dispatch is worth a look");
    assert.equal(log.notes.length, 1);
  });

  test("a network error then a 204: dispatched on the second attempt", async () => {
    github.failNext("network");
    const { status, body } = await worker.deliver(publishingPush());
    assert.equal(status, 200);
    assert.equal(body.attempts, 2);
  });

  test("a 429 with Retry-After is honoured, then dispatched", async () => {
    github.failNext({ status: 429, body: '{"message":"slow down"}', headers: { "Retry-After": "1" } });
    const started = Date.now();
    const { status, body } = await worker.deliver(publishingPush());
    assert.equal(status, 200);
    assert.equal(body.attempts, 2);
    assert.ok(Date.now() - started >= 950, "waited for Retry-After: 1");
  });

  test("a 429 asking for longer than GitHub's delivery timeout is not waited for: 502", async () => {
    github.failNext({ status: 429, body: '{"message":"slow down"}', headers: { "Retry-After": "60" } });
    const started = Date.now();
    const { status, body } = await worker.deliver(publishingPush());
    assert.equal(status, 502);
    assert.match(body.reason, /deadline/);
    assert.ok(Date.now() - started < 5000);
    assert.equal(github.dispatches.length, 1);
  });
});

// dedup: GitHub redelivers with the same X-GitHub-Delivery; one that was dispatched is answered
// "duplicate", one that failed goes through again.
describe("redeliveries", () => {
  test("a redelivery of a dispatched delivery answers duplicate and dispatches nothing", async () => {
    const push = publishingPush(); // "Redeliver" sends the same payload under the same id
    const first = await worker.deliver(push, { delivery: "redelivered-1" });
    assert.equal(first.body.outcome, "dispatched");
    const stored = await worker.kvWritten(`push:codertocat/hello-world:${push.after}`, Boolean, "the push's dedup record");
    assert.equal(stored.repository, "Codertocat/Hello-World");
    assert.equal(stored.delivery, "redelivered-1");
    await worker.restart(); // another isolate: the KV record answers, not the isolate's memory
    const again = await worker.deliver(push, { delivery: "redelivered-1" });
    assert.equal(again.status, 200);
    assert.equal(again.body.outcome, "duplicate");
    assert.match(again.body.reason, /^already dispatched Codertocat\/Hello-World@[0-9a-f]{12} \d+ s ago; this is a redelivery$/);
    assert.equal(github.dispatches.length, 1);
  });

  test("a delivery that failed is dispatched when GitHub redelivers it", async () => {
    github.failNext({ status: 500 }, { status: 500 }, { status: 500 });
    const push = publishingPush();
    const failed = await worker.deliver(push, { delivery: "redelivered-2" });
    assert.equal(failed.status, 502);
    // A failed dispatch leaves no record to write (the native delivery tests check the reply's writes);
    // the redelivery below would answer "duplicate" if one were there.
    assert.equal(await (await worker.kv()).get(`push:codertocat/hello-world:${push.after}`), null);
    const again = await worker.deliver(push, { delivery: "redelivered-2" });
    assert.equal(again.body.outcome, "dispatched");
  });

  test("a non-JSON error page from upstream is not echoed to the sender", async () => {
    github.failNext(
      ...Array(3).fill({ status: 503, body: "<html><body>proxy internals</body></html>", headers: { "Content-Type": "text/html" } }),
    );
    const { status, body } = await worker.deliver(publishingPush());
    assert.equal(status, 502);
    assert.doesNotMatch(body.reason, /proxy internals/);
    assert.match(body.reason, /GitHub answered 503: a \d+-byte body that is not GitHub's JSON error/);
  });
});
