// Pull request deliveries through the real workerd runtime: the preview dispatch GitHub receives, a draft
// skipped until it is ready, the reasons for what is ignored, and the dedup of a redelivery.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { CENTRAL, GITHUB_API, fixtureJson, github, useWorker, worker } from "./harness.mjs";

useWorker();

let headCounter = 0;
/// The real `pull_request` payload with `action`, and a new head on every call.
function pullRequest(action, change = () => {}) {
  const pr = fixtureJson("pull_request/opened.payload.json");
  pr.action = action;
  headCounter += 1;
  pr.pull_request.head.sha = `ec26c3e57ca3${headCounter.toString(16).padStart(28, "0")}`;
  change(pr);
  return pr;
}

describe("a pull request into the publishing branch", () => {
  test("is dispatched as package_preview with its head, base and number", async () => {
    const pr = pullRequest("opened");
    const { status, body, log, delivery } = await worker.deliver(pr, { event: "pull_request" });
    assert.equal(status, 200, JSON.stringify(body));
    assert.deepEqual(body, {
      outcome: "dispatched",
      reason: `dispatched the preview of Codertocat/Hello-World#2 at ${pr.pull_request.head.sha.slice(0, 12)}`,
      delivery,
      event: "pull_request",
      repository: "Codertocat/Hello-World",
      branch: "master",
      commit_sha: pr.pull_request.head.sha,
      pull_request: 2,
      attempts: 1,
    });
    assert.equal(github.dispatches.length, 1);
    const [request] = github.dispatches;
    assert.equal(request.url, `${GITHUB_API}/repos/${CENTRAL}/dispatches`);
    assert.deepEqual(JSON.parse(request.body), {
      event_type: "package_preview",
      client_payload: {
        repository: "Codertocat/Hello-World",
        pull_request: 2,
        head_sha: pr.pull_request.head.sha,
        base_sha: pr.pull_request.base.sha,
        base_branch: "master",
        fork: false,
        delivery,
      },
    });
    assert.equal(log.event, "pull_request");
    assert.equal(log.pull_request, 2);
  });

  test("from a fork is previewed, marked as a fork", async () => {
    const pr = pullRequest("synchronize", (p) => (p.pull_request.head.repo.full_name = "Outsider/Hello-World"));
    const { body } = await worker.deliver(pr, { event: "pull_request" });
    assert.equal(body.outcome, "dispatched", body.reason);
    assert.equal(JSON.parse(github.dispatches.at(-1).body).client_payload.fork, true);
  });

  test("as a draft is skipped, then previewed once marked ready", async () => {
    const draft = pullRequest("opened", (p) => (p.pull_request.draft = true));
    const before = github.dispatches.length;
    const skipped = await worker.deliver(draft, { event: "pull_request" });
    assert.equal(skipped.status, 200);
    assert.equal(skipped.body.outcome, "ignored");
    assert.equal(skipped.body.reason, "pull request #2 is a draft: previewed once it is marked ready for review");
    assert.equal(github.dispatches.length, before);
    const ready = { ...draft, action: "ready_for_review", pull_request: { ...draft.pull_request, draft: false } };
    const previewed = await worker.deliver(ready, { event: "pull_request" });
    assert.equal(previewed.body.outcome, "dispatched", previewed.body.reason);
    assert.equal(github.dispatches.length, before + 1);
  });

  test("redelivered is a duplicate", async () => {
    const pr = pullRequest("reopened");
    const first = await worker.deliver(pr, { event: "pull_request" });
    assert.equal(first.body.outcome, "dispatched");
    const again = await worker.deliver(pr, { event: "pull_request", delivery: first.delivery });
    assert.equal(again.status, 200);
    assert.equal(again.body.outcome, "duplicate", again.body.reason);
  });
});

describe("a pull request that does not preview", () => {
  for (const [what, pr, reason] of [
    ["closed", () => pullRequest("closed"), "pull request #2 closed: only opened, synchronize, reopened, ready_for_review preview"],
    [
      "into another branch",
      () => pullRequest("opened", (p) => (p.pull_request.base.ref = "feature/x")),
      "pull request #2 into feature/x, but Codertocat/Hello-World publishes from master",
    ],
    [
      "of an unregistered repository",
      () => pullRequest("opened", (p) => (p.repository.full_name = "Studio/Unknown")),
      "Studio/Unknown is not in the registry (config/repositories.json)",
    ],
    [
      "of a disabled repository",
      () => pullRequest("opened", (p) => (p.repository.full_name = "Studio/Disabled-Repo")),
      "Studio/Disabled-Repo is disabled in the registry",
    ],
  ]) {
    test(`${what}: 200 ignored with the reason`, async () => {
      const before = github.dispatches.length;
      const { status, body } = await worker.deliver(pr(), { event: "pull_request" });
      assert.equal(status, 200);
      assert.equal(body.outcome, "ignored");
      assert.equal(body.reason, reason);
      assert.equal(github.dispatches.length, before);
    });
  }
});
