// The promise, end to end: a version bump on a registered repository is published exactly once, even
// when a delivery, a dispatch, a run or a runner fails. Each row pushes to real git repositories and
// asserts what reached the registry, what Discord was told, and what the worker logged. The rows share
// one world (tests/system/world.mjs) and run in order; each uses repositories of its own.
//
// The publish preview's rows (a pull request → the check run `UPM publish preview` on its head) assert
// what the check says, that nothing reached the registry, and where the secrets went.
//
// scripts/test-system.sh builds the pieces and runs this file; it prints "push → published" per row,
// "PR push → check result" per preview row and the GitHub requests one preview costs.

import assert from "node:assert/strict";
import { after, afterEach, before, test } from "node:test";

import { existsSync } from "node:fs";
import { join } from "node:path";

import { bumpVersion, git, unityGuid, writeUnityPackage } from "./git.mjs";
import { waitFor } from "../workerd/harness.mjs";
import { CHECK_NAME, checkRuns, exposePullHead, forkOf, pullRequestPayload, pushBranch, waitCheck } from "./preview.mjs";
import { CENTRAL, ORG, POOL, World } from "./world.mjs";

const url = (name) => `https://github.com/${ORG}/${name}`;
const REGISTRY = {
  $schema: "./schema.json",
  repositories: [
    { url: url("core-utils"), status: "active" },
    { url: url("multi"), status: "active" },
    { url: url("already"), status: "active" },
    { url: url("toggle"), status: "disabled", note: "paused by the studio" },
    { url: url("mixed"), status: "active" },
    { url: url("quick"), status: "active" },
    { url: url("flaky-dispatch"), status: "active" },
    { url: url("outage"), status: "active" },
    { url: url("legacy"), status: "active" },
    { url: url("stranded"), status: "active" },
    { url: url("quiet-net"), status: "active" },
    ...["bump", "nobump", "meta", "fork", "draft", "quick", "stuck"].map((row) => ({ url: url(`preview-${row}`), status: "active" })),
    ...Array.from({ length: 10 }, (_, i) => ({ url: url(`burst-${String(i).padStart(2, "0")}`), status: "active" })),
  ],
};

let world;
const timings = [];
/// Preview rows: PR push (or the event that makes it previewable) → completed check run.
const previewTimings = [];
/// The GitHub REST requests of each preview run: [row, token step's, preview's].
const previewCosts = [];

before(async () => {
  world = await World.start({ registry: REGISTRY });
});

// Every row: each delivery it made has its one log line, and no secret leaked anywhere.
afterEach(() => world?.assertDeliveriesLogged());

after(async () => {
  await world?.stop();
  if (timings.length) {
    console.log("\nsystem matrix: push → published");
    for (const { row, ms } of timings) console.log(`  ${row.padEnd(58)} ${ms === null ? "—" : `${ms} ms`}`);
  }
  if (previewTimings.length) {
    console.log("\nsystem matrix: PR push → check result (UPM publish preview)");
    for (const { row, ms } of previewTimings) console.log(`  ${row.padEnd(58)} ${ms} ms`);
  }
  if (previewCosts.length) {
    console.log("\nGitHub requests per preview (REST; besides them the checkout is one git fetch)");
    for (const { row, worker, tokenStep, preview } of previewCosts) {
      const total = worker + tokenStep.length + preview.length;
      console.log(`  ${row.padEnd(44)} ${total} = worker's dispatch ${worker} + token step ${tokenStep.length} + preview ${preview.length}`);
    }
    const { tokenStep, preview } = previewCosts[0];
    console.log(`  (${[...tokenStep, ...preview].join(", ")})`);
  }
});

/// A repository with UPM packages at `dirs` (each `[dir, name, version]`), pushed once as its initial
/// state (before the repository is watched, so nothing publishes) and mirrored to the fake GitHub.
async function repoWith(name, packages) {
  const repo = world.repo(`${ORG}/${name}`);
  for (const [dir, packageName, version] of packages) writeUnityPackage(repo, dir, { name: packageName, version });
  repo.commit("Initial import");
  repo.push();
  await world.mirror(repo);
  return repo;
}

/// Messages Discord received that mention `text`.
function discordMentions(text) {
  return world.discord.messages.filter((m) => JSON.stringify(m).includes(text));
}

/// The dispatches the fake GitHub recorded for `name` (a repository of ORG).
async function dispatchesFor(name) {
  return (await world.github.dispatches()).filter((d) => d.client_payload?.repository === `${ORG}/${name}`);
}

/// Reconcile's closing line, "N GitHub requests (M answered 304)", as [line, N, M]; fails with the whole
/// output when the line is not there.
function requestSummary(output) {
  const match = output.match(/(\d+) GitHub requests \((\d+) answered 304\)/);
  assert.ok(match, `reconcile printed no "N GitHub requests (M answered 304)" line; its output:\n${output}`);
  return match;
}

/// The worker's log line for a delivery: written a few ms after the response (in its waitUntil).
async function logFor(guid) {
  const line = await waitFor(() => world.deliveryLogs().find((l) => l.delivery === guid));
  assert.ok(line, `no log line for delivery ${guid}`);
  return line;
}

test("happy path: one bump, one publish, one Discord message", async () => {
  const repo = await repoWith("core-utils", [["Packages/com.studio.core-utils", "com.studio.core-utils", "1.0.0"]]);
  bumpVersion(repo, "Packages/com.studio.core-utils", "1.1.0");
  repo.commit("Core utils 1.1.0");
  const pushed = Date.now();
  const { status, answer, guid } = await world.push(repo);
  assert.equal(status, 200);
  assert.equal(answer.outcome, "dispatched", JSON.stringify(answer));
  assert.equal(answer.package_path, "Packages/com.studio.core-utils");
  await world.waitPublished([["com.studio.core-utils", "1.1.0"]]);
  timings.push({ row: "happy path", ms: Date.now() - pushed });
  await world.runner.idle();
  assert.deepEqual(await world.verdaccio.versions("com.studio.core-utils"), ["1.1.0"]);
  assert.equal((await logFor(guid)).outcome, "dispatched");
  await world.assertAnnounced("com.studio.core-utils", "1.1.0");
});

