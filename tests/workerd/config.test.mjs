// Configuration in real workerd: DRY_RUN, a misconfigured worker (500), and the optional settings
// (IGNORE_SENDERS, REGISTRY_PATH, REGISTRY_TTL_SECONDS). One Miniflare, reconfigured per test
// (`worker.reconfigure` = a fresh isolate with the file's base bindings changed; KV is kept).

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  CENTRAL,
  GITHUB_API,
  KV_KEY,
  SECRET,
  VERSION,
  publishingPush,
  github,
  useWorker,
  worker,
} from "./harness.mjs";

useWorker();

const health = async () => (await worker.health()).body;

describe("DRY_RUN=true", () => {
  test("answers as if dispatched, says what it would send, and sends nothing", async () => {
    await worker.reconfigure({ DRY_RUN: "true", GITHUB_TOKEN: undefined });
    const push = publishingPush();
    const { status, body, log, delivery } = await worker.deliver(push);
    assert.equal(status, 200);
    assert.equal(body.outcome, "dispatched");
    assert.equal(body.dry_run, true);
    assert.equal(
      body.reason,
      "dry run: would dispatch Codertocat/Hello-World@8f1d2c3b4a59 (Packages/com.codertocat.hello)",
    );
    assert.equal(body.attempts, undefined, "no attempt was made");
    assert.deepEqual(body.would_dispatch, {
      url: `${GITHUB_API}/repos/${CENTRAL}/dispatches`,
      body: {
        event_type: "package_publish",
        client_payload: {
          repository: "Codertocat/Hello-World",
          commit_sha: push.after,
          commit_message: "feat: bump com.codertocat.hello to 1.1.0",
          commit_author: "Codertocat",
          branch: "master",
          package_path: "Packages/com.codertocat.hello",
          delivery,
        },
      },
    });
    assert.equal(log.dry_run, true);
    assert.deepEqual(log.would_dispatch, body.would_dispatch, "the log line shows the would-be dispatch");

    assert.equal(github.dispatches.length, 0, "nothing sent to GitHub");
    assert.ok(
      github.requests.every((r) => r.method === "GET" && r.headers.authorization === undefined),
      "only the registry was read, without a token (none is configured)",
    );
  });

  test("health reports dry_run and no problem without a token", async () => {
    const body = await health();
    assert.equal(body.status, "ok");
    assert.equal(body.dry_run, true);
    assert.deepEqual(body.problems, []);
  });
});

describe("a misconfigured worker answers 500, and only to authenticated senders", () => {
  test("no DISPATCH_REPO and no GITHUB_TOKEN", async () => {
    await worker.reconfigure({ DISPATCH_REPO: undefined, GITHUB_TOKEN: undefined });
    const problems = [
      "DISPATCH_REPO is not set (owner/name of the central repository)",
      "GITHUB_TOKEN is not set (or set DRY_RUN=true)",
    ];
    const { registry, ...rest } = await health();
    assert.deepEqual(rest, {
      status: "misconfigured",
      service: "upm-relay",
      version: VERSION,
      dispatch_repo: null,
      dry_run: false,
      registry_error: null,
      problems,
    });

    const { status, body, log } = await worker.deliver(publishingPush());
    assert.equal(status, 500);
    assert.equal(body.outcome, "failed");
    assert.equal(body.reason, `worker is not configured: ${problems.join("; ")}`);
    assert.equal(log.level, "error");

    const unsigned = await worker.deliver(publishingPush(), { secret: "guess" });
    assert.equal(unsigned.status, 401, "an unauthenticated sender learns nothing about the configuration");
    assert.equal(github.requests.length, 0);
  });

  test("no WEBHOOK_SECRET (blank entries count as none): every delivery is refused with 500", async () => {
    await worker.reconfigure({ WEBHOOK_SECRET: " , " });
    assert.deepEqual((await health()).problems, ["WEBHOOK_SECRET is not set"]);
    for (const options of [{}, { signature: "sha256=" + "0".repeat(64) }]) {
      const { status, body } = await worker.deliver(publishingPush(), options);
      assert.equal(status, 500);
      assert.equal(body.reason, "worker is not configured: no webhook secret is configured (set WEBHOOK_SECRET)");
    }
    // Without a well-formed signature header the request is refused before its body is read.
    assert.equal((await worker.deliver(publishingPush(), { signature: null })).status, 401);
    assert.equal(github.requests.length, 0);
  });

  test("unreadable values are named, never echoed; an unreadable DRY_RUN never sends", async () => {
    await worker.reconfigure({
      DRY_RUN: "maybe",
      GITHUB_API: "ftp://github.test",
      REGISTRY_TTL_SECONDS: "soon",
      DISPATCH_REPO: "not a repo",
    });
    const body = await health();
    assert.equal(body.status, "misconfigured");
    assert.equal(body.dry_run, true);
    assert.deepEqual(body.problems, [
      "DISPATCH_REPO is not an owner/name",
      "DRY_RUN must be true or false",
      "REGISTRY_TTL_SECONDS must be a whole number of seconds",
      "GITHUB_API must be an https:// URL",
    ]);
    const text = JSON.stringify(body);
    for (const value of ["maybe", "ftp://", "soon", "not a repo"]) assert.ok(!text.includes(value), value);
    const { status } = await worker.deliver(publishingPush());
    assert.equal(status, 500);
    assert.equal(github.requests.length, 0);
  });
});

