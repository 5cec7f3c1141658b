// The system test's world: every real piece of UPM Auto Publisher running together on loopback.
//
//   developer ──git push──▶ local bare repositories (the "GitHub" remotes)
//        │                         │ mirrored into the fake GitHub (refs, trees, blobs)
//        └─ push payload built from the git objects, signed ──▶ the worker (build/, in workerd)
//                                                                   │ registry read, dispatch, sweeper
//                                                                   ▼
//                                     fake GitHub (crates/fake-github, the one fake every test uses)
//                                                                   │ recorded dispatches
//                                                                   ▼
//                 runner: handle-publish-request.yml's checkout + env mapping ──▶ upm-publisher publish
//                         preview.yml's steps (App token, checkout, env) ──▶ upm-publisher preview
//                                                                   │        └─▶ check run (fake GitHub)
//                                              real Verdaccio ◀─────┴─────▶ fake Discord
//
// The webhook sender plays GitHub's part of a delivery: it signs and posts it, and records the attempt
// (status, duration) in the fake GitHub's hook log, which is what the worker's sweeper reads. When the
// sweeper asks for a redelivery, the sender delivers the same payload again under the same guid, as
// GitHub does.

import assert from "node:assert/strict";
import { execFile, execFileSync, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

import { Miniflare, convertV4MiniflareOptions } from "miniflare";

import { GitRepo, git } from "./git.mjs";
import { ROOT, deliveryLines, sign, sleep, waitFor, workerModules } from "../workerd/harness.mjs";
import { FakeDiscord, Verdaccio } from "./services.mjs";
import { concurrencyGroup, publishEnvironment, publishRun } from "./workflow.mjs";
import { APP, PreviewRunner } from "./preview.mjs";

const run = promisify(execFile);

export const ORG = "Studio";
export const CENTRAL = `${ORG}/upm-auto-publisher`;
export const HOOK_ID = 4242;
const SECRET = "system-test-webhook-secret";
const TOKEN = "ghp_systemTestToken0123456789";
/// The native binaries (upm-publisher, fake-github); scripts/test-system.sh builds them here.
const BIN = process.env.UPM_BIN_DIR || join(ROOT, "target/debug");
/// The central repository's workflows as GitHub lists them (the watchdog reads their `state`).
const CENTRAL_WORKFLOWS = [
  { id: 101, name: "Handle publish request", path: ".github/workflows/handle-publish-request.yml", state: "active" },
  { id: 102, name: "Reconcile", path: ".github/workflows/reconcile.yml", state: "active" },
  { id: 103, name: "publisher binary", path: ".github/workflows/publisher-binary.yml", state: "active" },
];
/// The studio's self-hosted pool, as PUBLISH_RUNNER names it and as GitHub lists its one runner.
export const POOL = ["self-hosted", "linux", "x64"];

export class World {
  /// Starts the fake GitHub, Verdaccio, the fake Discord and the worker. `registry` is the central
  /// repository's config/repositories.json (the object).
  static async start({ registry }) {
    const world = new World();
    world.dir = mkdtempSync(join(tmpdir(), "upm-system-"));
    world.github = await FakeGitHubProcess.start(join(BIN, "fake-github"));
    [world.verdaccio, world.discord] = await Promise.all([Verdaccio.start(ROOT), FakeDiscord.start()]);
    await world.github.reset({
      tokens: [TOKEN],
      hooks: [{ org: ORG, id: HOOK_ID, deliveries: [] }],
      // The studio's App: with one configured, the fake takes check runs from its installation tokens only.
      app: {
        app_id: String(APP.id),
        key_pem: APP.key,
        installations: { [ORG.toLowerCase()]: APP.installation },
        permissions: { contents: "write", checks: "write", metadata: "read" },
      },
    });
    world.central = world.repo(CENTRAL);
    world.central.write("config/repositories.json", registry);
    world.central.commit("Register the studio's repositories");
    world.central.push();
    await world.github.control("PUT", "/_fake/repos", { ...repoSnapshot(world.central), workflows: CENTRAL_WORKFLOWS });
    await world.mirror(world.central);
    // The nets as a healthy deployment has them: reconcile ran on its schedule just now.
    await world.github.control("POST", `/_fake/repos/${CENTRAL}/runs`, {
      workflow: "reconcile.yml", display_title: "Reconcile", event: "schedule", status: "completed", conclusion: "success",
    });
    world.clockOffsetMs = 0;
    world.previews = new PreviewRunner(world, { bin: BIN, central: CENTRAL });
    world.runner = new Runner(world);
    world.logs = [];
    world.mf = new Miniflare(
      convertV4MiniflareOptions({
        modules: workerModules(),
        modulesRoot: join(ROOT, "build"),
        compatibilityDate: "2026-11-01",
        kvNamespaces: ["REGISTRY"],
        bindings: {
          WEBHOOK_SECRET: SECRET,
          GITHUB_TOKEN: TOKEN,
          DISPATCH_REPO: CENTRAL,
          GITHUB_API: world.github.url,
          REGISTRY_PATH: "config/repositories.json",
          REGISTRY_TTL_SECONDS: "60",
          DRY_RUN: "false",
          IGNORE_SENDERS: "github-actions[bot]",
          GITHUB_ORG: ORG,
          HOOK_ID: String(HOOK_ID),
          WATCHDOG: "on",
          DISCORD_WEBHOOK_URL: world.discord.url,
        },
        // Every outbound fetch of the worker goes to the fake GitHub, whatever host it names, except
        // the watchdog's alerts, which go to the fake Discord.
        outboundService: { node: (req, res) => world.outbound(req, res) },
        handleStructuredLogs: (log) => world.logs.push(log),
      }),
    );
    await world.mf.ready;
    return world;
  }

  constructor() {
    this.repos = new Map();
    /// The token the fake GitHub accepts (the worker's GITHUB_TOKEN; a legacy dispatcher's PAT).
    this.token = TOKEN;
    /// Every delivery the worker answered: {guid, status, answer, text}.
    this.answered = [];
    this.checkedDeliveries = 0;
  }

  /// The worker's side of every delivery since the last call: exactly one log line per answer, with the
  /// same status, outcome and reason, and neither the webhook secret nor the token in any answer or log.
  /// (The worker writes its line a few ms after the response, in the request's waitUntil.)
  async assertDeliveriesLogged() {
    const fresh = this.answered.slice(this.checkedDeliveries);
    this.checkedDeliveries = this.answered.length;
    for (const { guid, status, answer, text } of fresh) {
      const matching = () => this.deliveryLogs().filter((line) => line.delivery === guid && line.status === status);
      const logged = (await waitFor(() => matching().length > 0 && matching())) || [];
      assert.ok(logged.length >= 1, `no log line for delivery ${guid} (${status})`);
      assert.equal(logged.at(-1).outcome, answer.outcome);
      assert.equal(logged.at(-1).reason, answer.reason);
      for (const secret of [SECRET, TOKEN]) assert.ok(!text.includes(secret), `an answer leaks a secret: ${text}`);
    }
    for (const log of this.logs) {
      for (const secret of [SECRET, TOKEN]) assert.ok(!log.message.includes(secret), `a log line leaks a secret: ${log.message}`);
    }
  }

  /// Discord heard of `name@version` once its run ended (the success embed names both), and Unity's
  /// Package Manager can see it.
  async assertAnnounced(name, version) {
    await this.runner.idle();
    const messages = this.discord.messages.filter((m) => {
      const text = JSON.stringify(m);
      return text.includes(name) && text.includes(version);
    });
    assert.ok(messages.length >= 1, `Discord was not told of ${name}@${version}: ${this.discord.text().slice(0, 2000)}`);
    // "Published" is what Unity can see, not what Verdaccio stored.
    await this.verdaccio.assertVisibleToUnity(name, version);
  }

  /// A repository "on GitHub": a bare remote, a developer's clone, and (after `mirror`) the fake's copy.
  repo(fullName, options) {
    const repo = new GitRepo(this.dir, fullName, options);
    this.repos.set(fullName.toLowerCase(), repo);
    return repo;
  }

  /// Copies the repository's branch heads into the fake GitHub (what GitHub holds once a push landed).
  /// A push to the central repository also builds its publisher binary (publisher-binary.yml on push).
  async mirror(repo) {
    await this.github.control("PUT", "/_fake/repos", repoSnapshot(repo));
    if (repo === this.central) {
      await this.github.control("POST", `/_fake/repos/${CENTRAL}/runs`, {
        workflow: "publisher-binary.yml", display_title: "publisher binary", event: "push",
        status: "completed", conclusion: "success", head_sha: repo.head(), head_branch: repo.branch,
      });
    }
  }

  /// The worker's outbound fetches: the fake Discord's host goes there, everything else to the fake GitHub.
  outbound(req, res) {
    const target = new URL(req.url, `http://${req.headers.host}`);
    if (target.host === new URL(this.discord.url).host) return forward(req, res, new URL(this.discord.url));
    return this.github.proxy(req, res);
  }

  /// One cron tick (sweeper, then watchdog) with the world's clock moved `advanceMinutes` ahead, for
  /// the worker (the tick's scheduledTime, the watchdog's "now") and for the fake GitHub (its run
  /// creation times): "queued 11 minutes" or "no reconcile for 2 hours" need no waiting. Returns the
  /// watchdog's log line.
  async tick({ advanceMinutes = 0 } = {}) {
    this.clockOffsetMs += advanceMinutes * 60_000;
    await this.github.control("PUT", "/_fake/clock", { offset_secs: Math.round(this.clockOffsetMs / 1000) });
    const before = this.logs.length;
    const worker = await this.mf.getWorker();
    const result = await worker.scheduled({ cron: "*/10 * * * *", scheduledTime: new Date(Date.now() + this.clockOffsetMs) });
    assert.equal(result.outcome, "ok", "the scheduled handler completes");
    const line = await waitFor(() => watchdogLines(this.logs.slice(before))[0], 5_000);
    assert.ok(line, `the tick logged no watchdog line; it logged: ${this.logs.slice(before).map((l) => l.message).join("\n")}`);
    return line;
  }

  /// The studio's self-hosted runner, `online` or `offline`, as GitHub lists it and as the runner plays it.
  async setSelfHostedPool(status) {
    await this.github.control("PUT", "/_fake/runners", [
      { id: 1, name: "studio-1", os: "linux", status, busy: false, labels: POOL, org: ORG },
    ]);
    this.runner.selfHostedOnline = status === "online";
  }

  /// Pushes the developer's clone, mirrors it into the fake GitHub, and delivers the push webhook.
  async push(repo) {
    const payload = repo.push();
    await this.mirror(repo);
    return { payload, ...(await this.deliver(payload)) };
  }

  /// One webhook delivery as GitHub makes it: signed, posted, and recorded in the hook's log.
  async deliver(payload, { event = "push", guid = randomUUID(), redelivery = false } = {}) {
    const body = Buffer.from(JSON.stringify(payload));
    const started = Date.now();
    const response = await this.mf.dispatchFetch("http://worker.test/", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "user-agent": "GitHub-Hookshot/system-test",
        "x-github-event": event,
        "x-github-delivery": guid,
        "x-hub-signature-256": sign(SECRET, body),
      },
      body,
    });
    const text = await response.text();
    const answer = JSON.parse(text);
    const duration = (Date.now() - started) / 1000;
    await this.github.control("POST", `/_fake/hooks/${ORG}/${HOOK_ID}/deliveries`, {
      guid,
      delivered_at: new Date(started).toISOString().replace(/\.\d+Z$/, "Z"),
      redelivery,
      duration,
      status: response.status < 300 ? "OK" : `Invalid HTTP Response: ${response.status}`,
      status_code: response.status,
      event,
      action: payload.action ?? null,
      repository_id: null,
      payload,
      response: text,
    });
    this.answered.push({ guid, status: response.status, answer, text });
    return { status: response.status, answer, guid };
  }

  /// The worker's delivery log lines (JSON, msg "delivery").
  deliveryLogs() {
    return deliveryLines(this.logs);
  }

  /// Runs the worker's scheduled handler (the sweeper) once, then performs the redeliveries it asked for.
  async sweep() {
    const before = (await this.github.state()).redeliveries.length;
    const worker = await this.mf.getWorker();
    await worker.scheduled({ cron: "*/10 * * * *", scheduledTime: new Date() });
    const state = await this.github.state();
    const asked = state.redeliveries.slice(before);
    const results = [];
    for (const request of asked) {
      const original = state.hooks[0].deliveries.find((d) => d.guid === request.guid && !d.redelivery);
      assert.ok(original, `the sweeper asked to redeliver an unknown delivery ${request.guid}`);
      results.push(await this.deliver(original.payload, { event: original.event, guid: request.guid, redelivery: true }));
    }
    return { asked, results };
  }

  /// One reconcile sweep (`upm-publisher reconcile`, as reconcile.yml runs it) over the central
  /// repository's registry file as it is now; returns its exit code and output.
  async reconcile() {
    this.reconcileState ??= mkdtempSync(join(tmpdir(), "upm-system-reconcile-"));
    const child = spawn(join(BIN, "upm-publisher"), ["reconcile", "--registry-file", join(this.central.work, "config/repositories.json")], {
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        GITHUB_API_URL: this.github.url,
        GITHUB_TOKEN: TOKEN,
        UPM_REGISTRY: this.verdaccio.url,
        UPM_DISPATCH_REPO: CENTRAL,
        UPM_RECONCILE_STATE: this.reconcileState,
        DISCORD_WEBHOOK_URL: this.discord.url,
        GITHUB_STEP_SUMMARY: join(this.reconcileState, "summary.md"),
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    return finished(child);
  }

  /// Polls the registry until every `name@version` is there; returns the milliseconds it took. A
  /// transient answer (see Verdaccio.versions) counts as "not there yet", and the failure names them.
  async waitPublished(pairs, ms = 60_000) {
    const started = Date.now();
    const transient = [];
    for (;;) {
      const missing = [];
      for (const [name, version] of pairs) {
        const versions = await this.verdaccio.versions(name).catch((error) => {
          if (!error.transient) throw error;
          transient.push(error.message);
          return [];
        });
        if (!versions.includes(version)) missing.push(`${name}@${version}`);
      }
      if (missing.length === 0) return Date.now() - started;
      if (Date.now() - started > ms) {
        const seen = transient.length ? `\ntransient answers meanwhile: ${transient.slice(-5).join(" | ")}` : "";
        assert.fail(`not published within ${ms} ms: ${missing.join(", ")}${seen}\nruns:\n${this.runner.describe()}`);
      }
      await sleep(50);
    }
  }

  async stop() {
    await this.runner?.stop();
    await this.previews?.stop();
    await this.mf?.dispose();
    await this.github?.stop();
    this.verdaccio?.stop();
    await this.discord?.stop();
  }
}

/// The watchdog's JSON log lines among `logs`.
function watchdogLines(logs) {
  return logs.flatMap((log) => {
    try {
      const line = JSON.parse(log.message);
      return line?.msg === "watchdog" ? [line] : [];
    } catch {
      return [];
    }
  });
}

/// Forwards a request to `target`'s host, path and query kept.
function forward(req, res, target) {
  const url = new URL(req.url, `http://${req.headers.host}`);
  const upstream = http.request(
    { host: target.hostname, port: target.port, method: req.method, path: url.pathname + url.search, headers: { ...req.headers, host: target.host } },
    (answer) => {
      res.writeHead(answer.statusCode, answer.headers);
      answer.pipe(res);
    },
  );
  upstream.on("error", () => req.socket.destroy());
  req.pipe(upstream);
}

/// A child's exit code and everything it wrote (stdout and stderr, in arrival order), once it has ended
/// AND its pipes are drained. Node emits "exit" as soon as the process ends, possibly before the last
/// chunks of its output were read ("exit" docs: "stdio streams might still be open"); "close" comes after
/// both. Waiting for "exit" lost the last line of a sweep (reconcile's request summary) under load.
function finished(child) {
  let output = "";
  child.stdout.on("data", (c) => (output += c));
  child.stderr.on("data", (c) => (output += c));
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (exitCode, signal) => resolve({ exitCode: exitCode ?? `killed by ${signal}`, output }));
  });
}