test("multi-package repository: both bumped packages publish from one push", async () => {
  const repo = await repoWith("multi", [
    ["Packages/com.studio.multi-a", "com.studio.multi-a", "0.1.0"],
    ["Packages/com.studio.multi-b", "com.studio.multi-b", "0.1.0"],
  ]);
  bumpVersion(repo, "Packages/com.studio.multi-a", "0.2.0");
  bumpVersion(repo, "Packages/com.studio.multi-b", "0.3.0");
  repo.commit("Bump both");
  const pushed = Date.now();
  const { answer } = await world.push(repo);
  assert.equal(answer.outcome, "dispatched");
  assert.deepEqual(answer.package_path.split(",").sort(), ["Packages/com.studio.multi-a", "Packages/com.studio.multi-b"]);
  await world.waitPublished([
    ["com.studio.multi-a", "0.2.0"],
    ["com.studio.multi-b", "0.3.0"],
  ]);
  timings.push({ row: "multi-package repository", ms: Date.now() - pushed });
  await world.assertAnnounced("com.studio.multi-a", "0.2.0");
  await world.assertAnnounced("com.studio.multi-b", "0.3.0");
});

test("already published: the version on the registry is skipped, nothing uploaded twice", async () => {
  await world.verdaccio.seed("com.studio.already", "2.0.0");
  const repo = await repoWith("already", [["Packages/com.studio.already", "com.studio.already", "1.0.0"]]);
  // A push that sets the version the registry already has (e.g. a merge of a branch released elsewhere).
  bumpVersion(repo, "Packages/com.studio.already", "2.0.0");
  repo.commit("Align with the released 2.0.0");
  const { answer } = await world.push(repo);
  assert.equal(answer.outcome, "dispatched");
  const [run] = await world.runner.runsFor(`${ORG}/already`);
  assert.equal(run.exitCode, 0, run.output);
  assert.deepEqual(await world.verdaccio.versions("com.studio.already"), ["2.0.0"]);
  timings.push({ row: "already published (skip)", ms: null });
});

test("unregistered repository: ignored with a reason, nothing dispatched", async () => {
  const before = (await world.github.dispatches()).length;
  const repo = await repoWith("not-registered", [["Packages/com.studio.stray", "com.studio.stray", "1.0.0"]]);
  bumpVersion(repo, "Packages/com.studio.stray", "1.0.1");
  repo.commit("Bump");
  const { status, answer, guid } = await world.push(repo);
  assert.equal(status, 200);
  assert.equal(answer.outcome, "ignored");
  assert.match(answer.reason, /regist/i);
  assert.equal((await world.github.dispatches()).length, before);
  assert.equal((await logFor(guid)).outcome, "ignored");
  assert.deepEqual(await world.verdaccio.versions("com.studio.stray"), []);
  timings.push({ row: "unregistered repository (ignored)", ms: null });
});

test("disabled, then re-enabled by a push to the registry file", async () => {
  const repo = await repoWith("toggle", [["Packages/com.studio.toggle", "com.studio.toggle", "1.0.0"]]);
  bumpVersion(repo, "Packages/com.studio.toggle", "1.0.1");
  repo.commit("Bump while disabled");
  const disabled = await world.push(repo);
  assert.equal(disabled.answer.outcome, "ignored");
  assert.match(disabled.answer.reason, /disabled/);

  // The studio enables it in the central repository; that push refreshes the worker's registry at once.
  const registry = structuredClone(REGISTRY);
  registry.repositories.find((r) => r.url === url("toggle")).status = "active";
  world.central.write("config/repositories.json", registry);
  world.central.commit("Enable toggle");
  const central = await world.push(world.central);
  assert.equal(central.status, 200);

  bumpVersion(repo, "Packages/com.studio.toggle", "1.0.2");
  repo.commit("Bump once enabled");
  const pushed = Date.now();
  const enabled = await world.push(repo);
  assert.equal(enabled.answer.outcome, "dispatched", JSON.stringify(enabled.answer));
  await world.waitPublished([["com.studio.toggle", "1.0.2"]]);
  timings.push({ row: "disabled, re-enabled by a registry push", ms: Date.now() - pushed });
  await world.runner.idle();
  // 1.0.1 was pushed while disabled: the dispatch of 1.0.2 names the package directory, and the
  // publisher publishes what the head holds, 1.0.2, not the skipped intermediate.
  assert.deepEqual(await world.verdaccio.versions("com.studio.toggle"), ["1.0.2"]);
  await world.assertAnnounced("com.studio.toggle", "1.0.2");
});

test("an invalid package.json beside a valid one: the valid one publishes, the failure is reported", async () => {
  const repo = await repoWith("mixed", [
    ["Packages/com.studio.good", "com.studio.good", "1.0.0"],
    ["Packages/com.studio.bad", "com.studio.bad", "1.0.0"],
  ]);
  bumpVersion(repo, "Packages/com.studio.good", "1.0.1");
  repo.write("Packages/com.studio.bad/package.json", '{ "name": "com.studio.bad", "version": "1.0.1", }\n');
  repo.commit("Bump both, one with a typo");
  const pushed = Date.now();
  const { answer } = await world.push(repo);
  assert.equal(answer.outcome, "dispatched");
  await world.waitPublished([["com.studio.good", "1.0.1"]]);
  timings.push({ row: "invalid package.json beside a valid one", ms: Date.now() - pushed });
  const [run] = await world.runner.runsFor(`${ORG}/mixed`);
  assert.equal(run.exitCode, 1, "the run fails because one package failed");
  assert.deepEqual(await world.verdaccio.versions("com.studio.bad"), []);
  assert.ok(discordMentions("com.studio.bad").length >= 1, "the failure reached Discord");
  await world.assertAnnounced("com.studio.good", "1.0.1");
});