describe("optional settings", () => {
  test("IGNORE_SENDERS replaces the default list, case-insensitively", async () => {
    await worker.reconfigure({ IGNORE_SENDERS: "upm-bot[bot], Release-Robot" });
    const byRobot = publishingPush();
    byRobot.sender.login = "release-robot";
    const ignored = await worker.deliver(byRobot);
    assert.equal(ignored.body.reason, "pushed by release-robot, the publisher's own account (loop guard)");

    const byActions = publishingPush();
    byActions.sender.login = "github-actions[bot]";
    const published = await worker.deliver(byActions);
    assert.equal(published.body.outcome, "dispatched");
    assert.equal(github.dispatches.length, 1);
  });

  test("REGISTRY_PATH is read from the contents API, percent-encoded", async () => {
    await (await worker.kv()).delete(KV_KEY);
    await worker.reconfigure({ REGISTRY_PATH: "/config/studio repos.json" });
    github.contentsPath = `/repos/${CENTRAL}/contents/config/studio repos.json`;
    try {
      const { status, body } = await worker.deliver(publishingPush());
      assert.equal(status, 200);
      assert.equal(body.outcome, "dispatched");
      assert.equal(github.registryFetches.length, 1);
      assert.equal(github.registryFetches[0].url, `${GITHUB_API}/repos/${CENTRAL}/contents/config/studio%20repos.json`);

      const unregistered = publishingPush();
      unregistered.repository.full_name = "Studio/Elsewhere";
      assert.equal(
        (await worker.deliver(unregistered)).body.reason,
        "Studio/Elsewhere is not in the registry (config/studio repos.json)",
      );
    } finally {
      github.contentsPath = `/repos/${CENTRAL}/contents/config/repositories.json`;
    }
  });

  test("REGISTRY_TTL_SECONDS=0 reads GitHub on every delivery", async () => {
    await worker.reconfigure({ REGISTRY_TTL_SECONDS: "0" });
    for (let i = 0; i < 3; i += 1) {
      assert.equal((await worker.deliver(publishingPush())).status, 200);
    }
    assert.equal(github.registryFetches.length, 3);
    assert.equal(github.dispatches.length, 3);
  });

  test("GITHUB_API with a trailing slash makes no double slash", async () => {
    await worker.reconfigure({ GITHUB_API: `${GITHUB_API}/` });
    assert.equal((await worker.deliver(publishingPush(), { secret: SECRET })).status, 200);
    assert.equal(github.dispatches[0].url, `${GITHUB_API}/repos/${CENTRAL}/dispatches`);
  });
});