/// The fake GitHub as a child process (`fake-github`, built from crates/fake-github).
class FakeGitHubProcess {
  static async start(bin) {
    assert.ok(existsSync(bin), `${bin} is missing: scripts/test-system.sh builds it`);
    // --idle-timeout bounds its life if this process dies without stopping it.
    const child = spawn(bin, ["--idle-timeout", "600"], { stdio: ["pipe", "pipe", "inherit"] });
    const url = await new Promise((resolve, reject) => {
      let out = "";
      child.stdout.on("data", (chunk) => {
        out += chunk;
        const match = out.match(/FAKE_GITHUB_URL=(\S+)/);
        if (match) resolve(match[1]);
      });
      child.on("exit", (code) => reject(new Error(`fake-github exited with ${code}`)));
    });
    return new FakeGitHubProcess(child, url);
  }

  constructor(child, url) {
    this.child = child;
    this.url = url;
    this.target = new URL(url);
  }

  async state() {
    const response = await fetch(`${this.url}/_fake/state`);
    assert.equal(response.status, 200);
    return response.json();
  }

  /// Replaces the whole state: only before anything else talks to the fake (a concurrent request's
  /// record would be lost). Later changes go through `control`'s atomic endpoints.
  async reset(state) {
    await this.control("PUT", "/_fake/state", state);
  }