test("burst: 10 repositories push at once, none lost", async () => {
  const repos = [];
  for (let i = 0; i < 10; i += 1) {
    const id = String(i).padStart(2, "0");
    const repo = await repoWith(`burst-${id}`, [[".", `com.studio.burst-${id}`, "1.0.0"]]);
    bumpVersion(repo, ".", "1.0.1");
    repo.commit("Burst bump");
    repos.push(repo);
  }
  const pushed = Date.now();
  const answers = await Promise.all(repos.map((repo) => world.push(repo)));
  for (const { status, answer } of answers) {
    assert.equal(status, 200);
    assert.equal(answer.outcome, "dispatched");
  }
  await world.waitPublished(repos.map((_, i) => [`com.studio.burst-${String(i).padStart(2, "0")}`, "1.0.1"]));
  timings.push({ row: "burst of 10 repositories", ms: Date.now() - pushed });
  for (let i = 0; i < 10; i += 1) await world.assertAnnounced(`com.studio.burst-${String(i).padStart(2, "0")}`, "1.0.1");
  // One dispatch per push: nothing lost, nothing doubled.
  const burstDispatches = (await world.github.dispatches()).filter((d) => /\/burst-/.test(d.client_payload.repository));
  assert.equal(burstDispatches.length, 10);
});

test("three quick pushes to one repository: all three versions publish", async () => {
  const repo = await repoWith("quick", [["Packages/com.studio.quick", "com.studio.quick", "1.0.0"]]);
  const pushed = Date.now();
  // Three pushes in a row, their deliveries arriving together: all three dispatches reach the runner
  // while the first run is still going (real runs take a minute, pushes seconds). A concurrency group
  // would keep one pending run and cancel the other, losing a version.
  const payloads = [];
  for (const version of ["1.0.1", "1.0.2", "1.0.3"]) {
    bumpVersion(repo, "Packages/com.studio.quick", version);
    repo.commit(`Quick ${version}`);
    payloads.push(repo.push());
  }
  await world.mirror(repo);
  for (const { answer } of await Promise.all(payloads.map((payload) => world.deliver(payload)))) {
    assert.equal(answer.outcome, "dispatched");
  }
  await world.waitPublished([
    ["com.studio.quick", "1.0.1"],
    ["com.studio.quick", "1.0.2"],
    ["com.studio.quick", "1.0.3"],
  ]);
  timings.push({ row: "three quick pushes to one repository", ms: Date.now() - pushed });
  const runs = await world.runner.runsFor(`${ORG}/quick`, 3);
  assert.equal(runs.length, 3, "one run per push");
  for (const run of runs) assert.equal(run.exitCode, 0, run.output);
  for (const version of ["1.0.1", "1.0.2", "1.0.3"]) await world.assertAnnounced("com.studio.quick", version);
});

test("dispatch refused three times (502), then the sweeper's redelivery publishes", async () => {
  const repo = await repoWith("flaky-dispatch", [["Packages/com.studio.flaky", "com.studio.flaky", "1.0.0"]]);
  bumpVersion(repo, "Packages/com.studio.flaky", "1.0.1");
  repo.commit("Bump during a GitHub incident");
  await world.github.fault({ method: "POST", path_contains: "/dispatches", times: 3, status: 502 });
  const pushed = Date.now();
  const failed = await world.push(repo);
  assert.equal(failed.status, 502, JSON.stringify(failed.answer));
  assert.equal(failed.answer.outcome, "failed");
  assert.equal(failed.answer.retryable, true);
  assert.equal((await logFor(failed.guid)).outcome, "failed");
  // GitHub never received a dispatch for this push, so no run can publish it (an event, not a pause).
  assert.deepEqual(await dispatchesFor("flaky-dispatch"), [], "a refused dispatch was recorded");
  assert.deepEqual(await world.verdaccio.versions("com.studio.flaky"), []);

  const { asked, results } = await world.sweep();
  assert.deepEqual(
    asked.map((r) => r.guid),
    [failed.guid],
    "the sweeper redelivers exactly the failed push",
  );
  assert.equal(results[0].answer.outcome, "dispatched");
  await world.waitPublished([["com.studio.flaky", "1.0.1"]]);
  timings.push({ row: "dispatch 502 ×3, then the sweeper's redelivery", ms: Date.now() - pushed });

  await world.assertAnnounced("com.studio.flaky", "1.0.1");
  // A second sweep finds nothing left to do: the redelivery succeeded.
  const again = await world.sweep();
  assert.deepEqual(again.asked, []);
});

test("a legacy dispatcher's empty package_path publishes every package", async () => {
  const repo = await repoWith("legacy", [
    ["Assets/Plugins/com.studio.legacy-a", "com.studio.legacy-a", "1.0.0"],
    ["Assets/Plugins/com.studio.legacy-b", "com.studio.legacy-b", "2.0.0"],
  ]);
  const pushed = Date.now();
  // What the per-repository dispatcher workflows (and a rollback to them) send.
  const response = await fetch(`${world.github.url}/repos/${CENTRAL}/dispatches`, {
    method: "POST",
    headers: { authorization: `Bearer ${world.token}`, "content-type": "application/json" },
    body: JSON.stringify({
      event_type: "package_publish",
      client_payload: {
        repository: `${ORG}/legacy`,
        commit_sha: repo.head(),
        commit_message: "Initial import",
        commit_author: "Studio Dev",
        branch: "main",
        package_path: "",
      },
    }),
  });
  assert.equal(response.status, 204);
  await world.waitPublished([
    ["com.studio.legacy-a", "1.0.0"],
    ["com.studio.legacy-b", "2.0.0"],
  ]);
  timings.push({ row: "legacy empty package_path", ms: Date.now() - pushed });
  await world.assertAnnounced("com.studio.legacy-a", "1.0.0");
  await world.assertAnnounced("com.studio.legacy-b", "2.0.0");
});

