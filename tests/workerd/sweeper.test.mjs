// The scheduled sweeper in real workerd: the cron handler lists the organization hook's deliveries from a
// fake GitHub (cursor pages via the Link header), and asks GitHub to redeliver what failed and was never
// dispatched, reading the worker's own KV (dedup record, per-delivery sweep record).

import assert from "node:assert/strict";
import { beforeEach, describe, test } from "node:test";

import { GITHUB_API, RoutedGitHub, TOKEN, publishingPush, runScheduled, useWorker, worker, github } from "./harness.mjs";

useWorker({ github: new RoutedGitHub(), bindings: { GITHUB_ORG: "Studio", HOOK_ID: "42" } });
beforeEach(() => github.routes.clear());

const HOOK = "/orgs/Studio/hooks/42/deliveries";
const FIRST_PAGE = `${HOOK}?per_page=100`;

/// One line of GitHub's listing, as `GET /orgs/{org}/hooks/{hook_id}/deliveries` returns it.
function item({ id, guid, secondsAgo = 60, code = 502, event = "push", redelivery = false }) {
  return {
    id,
    guid,
    delivered_at: new Date(Date.now() - secondsAgo * 1000).toISOString().replace(/\.\d+Z$/, "Z"),
    redelivery,
    duration: 0.4,
    status: code === 200 ? "OK" : `Invalid HTTP Response: ${code}`,
    status_code: code,
    event,
    action: null,
    installation_id: null,
    repository_id: 1296269,
    throttled_at: null,
  };
}

const listing = (items, headers = {}) => ({ status: 200, body: JSON.stringify(items), headers });

/// GitHub's record of one attempt: our answer's body is kept as a string.
const attemptDetail = (id, guid, ourBody) => ({
  status: 200,
  body: JSON.stringify({
    id,
    guid,
    status_code: 502,
    request: { headers: {}, payload: {} },
    response: { headers: { "content-type": "application/json" }, payload: ourBody },
  }),
});

async function sweepOnce() {
  const lines = await runScheduled(worker);
  assert.equal(lines.length, 1, "one log line per run");
  const [line] = lines;
  assert.equal(line.msg, "sweep");
  assert.ok(!JSON.stringify(line).includes(TOKEN));
  return line;
}