  /// A control request; returns its JSON answer, if any.
  async control(method, path, body) {
    const response = await fetch(`${this.url}${path}`, {
      method,
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const text = await response.text();
    assert.ok(response.ok, `${method} ${path}: ${response.status} ${text}`);
    return text ? JSON.parse(text) : null;
  }

  /// A GET of the fake's REST API, as a client holding the world's token.
  async api(path) {
    const response = await fetch(`${this.url}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(response.status, 200, `GET ${path}`);
    return response.json();
  }

  async workflowDispatches() {
    return (await fetch(`${this.url}/_fake/workflow_dispatches`)).json();
  }

  async dispatches() {
    return (await fetch(`${this.url}/_fake/dispatches`)).json();
  }

  async fault(fault) {
    await this.control("POST", "/_fake/faults", fault);
  }

  /// Miniflare's outbound service: forwards the worker's request to the fake, path and query kept.
  proxy = (req, res) => {
    const url = new URL(req.url, this.url);
    const upstream = http.request(
      { host: this.target.hostname, port: this.target.port, method: req.method, path: url.pathname + url.search, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on("error", () => req.socket.destroy());
    req.pipe(upstream);
  };

  async stop() {
    try {
      await fetch(`${this.url}/_fake/shutdown`, { method: "POST" });
    } catch {
      // already gone
    }
    this.child.stdin.end();
  }
}

/// The fake's JSON form of a repository: branch heads, and for each head its commit, every tree and
/// every blob (with git's object ids, which the fake also uses). One recursive listing per head gives
/// both: each entry's parent tree is the tree listed at its directory (the root tree for top-level ones).
function repoSnapshot(repo) {
  const snapshot = { full_name: repo.fullName, default_branch: repo.branch, branches: {}, commits: {}, trees: {}, blobs: {} };
  const heads = git(repo.bare, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads/")
    .split("\n")
    .filter(Boolean);
  for (const line of heads) {
    const [branch, sha] = line.split(" ");
    snapshot.branches[branch] = sha;
    const [tree, parents, ...message] = git(repo.bare, "show", "-s", "--format=%T%n%P%n%B", sha).split("\n");
    const entries = git(repo.bare, "ls-tree", "-r", "-t", "--full-tree", sha)
      .split("\n")
      .filter(Boolean)
      .map((entry) => {
        const [meta, path] = entry.split("\t");
        const [, kind, object] = meta.split(" ");
        return { path, kind, object };
      });
    const treeAt = new Map([["", tree]]);
    for (const { path, kind, object } of entries) if (kind === "tree") treeAt.set(path, object);
    const children = new Map([...treeAt.values()].map((treeSha) => [treeSha, []]));
    const files = {};
    for (const { path, kind, object } of entries) {
      const slash = path.lastIndexOf("/");
      children.get(treeAt.get(slash < 0 ? "" : path.slice(0, slash))).push({ name: path.slice(slash + 1), kind, sha: object });
      if (kind === "blob") {
        files[path] = object;
        snapshot.blobs[object] ??= execBlob(repo.bare, object);
      }
    }
    for (const [treeSha, items] of children) snapshot.trees[treeSha] ??= items;
    snapshot.commits[sha] = { tree, parents: parents ? parents.split(" ") : [], message: message.join("\n").trim(), files };
  }
  return snapshot;
}

function execBlob(bare, sha) {
  return execFileSync("git", ["cat-file", "blob", sha], { cwd: bare, maxBuffer: 64 * 1024 * 1024 }).toString("base64");
}

/// Plays the Actions runner for handle-publish-request.yml: for each dispatch the fake GitHub recorded,
/// it checks out the repository at the dispatched commit as the workflow's checkout step does, and runs
/// the publisher with the environment the workflow builds. Runs are concurrent, as the workflow's are.
/// `outage(n)` drops the next n dispatches: a run that never happens.
///
/// Each run it takes is also a run in the fake GitHub, queued on the labels the workflow's `runs-on`
/// evaluates to (`publishRunner` plays `vars.PUBLISH_RUNNER`). A run on self-hosted labels while the
/// pool is offline (`World.setSelfHostedPool`) stays `queued`, as on GitHub, until the pool is back or
/// someone cancels it. It also plays reconcile.yml for the workflow dispatches GitHub recorded.
class Runner {
  constructor(world) {
    this.world = world;
    this.seen = 0;
    this.dropping = 0;
    this.runs = [];
    this.waiting = [];
    this.selfHostedOnline = true;
    this.publishRunner = undefined;
    this.workflowSeen = 0;
    this.reconciles = [];
    this.stopped = false;
    this.loop = this.#poll();
  }

  vars() {
    return this.publishRunner ? { PUBLISH_RUNNER: JSON.stringify(this.publishRunner) } : {};
  }

  async #setRun(id, fields) {
    await this.world.github.control("PATCH", `/_fake/repos/${CENTRAL}/runs/${id}`, fields);
  }

  /// Starts a queued entry on a runner: in progress, then completed with the publisher's outcome.
  #start(entry, runnerName) {
    entry.started = Date.now();
    entry.runner = runnerName;
    entry.done = (async () => {
      await this.#setRun(entry.runId, { status: "in_progress", runner_name: runnerName });
      const result = await this.#queued(entry.dispatch.client_payload, entry);
      await this.#setRun(entry.runId, { status: "completed", conclusion: result.exitCode === 0 ? "success" : "failure" });
      return result;
    })().then(
      (result) => Object.assign(entry, result, { ended: Date.now() }),
      (error) => Object.assign(entry, { error: String(error), ended: Date.now() }),
    );
  }

  /// Queued runs on the offline pool: taken once it is back, or gone once cancelled.
  async #tendWaiting() {
    for (const entry of [...this.waiting]) {
      if (this.selfHostedOnline) {
        this.waiting.splice(this.waiting.indexOf(entry), 1);
        entry.queued = false;
        this.#start(entry, "studio-1");
        continue;
      }
      const { jobs } = await this.world.github.api(`/repos/${CENTRAL}/actions/runs/${entry.runId}/jobs`);
      if (jobs[0]?.status === "completed") {
        this.waiting.splice(this.waiting.indexOf(entry), 1);
        entry.queued = false;
        entry.cancelled = jobs[0].conclusion === "cancelled";
        entry.ended = Date.now();
      }
    }
  }

  /// reconcile.yml runs GitHub queued for a workflow dispatch: run as reconcile.yml runs it.
  async #tendWorkflowDispatches() {
    const dispatches = await this.world.github.workflowDispatches().catch(() => []);
    for (const dispatch of dispatches.slice(this.workflowSeen)) {
      this.workflowSeen += 1;
      if (dispatch.workflow !== "reconcile.yml") continue;
      const entry = { dispatch, started: Date.now() };
      this.reconciles.push(entry);
      entry.done = (async () => {
        await this.#setRun(dispatch.run_id, { status: "in_progress", runner_name: "GitHub Actions 1" });
        const result = await this.world.reconcile();
        await this.#setRun(dispatch.run_id, { status: "completed", conclusion: result.exitCode === 0 ? "success" : "failure" });
        return Object.assign(entry, result, { ended: Date.now() });
      })();
    }
  }

  /// Waits until a run for `repository` is queued on the offline self-hosted pool; returns it.
  async waitQueued(repository, ms = 30_000) {
    const deadline = Date.now() + ms;
    for (;;) {
      const entry = this.waiting.find((r) => r.dispatch.client_payload.repository === repository);
      if (entry) return entry;
      assert.ok(Date.now() < deadline, `no run for ${repository} was queued on the self-hosted pool within ${ms} ms`);
      await sleep(25);
    }
  }

  /// Waits until reconcile.yml has run `count` times for a workflow dispatch; returns those runs.
  async waitReconciled(count = 1, ms = 120_000) {
    const deadline = Date.now() + ms;
    while (this.reconciles.length < count) {
      assert.ok(Date.now() < deadline, `reconcile.yml was not dispatched ${count} time(s) within ${ms} ms`);
      await sleep(25);
    }
    return Promise.all(this.reconciles.slice(0, count).map((r) => r.done));
  }

  outage(count) {
    this.dropping += count;
  }

  async #poll() {
    while (!this.stopped) {
      const dispatches = await this.world.github.dispatches().catch(() => []);
      for (const dispatch of dispatches.slice(this.seen)) {
        this.seen += 1;
        // preview.yml's runs (tests/system/preview.mjs), taken in the order GitHub recorded them.
        if (dispatch.event_type === "package_preview") {
          this.world.previews.take(dispatch);
          continue;
        }
        if (dispatch.event_type !== "package_publish") continue;
        if (this.dropping > 0) {
          this.dropping -= 1;
          this.runs.push({ dispatch, dropped: true });
          continue;
        }
        // GitHub queues the run on the labels `runs-on` evaluates to, titled by its `run-name`.
        const { labels, title } = publishRun(ROOT, { clientPayload: dispatch.client_payload, vars: this.vars() });
        const { id: runId } = await this.world.github.control("POST", `/_fake/repos/${CENTRAL}/runs`, {
          workflow: "handle-publish-request.yml", display_title: title, event: "repository_dispatch", labels,
        });
        const entry = { dispatch, labels, runId, queuedAt: Date.now() };
        this.runs.push(entry);
        if (labels.includes("self-hosted") && !this.selfHostedOnline) {
          entry.queued = true;
          this.waiting.push(entry);
          continue;
        }
        this.#start(entry, labels.includes("self-hosted") ? "studio-1" : "GitHub Actions 1");
      }
      await this.#tendWaiting().catch(() => {});
      await this.#tendWorkflowDispatches();
      await sleep(25);
    }
  }

  /// GitHub's concurrency rule, if the workflow declares a group: one run in progress and ONE pending
  /// per group; a newer pending run cancels the older pending one (GitHub's documented behaviour, which
  /// is why the publish workflow declares no group).
  async #queued(clientPayload, entry) {
    const concurrency = concurrencyGroup(ROOT, { clientPayload });
    if (!concurrency) return this.#run(clientPayload);
    this.groups ??= new Map();
    const slot = this.groups.get(concurrency.group) ?? { running: null, pending: null };
    this.groups.set(concurrency.group, slot);
    if (slot.running) {
      slot.pending?.cancel();
      const started = await new Promise((resolve) => {
        slot.pending = { cancel: () => resolve(false), start: () => resolve(true), entry };
      });
      if (!started) return { exitCode: null, cancelled: true, output: "cancelled: a newer run queued in its concurrency group" };
    }
    // Decided synchronously, so dispatches handled in one poll cannot all see an idle group.
    slot.running = entry;
    try {
      return await this.#run(clientPayload);
    } finally {
      slot.running = null;
      const next = slot.pending;
      slot.pending = null;
      if (next) {
        slot.running = next.entry;
        next.start();
      }
    }
  }

  async #run(clientPayload) {
    const workspace = mkdtempSync(join(tmpdir(), "upm-system-run-"));
    const runnerTemp = mkdtempSync(join(tmpdir(), "upm-system-temp-"));
    const { env, checkout: fetched } = publishEnvironment(ROOT, {
      clientPayload,
      vars: { UPM_REGISTRY: this.world.verdaccio.url },
      secrets: { NPM_TOKEN: this.world.verdaccio.token, DISCORD_WEBHOOK_URL: this.world.discord.url },
      runnerTemp,
    });
    // The workflow's sparse checkout of the central repository at its commit: the registry file, which
    // the publisher checks the dispatched repository against (UPM_REGISTRY_FILE).
    mkdirSync(join(workspace, "config"));
    copyFileSync(join(this.world.central.work, "config/repositories.json"), join(workspace, "config/repositories.json"));
    // The workflow's checkout step: the repository and ref it names, full history, at its path.
    const repo = this.world.repos.get(fetched.repository.toLowerCase());
    if (!repo) return { exitCode: null, output: `no such repository ${fetched.repository}` };
    const checkout = join(workspace, fetched.path);
    await run("git", ["clone", "--quiet", "--no-checkout", repo.url, checkout]);
    await run("git", ["-C", checkout, "checkout", "--quiet", "--detach", fetched.ref]);
    const child = spawn(join(BIN, "upm-publisher"), ["publish"], {
      cwd: workspace,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        ...env,
        // The step runs in GITHUB_WORKSPACE, where its relative UPM_WORKSPACE points at the checkout.
        GITHUB_SERVER_URL: "https://github.com",
        GITHUB_REPOSITORY: CENTRAL,
        GITHUB_RUN_ID: String(1_000_000 + this.runs.length),
        GITHUB_STEP_SUMMARY: join(runnerTemp, "summary.md"),
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    return { ...(await finished(child)), env };
  }

  /// Waits until `count` runs for `repository` have started and ended; returns them.
  async runsFor(repository, count = 1, ms = 60_000) {
    const deadline = Date.now() + ms;
    for (;;) {
      const runs = this.runs.filter((r) => r.done && r.dispatch.client_payload.repository === repository);
      if (runs.length >= count) {
        await Promise.all(runs.map((r) => r.done));
        return runs;
      }
      assert.ok(Date.now() < deadline, `${count} run(s) for ${repository} did not start within ${ms} ms`);
      await sleep(25);
    }
  }

  /// Waits until the runner has taken, and dropped (see `outage`), a dispatch for `repository`.
  async waitDropped(repository, ms = 30_000) {
    const deadline = Date.now() + ms;
    while (!this.runs.some((r) => r.dropped && r.dispatch.client_payload.repository === repository)) {
      assert.ok(Date.now() < deadline, `no dispatch for ${repository} reached the runner within ${ms} ms`);
      await sleep(25);
    }
  }

  /// Waits until every run started so far has ended.
  async idle() {
    await Promise.all(this.runs.filter((r) => r.done).map((r) => r.done));
    await Promise.all(this.reconciles.map((r) => r.done));
  }

  describe() {
    return this.runs
      .map((r) =>
        r.dropped
          ? `- dropped ${r.dispatch.client_payload.repository}@${r.dispatch.client_payload.commit_sha}`
          : !r.done
          ? `- ${r.cancelled ? "cancelled" : "queued"} ${r.dispatch.client_payload.repository} on ${JSON.stringify(r.labels)}`
          : `- ${r.dispatch.client_payload.repository} paths=${JSON.stringify(r.dispatch.client_payload.package_path)} exit=${r.exitCode}\n${(r.output ?? r.error ?? "").slice(-2000)}`,
      )
      .join("\n");
  }

  async stop() {
    this.stopped = true;
    await this.loop;
    await this.idle();
  }
}