test("a dispatch for a repository that is not registered publishes nothing", async () => {
  // Anyone allowed to dispatch on the central repository could name any repository the App can read:
  // the publish job checks config/repositories.json at its own commit first.
  const repo = world.repos.get(`${ORG}/not-registered`.toLowerCase());
  const response = await fetch(`${world.github.url}/repos/${CENTRAL}/dispatches`, {
    method: "POST",
    headers: { authorization: `Bearer ${world.token}`, "content-type": "application/json" },
    body: JSON.stringify({
      event_type: "package_publish",
      client_payload: { repository: `${ORG}/not-registered`, commit_sha: repo.head(), branch: "main", package_path: "" },
    }),
  });
  assert.equal(response.status, 204);
  const [run] = await world.runner.runsFor(`${ORG}/not-registered`);
  assert.equal(run.exitCode, 1, run.output);
  assert.match(run.output, /Studio\/not-registered is not registered in config\/repositories\.json/);
  assert.deepEqual(await world.verdaccio.versions("com.studio.stray"), []);
  timings.push({ row: "dispatch for an unregistered repository (refused)", ms: null });
});

/// A registered repository whose package `Packages/<packageName>` published 1.0.0 from the publishing
/// branch the way every package gets there (its push, the publish run, Verdaccio); the developer's
/// clone is then on a new branch `branch`, ready for a pull request.
async function publishedRepo(repoName, packageName, branch) {
  const repo = world.repo(`${ORG}/${repoName}`);
  writeUnityPackage(repo, `Packages/${packageName}`, { name: packageName, version: "1.0.0" });
  repo.commit("Initial import");
  const { answer } = await world.push(repo);
  assert.equal(answer.outcome, "dispatched", JSON.stringify(answer));
  await world.waitPublished([[packageName, "1.0.0"]]);
  await world.runner.idle();
  if (branch) git(repo.work, "checkout", "--quiet", "-b", branch);
  return repo;
}

/// A new script in a package, with (or, `meta: false`, without) the `.meta` Unity needs.
function addScript(repo, path, { meta = true } = {}) {
  repo.write(path, `public static class Extra { public const int Answer = 42; }\n`);
  if (meta) repo.write(`${path}.meta`, `fileFormatVersion: 2\nguid: ${unityGuid()}\nMonoImporter:\n  externalObjects: {}\n  userData: \n`);
}

/// Delivers the `pull_request` event of `repo`'s pull request; the base is the publishing branch's head.
async function deliverPullRequest(repo, fields) {
  const payload = pullRequestPayload({ base: repo, baseSha: repo.remoteHead(), ...fields });
  return world.deliver(payload, { event: "pull_request" });
}

/// The preview dispatches the fake GitHub recorded for `name` (a repository of ORG).
async function previewDispatchesFor(name) {
  return (await dispatchesFor(name)).filter((d) => d.event_type === "package_preview");
}

/// The one check run a pull request's head should carry, once completed, and the preview run that
/// posted it; records the row's time (from `since`) and its GitHub requests.
async function previewed(row, repo, head, since) {
  const { runs, at } = await waitCheck(world, repo.fullName, head);
  previewTimings.push({ row, ms: at - since });
  assert.equal(runs.length, 1, `one check run on ${head}: ${JSON.stringify(runs)}`);
  const [check] = runs;
  assert.equal(check.name, CHECK_NAME);
  assert.equal(check.head_sha, head);
  const run = await world.previews.ended(head);
  assert.equal(run.exitCode, 0, `the preview step carries its verdict in the check run:\n${world.previews.describe()}`);
  // The check run links the preview run that posted it.
  assert.ok(check.details_url.endsWith(`/actions/runs/${run.env.GITHUB_RUN_ID}`), check.details_url);
  // The worker's part: its dispatch for this head.
  const requests = await (await fetch(`${world.github.url}/_fake/requests`)).json();
  const worker = requests.filter((r) => r.path === `/repos/${CENTRAL}/dispatches` && r.body?.client_payload?.head_sha === head);
  assert.equal(worker.length, 1, `the worker's dispatches for ${head}: ${JSON.stringify(worker)}`);
  previewCosts.push({ row, worker: worker.length, ...run.requests });
  return { check, run };
}

test("preview: a pull request that bumps a version → check success with the version change", async () => {
  const dir = "Packages/com.studio.preview-bump";
  const repo = await publishedRepo("preview-bump", "com.studio.preview-bump", "feature/extra");
  bumpVersion(repo, dir, "1.1.0");
  addScript(repo, `${dir}/Runtime/Extra.cs`);
  repo.commit("Add Extra; 1.1.0");
  const pushed = Date.now();
  const head = await pushBranch(world, repo, "feature/extra");
  const { status, answer } = await deliverPullRequest(repo, { action: "opened", number: 1, headRef: "feature/extra", headSha: head });
  assert.equal(status, 200);
  assert.equal(answer.outcome, "dispatched", JSON.stringify(answer));
  assert.equal(answer.pull_request, 1);
  const { check, run } = await previewed("bump → success", repo, head, pushed);
  assert.equal(check.conclusion, "success", check.output.summary);
  assert.equal(check.output.title, "1 package(s) will publish");
  assert.equal(check.external_id, "pull-request-1");
  const summary = check.output.summary;
  assert.ok(summary.includes("| `com.studio.preview-bump` | `Packages/com.studio.preview-bump` | 1.0.0 → 1.1.0 (minor), dist-tag latest |"), summary);
  assert.ok(summary.includes("- + `Runtime/Extra.cs`"), summary);
  assert.ok(summary.includes("- + `Runtime/Extra.cs.meta`"), summary);
  assert.deepEqual(check.annotations, []);
  // One preview's cost: the token step's two requests and the check run's create and completion.
  assert.deepEqual(run.requests.tokenStep.map((r) => r.split(" ").slice(0, 2).join(" ")), [
    "GET /repos/Studio/preview-bump/installation",
    `POST /app/installations/77/access_tokens`,
  ]);
  assert.deepEqual(run.requests.preview.map((r) => r.split(" ").slice(0, 2).join(" ").replace(/\d+$/, "{id}")), [
    "POST /repos/Studio/preview-bump/check-runs",
    "PATCH /repos/Studio/preview-bump/check-runs/{id}",
  ]);
  assert.deepEqual(await world.verdaccio.versions("com.studio.preview-bump"), ["1.0.0"], "a preview published");
  console.log(`\nsample check run "${check.name}" (${check.conclusion}): ${check.output.title}\n${summary}`);
});