describe("the sweeper", () => {
  test("redelivers a delivery the worker answered 502, and the redelivery publishes", async () => {
    github.failNext(500, 500, 500);
    const failed = await worker.deliver(publishingPush());
    assert.equal(failed.status, 502);
    assert.equal(failed.body.retryable, true);
    assert.equal(failed.log.retryable, true);
    const guid = failed.delivery;

    github.route("GET", FIRST_PAGE, listing([item({ id: 901, guid })]));
    github.route("GET", `${HOOK}/901`, attemptDetail(901, guid, failed.text));
    github.route("POST", `${HOOK}/901/attempts`, { status: 202, body: "{}" });
    const line = await sweepOnce();
    assert.equal(line.outcome, "done");
    assert.equal(line.level, "info");
    assert.deepEqual(
      [line.pages, line.listed, line.failed, line.redelivered, line.github_calls],
      [1, 1, 1, 1, 3],
    );
    const [post] = github.sentTo("POST", `${HOOK}/901/attempts`);
    assert.equal(post.headers.authorization, `Bearer ${TOKEN}`);
    const record = JSON.parse(await (await worker.kv()).get(`sweep:v1:${guid}`));
    assert.equal(record.redeliveries, 1);

    // GitHub redelivers: same guid, and this time the dispatch goes through.
    const redelivered = await worker.deliver(publishingPush(), { delivery: guid });
    assert.equal(redelivered.body.outcome, "dispatched");

    // The listing now shows the successful redelivery: nothing more to do.
    github.route(
      "GET",
      FIRST_PAGE,
      listing([item({ id: 902, guid, code: 200, redelivery: true }), item({ id: 901, guid, secondsAgo: 120 })]),
    );
    const after = await sweepOnce();
    assert.deepEqual([after.failed, after.redelivered, after.github_calls], [0, 0, 1]);
    assert.equal(github.sentTo("POST", `${HOOK}/901/attempts`).length, 1);
  });

  test("leaves alone a delivery that was dispatched although GitHub recorded a failure", async () => {
    const { delivery, body } = await worker.deliver(publishingPush());
    assert.equal(body.outcome, "dispatched");
    // A timeout at GitHub's end (status 0) after our dispatch went out.
    github.route("GET", FIRST_PAGE, listing([item({ id: 903, guid: delivery, code: 0 })]));
    const line = await sweepOnce();
    assert.deepEqual([line.failed, line.already_dispatched, line.redelivered], [1, 1, 0]);
    assert.equal(github.sentTo("POST", `${HOOK}/903/attempts`).length, 0);
  });

  test("does not redeliver what our 502 called not retryable, and remembers it", async () => {
    github.failNext({ status: 422, body: '{"message":"Validation Failed"}' });
    const failed = await worker.deliver(publishingPush());
    assert.equal(failed.status, 502);
    assert.equal(failed.body.retryable, false);
    const guid = failed.delivery;
    github.route("GET", FIRST_PAGE, listing([item({ id: 904, guid }), item({ id: 905, guid: "unsigned-1", code: 401 })]));
    github.route("GET", `${HOOK}/904`, attemptDetail(904, guid, failed.text));
    const line = await sweepOnce();
    assert.deepEqual([line.failed, line.permanent, line.redelivered], [2, 2, 0]);
    const record = JSON.parse(await (await worker.kv()).get(`sweep:v1:${guid}`));
    assert.ok(record.permanent, JSON.stringify(record));

    const again = await sweepOnce();
    assert.deepEqual([again.permanent, again.github_calls], [2, 1], "only the listing");
    assert.equal(github.sentTo("GET", `${HOOK}/904`).length, 1);
    assert.equal(github.requests.filter((r) => r.path.endsWith("/attempts")).length, 0);
  });

  test("follows the Link header's cursor, within SWEEP_MAX_PAGES", async () => {
    const second = `${HOOK}?per_page=100&cursor=v1_1794000000`;
    github.route(
      "GET",
      FIRST_PAGE,
      listing([item({ id: 910, guid: "ok-1", code: 200 })], {
        link: `<${GITHUB_API}${second}>; rel="next", <${GITHUB_API}${FIRST_PAGE}>; rel="first"`,
      }),
    );
    github.route("GET", second, listing([item({ id: 909, guid: "timed-out-1", code: 0, secondsAgo: 600 })]));
    github.route("POST", `${HOOK}/909/attempts`, { status: 202, body: "{}" });
    const line = await sweepOnce();
    assert.deepEqual([line.pages, line.listed, line.truncated, line.redelivered], [2, 2, false, 1]);

    await worker.reconfigure({ SWEEP_MAX_PAGES: "1" });
    const capped = await sweepOnce();
    assert.deepEqual([capped.pages, capped.truncated, capped.level], [1, true, "warn"]);
    await worker.reconfigure({});
  });

  test("a listing GitHub refuses is an error line, not a crash", async () => {
    github.route("GET", FIRST_PAGE, { status: 403, body: '{"message":"Must have admin rights to Repository."}' });
    const line = await sweepOnce();
    assert.equal(line.outcome, "failed");
    assert.equal(line.level, "error");
    assert.equal(line.reason, "listing deliveries: GitHub answered 403: Must have admin rights to Repository.");
  });

  test("is off without GITHUB_ORG and HOOK_ID, and says so once per isolate", async () => {
    await worker.reconfigure({ GITHUB_ORG: undefined, HOOK_ID: undefined });
    const first = await runScheduled(worker);
    assert.equal(first.length, 1);
    assert.equal(first[0].outcome, "off");
    assert.match(first[0].reason, /GITHUB_ORG and HOOK_ID/);
    assert.deepEqual(await runScheduled(worker), []);
    assert.equal(github.requests.length, 0, "no GitHub call when off");
    await worker.reconfigure({});
  });
});