test("preview: files changed without a bump → check neutral, naming the package: nothing will publish", async () => {
  const dir = "Packages/com.studio.preview-nobump";
  const repo = await publishedRepo("preview-nobump", "com.studio.preview-nobump", "fix/hello");
  repo.write(`${dir}/Runtime/Hello.cs`, "namespace Com.Studio.PreviewNobump { public static class Hello { public const string Version = \"fixed\"; } }\n");
  repo.commit("Fix Hello, version kept");
  const pushed = Date.now();
  const head = await pushBranch(world, repo, "fix/hello");
  const { answer } = await deliverPullRequest(repo, { action: "opened", number: 2, headRef: "fix/hello", headSha: head });
  assert.equal(answer.outcome, "dispatched", JSON.stringify(answer));
  const { check } = await previewed("change without a bump → neutral", repo, head, pushed);
  assert.equal(check.conclusion, "neutral", check.output.summary);
  assert.equal(check.output.title, "1 package(s) changed without a version bump: nothing will publish");
  assert.ok(
    check.output.summary.includes(
      "| `com.studio.preview-nobump` | `Packages/com.studio.preview-nobump` | version not bumped: nothing will publish (files changed, 1.0.0 is already published) |",
    ),
    check.output.summary,
  );
  assert.deepEqual(await world.verdaccio.versions("com.studio.preview-nobump"), ["1.0.0"], "a preview published");
});

test("preview: a script without its .meta → check failure, annotated on that path", async () => {
  const dir = "Packages/com.studio.preview-meta";
  const repo = await publishedRepo("preview-meta", "com.studio.preview-meta", "feature/no-meta");
  bumpVersion(repo, dir, "1.1.0");
  addScript(repo, `${dir}/Runtime/Extra.cs`, { meta: false });
  repo.commit("Add Extra (its .meta forgotten); 1.1.0");
  const pushed = Date.now();
  const head = await pushBranch(world, repo, "feature/no-meta");
  const { answer } = await deliverPullRequest(repo, { action: "opened", number: 3, headRef: "feature/no-meta", headSha: head });
  assert.equal(answer.outcome, "dispatched", JSON.stringify(answer));
  const { check } = await previewed("missing .meta → failure", repo, head, pushed);
  assert.equal(check.conclusion, "failure", check.output.summary);
  assert.equal(check.output.title, "1 package(s) would fail to publish");
  assert.ok(check.output.summary.includes("### `com.studio.preview-meta` would fail"), check.output.summary);
  assert.deepEqual(
    check.annotations.map((a) => [a.path, a.annotation_level]),
    [[`${dir}/Runtime/Extra.cs`, "failure"]],
    JSON.stringify(check.annotations),
  );
  assert.match(check.annotations[0].message, /\.meta/, check.annotations[0].message);
  assert.deepEqual(await world.verdaccio.versions("com.studio.preview-meta"), ["1.0.0"], "a preview published");
});

test("preview: a pull request from a fork is previewed, and no secret reaches the preview", async () => {
  const dir = "Packages/com.studio.preview-fork";
  const base = await publishedRepo("preview-fork", "com.studio.preview-fork");
  const fork = forkOf(world, base, "Outsider/preview-fork");
  git(fork.work, "checkout", "--quiet", "-b", "patch-1");
  // The fork's manifest asks npm to run its scripts: nothing of the head may run in the preview.
  const marker = join(world.dir, "fork-code-ran");
  const manifest = JSON.parse(git(fork.work, "show", `HEAD:${dir}/package.json`));
  fork.write(`${dir}/package.json`, { ...manifest, version: "1.0.1", scripts: { prepare: `touch ${marker}`, prepack: `touch ${marker}` } });
  fork.write(`${dir}/Runtime/Hello.cs`, "namespace Com.Studio.PreviewFork { public static class Hello { public const string Version = \"patched\"; } }\n");
  fork.commit("Patch Hello; 1.0.1");
  const pushed = Date.now();
  // A push to a fork outside the organization reaches no organization hook; GitHub keeps the head in
  // the base repository as refs/pull/4/head once the pull request is opened.
  const head = fork.push("patch-1").after;
  await world.mirror(fork);
  exposePullHead(base, fork, "patch-1", 4);
  const { answer } = await deliverPullRequest(base, {
    action: "opened", number: 4, headRef: "patch-1", headSha: head, headRepository: fork.fullName,
  });
  assert.equal(answer.outcome, "dispatched", JSON.stringify(answer));
  const [dispatch] = await previewDispatchesFor("preview-fork");
  assert.equal(dispatch.client_payload.fork, true, JSON.stringify(dispatch));
  const { check, run } = await previewed("fork → success, no secret", base, head, pushed);
  assert.equal(check.conclusion, "success", check.output.summary);
  assert.ok(check.output.summary.includes("| 1.0.0 → 1.0.1 (patch), dist-tag latest |"), check.output.summary);
  // The head was checked out from the base repository, at the sha, as data.
  assert.deepEqual(run.checkout, { repository: base.fullName, ref: head, path: "upm-package-repo" });
  assert.ok(!existsSync(marker), "the fork's package.json scripts ran");

  // What the preview step got: the App's installation token, for this one repository, checks:write and
  // contents:read; no registry token, not the App's key, not the Discord webhook, not the run's token.
  const secrets = world.previews.secretValues();
  const env = run.env;
  for (const name of ["NPM_TOKEN", "NODE_AUTH_TOKEN", "UPM_APP_PRIVATE_KEY", "DISCORD_WEBHOOK_URL", "GH_TOKEN"]) {
    assert.ok(!(name in env), `the preview step got ${name}`);
  }
  for (const [name, value] of Object.entries(env)) {
    for (const secret of [...secrets, "ghs_central_workflow_run_token"]) {
      assert.ok(!String(value).includes(secret), `the preview step's ${name} holds a secret`);
    }
  }
  assert.equal(env.GITHUB_TOKEN, run.token);
  assert.match(run.token, /^ghs_/);
  assert.deepEqual(run.tokenPermissions, { checks: "write", contents: "read" });
  assert.deepEqual(run.tokenRepositories, ["preview-fork"]);
  const { app } = await world.github.state();
  assert.deepEqual(app.minted_permissions.at(-1), { checks: "write", contents: "read" }, "GitHub minted other permissions");
  // Every step: the App's key reached the token step's input alone; the registry token and the
  // Discord webhook reached none.
  for (const [step, stepEnv] of Object.entries(run.stepEnv)) {
    const values = Object.values(stepEnv).map(String);
    if (step !== "app-token") assert.ok(!values.some((v) => v.includes(secrets[0])), `step ${step} got the App's key`);
    for (const secret of secrets.slice(1)) assert.ok(!values.some((v) => v.includes(secret)), `step ${step} got a secret`);
  }
  assert.deepEqual(await world.verdaccio.versions("com.studio.preview-fork"), ["1.0.0"], "a preview published");
});

test("preview: a draft is skipped, then previewed once marked ready for review", async () => {
  const dir = "Packages/com.studio.preview-draft";
  const repo = await publishedRepo("preview-draft", "com.studio.preview-draft", "feature/v2");
  bumpVersion(repo, dir, "2.0.0");
  repo.commit("2.0.0, work in progress");
  const head = await pushBranch(world, repo, "feature/v2");
  const draft = await deliverPullRequest(repo, { action: "opened", number: 5, headRef: "feature/v2", headSha: head, draft: true });
  assert.equal(draft.status, 200);
  assert.equal(draft.answer.outcome, "ignored", JSON.stringify(draft.answer));
  assert.equal(draft.answer.reason, "pull request #5 is a draft: previewed once it is marked ready for review");
  // The worker answers after its dispatch: none was sent, so no preview can run.
  assert.deepEqual(await previewDispatchesFor("preview-draft"), []);
  assert.deepEqual(await checkRuns(world, repo.fullName, head), []);

  const ready = Date.now();
  const marked = await deliverPullRequest(repo, { action: "ready_for_review", number: 5, headRef: "feature/v2", headSha: head });
  assert.equal(marked.answer.outcome, "dispatched", JSON.stringify(marked.answer));
  assert.equal((await previewDispatchesFor("preview-draft")).length, 1);
  const { check } = await previewed("draft, marked ready → success (from ready)", repo, head, ready);
  assert.equal(check.conclusion, "success", check.output.summary);
  assert.ok(check.output.summary.includes("| 1.0.0 → 2.0.0 (major), dist-tag latest |"), check.output.summary);
  assert.deepEqual(await world.verdaccio.versions("com.studio.preview-draft"), ["1.0.0"], "a preview published");
});

test("preview: a preview that cannot be made still answers on the pull request: check failure, linking the run", async () => {
  const dir = "Packages/com.studio.preview-stuck";
  const repo = await publishedRepo("preview-stuck", "com.studio.preview-stuck", "feature/unpushed");
  bumpVersion(repo, dir, "1.1.0");
  repo.commit("1.1.0, never pushed");
  // A head GitHub does not have (a force-push raced the delivery): the checkout fails, so the preview
  // step never runs; the report step answers instead, or a required check would wait forever.
  const head = git(repo.work, "rev-parse", "HEAD");
  const since = Date.now();
  const { answer } = await deliverPullRequest(repo, { action: "opened", number: 7, headRef: "feature/unpushed", headSha: head });
  assert.equal(answer.outcome, "dispatched", JSON.stringify(answer));
  const { runs, at } = await waitCheck(world, repo.fullName, head);
  previewTimings.push({ row: "preview that cannot be made → failure", ms: at - since });
  assert.equal(runs.length, 1, JSON.stringify(runs));
  const [check] = runs;
  assert.equal(check.conclusion, "failure");
  assert.equal(check.output.title, "The preview could not be made");
  const run = await world.previews.ended(head);
  assert.equal(run.failedStep, "Check out the pull request's head", world.previews.describe());
  assert.equal(run.conclusion, "failure");
  assert.equal(check.details_url, `https://github.com/${CENTRAL}/actions/runs/${run.githubRunId}`);
  assert.deepEqual(await world.verdaccio.versions("com.studio.preview-stuck"), ["1.0.0"], "a preview published");
});

test("preview: two quick pushes to one pull request → the newer head's result stands", async () => {
  const dir = "Packages/com.studio.preview-quick";
  const repo = await publishedRepo("preview-quick", "com.studio.preview-quick", "feature/quick");
  bumpVersion(repo, dir, "1.1.0");
  repo.commit("1.1.0");
  const first = await pushBranch(world, repo, "feature/quick");
  const opened = await deliverPullRequest(repo, { action: "opened", number: 6, headRef: "feature/quick", headSha: first });
  assert.equal(opened.answer.outcome, "dispatched", JSON.stringify(opened.answer));
  await waitCheck(world, repo.fullName, first);

  // Head A, whose run is still in its set-up steps when head B is pushed (on GitHub those take tens
  // of seconds; here the runner holds A before its preview step).
  bumpVersion(repo, dir, "1.2.0");
  addScript(repo, `${dir}/Runtime/Extra.cs`);
  repo.commit("Extra; 1.2.0");
  const a = repo.head();
  const holdA = world.previews.hold(a);
  assert.equal(await pushBranch(world, repo, "feature/quick"), a);
  const syncA = await deliverPullRequest(repo, { action: "synchronize", number: 6, headRef: "feature/quick", headSha: a, before: first });
  assert.equal(syncA.answer.outcome, "dispatched", JSON.stringify(syncA.answer));
  const runA = await holdA.reached();

  bumpVersion(repo, dir, "1.3.0");
  repo.commit("1.3.0 after all");
  const pushedB = Date.now();
  const b = await pushBranch(world, repo, "feature/quick");
  const syncB = await deliverPullRequest(repo, { action: "synchronize", number: 6, headRef: "feature/quick", headSha: b, before: a });
  assert.equal(syncB.answer.outcome, "dispatched", JSON.stringify(syncB.answer));
  // preview.yml's concurrency group cancels A's run in progress.
  assert.equal(await world.previews.cancelledRun(a), runA);
  const { check, run: runB } = await previewed("two quick pushes → newer head (B)", repo, b, pushedB);
  holdA.release();
  await runA.done;
  assert.equal(runA.conclusion, "cancelled", world.previews.describe());
  const { workflow_runs: centralRuns } = await world.github.api(`/repos/${CENTRAL}/actions/workflows/preview.yml/runs`);
  const recordedA = centralRuns.find((r) => r.id === runA.runId);
  assert.equal(recordedA?.conclusion, "cancelled", JSON.stringify(recordedA));
  assert.equal(runB.conclusion, "success");
  // B's check is B's: its table, its run; A never got a result, on its own sha or on B's.
  assert.equal(check.conclusion, "success", check.output.summary);
  assert.ok(check.output.summary.includes("| 1.0.0 → 1.3.0 (minor), dist-tag latest |"), check.output.summary);
  assert.ok(check.output.summary.includes(`head \`${b.slice(0, 12)}\``), check.output.summary);
  assert.deepEqual(await checkRuns(world, repo.fullName, a), [], "A's cancelled run posted a check");
  assert.equal((await checkRuns(world, repo.fullName, b)).length, 1);
  assert.deepEqual(await world.verdaccio.versions("com.studio.preview-quick"), ["1.0.0"], "a preview published");
});

/// Discord messages whose embed has `title`.
function alertsTitled(title) {
  return world.discord.messages.filter((m) => m.embeds?.[0]?.title === title);
}

test("self-hosted runners dead: the watchdog moves the stuck run to GitHub-hosted runners, one alert, and one when they are back", async () => {
  world.runner.publishRunner = POOL;
  await world.setSelfHostedPool("offline");
  try {
    const repo = await repoWith("stranded", [["Packages/com.studio.stranded", "com.studio.stranded", "1.0.0"]]);
    bumpVersion(repo, "Packages/com.studio.stranded", "1.0.1");
    repo.commit("Bump while the studio's runners are down");
    const pushed = Date.now();
    const { answer } = await world.push(repo);
    assert.equal(answer.outcome, "dispatched");
    // GitHub queues the run on the pool's labels, and nothing takes it.
    const stuck = await world.runner.waitQueued(`${ORG}/stranded`);
    assert.deepEqual(stuck.labels, POOL);
    assert.deepEqual(await world.verdaccio.versions("com.studio.stranded"), [], "a queued run publishes nothing");

    // Ten minutes later (the tick's scheduledTime), the watchdog moves it.
    const moving = Date.now();
    const tick = await world.tick({ advanceMinutes: 11 });
    assert.equal(tick.moved, 1, JSON.stringify(tick));
    assert.deepEqual(tick.alerts, ["failover-started"], JSON.stringify(tick));
    await world.waitPublished([["com.studio.stranded", "1.0.1"]]);
    const stuckToPublished = Date.now() - moving;
    timings.push({ row: "dead self-hosted pool: stuck → published (fallback)", ms: stuckToPublished });
    timings.push({ row: "dead self-hosted pool: push → published (+11 min simulated)", ms: Date.now() - pushed });
    assert.equal(stuck.cancelled, true, "the stuck run was cancelled");
    const [fallback] = await world.runner.runsFor(`${ORG}/stranded`);
    assert.deepEqual(fallback.labels, ["ubuntu-latest"], "the marked run went to GitHub's runner");
    assert.equal(fallback.dispatch.client_payload.runner, "github-hosted");
    assert.equal(fallback.exitCode, 0, fallback.output);
    await world.assertAnnounced("com.studio.stranded", "1.0.1");
    console.log(`watchdog: ${tick.github_calls} GitHub requests for the tick that moved the run; stuck → published ${stuckToPublished} ms`);

    // Still dead ten minutes later: no second alert.
    const again = await world.tick({ advanceMinutes: 10 });
    assert.equal(again.failover_active, true, JSON.stringify(again));
    assert.deepEqual(again.alerts ?? [], [], JSON.stringify(again));
    assert.equal(alertsTitled("Self-hosted runners are not picking up publish runs").length, 1);
    console.log(`watchdog: ${again.github_calls} GitHub requests for a tick during the failover with nothing stuck`);

    // The pool is back and takes the next run itself; the next tick says so, once.
    await world.setSelfHostedPool("online");
    bumpVersion(repo, "Packages/com.studio.stranded", "1.0.2");
    repo.commit("Bump once the runners are back");
    await world.push(repo);
    await world.waitPublished([["com.studio.stranded", "1.0.2"]]);
    const runs = await world.runner.runsFor(`${ORG}/stranded`, 2);
    assert.equal(runs.at(-1).runner, "studio-1", "the self-hosted pool took it");
    const back = await world.tick({ advanceMinutes: 10 });
    assert.deepEqual(back.alerts, ["failover-ended"], JSON.stringify(back));
    assert.equal(alertsTitled("Self-hosted runners are back").length, 1);
    const quiet = await world.tick({ advanceMinutes: 10 });
    assert.deepEqual(quiet.alerts ?? [], []);
    assert.equal(quiet.github_calls, 1, `a quiet tick costs one request: ${JSON.stringify(quiet)}`);
    for (const log of world.logs) assert.ok(!log.message.includes(world.discord.url), "the Discord webhook URL was logged");
  } finally {
    world.runner.publishRunner = undefined;
    await world.setSelfHostedPool("online");
  }
});

test("reconcile's schedule silent for 2 hours: the watchdog runs it, and it catches up a lost run", async () => {
  const repo = await repoWith("quiet-net", [["Packages/com.studio.quiet-net", "com.studio.quiet-net", "1.0.0"]]);
  await world.verdaccio.seed("com.studio.quiet-net", "1.0.0");
  bumpVersion(repo, "Packages/com.studio.quiet-net", "1.1.0");
  repo.commit("Bump while a run is lost and reconcile's schedule is dropped");
  world.runner.outage(1);
  const pushed = Date.now();
  await world.push(repo);
  await world.runner.waitDropped(`${ORG}/quiet-net`);
  // Two hours pass and GitHub runs none of reconcile's scheduled runs (dropped, or the schedule disabled).
  const tick = await world.tick({ advanceMinutes: 121 });
  assert.equal(tick.nets_checked, true, JSON.stringify(tick));
  assert.equal(tick.reconcile_dispatched, true, JSON.stringify(tick));
  assert.deepEqual(tick.alerts, ["reconcile-dispatched"], JSON.stringify(tick));
  const [sweep] = await world.runner.waitReconciled(1);
  assert.match(sweep.output, /Studio\/quiet-net: 1 missing, dispatch: Sent/, sweep.output);
  await world.waitPublished([["com.studio.quiet-net", "1.1.0"]]);
  timings.push({ row: "reconcile's schedule silent: the watchdog runs it", ms: Date.now() - pushed });
  assert.equal(alertsTitled("Reconcile stopped running on its schedule").length, 1);
  // The dispatched run is reconcile's newest: the next hour's check finds it fresh.
  const next = await world.tick({ advanceMinutes: 61 });
  assert.equal(next.reconcile_dispatched, false, JSON.stringify(next));
  console.log(`watchdog: ${tick.github_calls} GitHub requests for the tick that checked the nets and dispatched reconcile`);
});

test("a dispatch accepted but its run never happens: reconcile publishes", async () => {
  const repo = await repoWith("outage", [["Packages/com.studio.outage", "com.studio.outage", "3.0.0"]]);
  // Before the outage the repository's current version is published (reconcile must not redo it).
  await world.verdaccio.seed("com.studio.outage", "3.0.0");
  bumpVersion(repo, "Packages/com.studio.outage", "3.1.0");
  repo.commit("Bump during a runner outage");
  world.runner.outage(1);
  const pushed = Date.now();
  const { answer } = await world.push(repo);
  assert.equal(answer.outcome, "dispatched");
  // The runner took the dispatch and dropped it: from here on nothing else will run it.
  await world.runner.waitDropped(`${ORG}/outage`);
  assert.deepEqual(await world.verdaccio.versions("com.studio.outage"), ["3.0.0"], "the run never happened");

  // Reconcile runs last in the matrix: every registered repository exists by now, so every line of
  // the sweep must be clean and the only catch-up is the lost run.
  const sweep = await world.reconcile();
  assert.equal(sweep.exitCode, 0, sweep.output);
  assert.match(sweep.output, /Studio\/outage: 1 missing, dispatch: Sent/);
  assert.equal(sweep.output.match(/missing/g)?.length, 1, sweep.output);
  await world.waitPublished([["com.studio.outage", "3.1.0"]]);
  timings.push({ row: "run never happens, reconcile catches up", ms: Date.now() - pushed });
  assert.ok(discordMentions("outage").length >= 1, "a catch-up is reported to Discord");

  // Nothing changed since: the next sweep costs one conditional request per active repository, all
  // answered 304, and dispatches nothing.
  const dispatched = (await world.github.dispatches()).length;
  const quiet = await world.reconcile();
  assert.equal(quiet.exitCode, 0, quiet.output);
  const [, total, notModified] = requestSummary(quiet.output);
  const active = REGISTRY.repositories.filter((r) => r.status === "active").length + 1; // + toggle, enabled
  assert.equal(Number(total), active, quiet.output);
  assert.equal(Number(notModified), active, quiet.output);
  assert.equal((await world.github.dispatches()).length, dispatched);
  const [, cold] = requestSummary(sweep.output);
  console.log(`reconcile: ${cold} GitHub requests for the sweep that caught up, ${total} (all 304) for the quiet one, ${active} active repositories`);
});

test("a registered repository GitHub will not show us: only its line of the sweep fails", async () => {
  // Deleted, renamed, or not (or no longer) in the App's installation: GitHub answers 404 for its reads.
  // The sweep still checks every other repository; the run fails so that a person looks.
  const registry = structuredClone(REGISTRY);
  registry.repositories.find((r) => r.url === url("toggle")).status = "active";
  registry.repositories.push({ url: url("vanished"), status: "active" });
  world.central.write("config/repositories.json", registry);
  const dispatched = (await world.github.dispatches()).length;
  const sweep = await world.reconcile();
  assert.equal(sweep.exitCode, 1, sweep.output);
  assert.match(sweep.output, /Studio\/vanished: FAILED: /, sweep.output);
  const upToDate = sweep.output.match(/: up to date \(/g)?.length ?? 0;
  assert.equal(upToDate, registry.repositories.length - 1, sweep.output);
  assert.doesNotMatch(sweep.output, /missing/, sweep.output);
  assert.equal((await world.github.dispatches()).length, dispatched, "nothing to catch up");
  requestSummary(sweep.output);
});
