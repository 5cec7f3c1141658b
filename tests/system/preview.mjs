// The publish preview in the system test: `pull_request` deliveries built from GitHub's real payload, and
// the runner's part for `.github/workflows/preview.yml`, played from the workflow file itself.
//
// The runner walks the preview job's steps as GitHub's runner would, each with the environment the file
// maps for it (the job's `env`, then the step's, evaluated against the dispatch payload, the central
// repository's `vars` and `secrets`, earlier steps' outputs and the runner), and plays each step's action:
//
//   actions/checkout (no repository)   the central repository's scripts: the harness runs from ROOT
//   bash scripts/fetch-publisher.sh    the publisher scripts/test-system.sh built, put where the step puts it
//   actions/create-github-app-token    the App's JWT → GET …/installation → POST …/access_tokens, as the
//                                      action does, asking for the permissions the step names
//   actions/checkout (repository)      a clone of the package repository at the step's ref and path
//   actions/cache/restore              a miss (a first run)
//   any other `run`                    run with bash, as GitHub runs it (`bash -eo pipefail`), with
//                                      GITHUB_OUTPUT read back into the step's outputs
//
// A step of any other kind is an error naming it, never skipped. The workflow's `concurrency` is applied
// with GitHub's rule: a newer run in a group cancels the group's pending run and, with
// `cancel-in-progress`, its running one (SIGINT to the step, as the runner sends; SIGKILL 7.5 s later).
//
// Every secret the central repository holds (the App's key, the registry's write token, the Discord
// webhook) is in the `secrets` the runner evaluates against: only what the file maps reaches a step, and
// each run keeps the environment every step got, so a test can check where each secret went.

import assert from "node:assert/strict";
import { spawn, execFile } from "node:child_process";
import { createSign, randomUUID } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

import { load as parse } from "js-yaml";

import { git } from "./git.mjs";
import { FIXTURES_DIR, ROOT, sleep } from "../workerd/harness.mjs";
import { WORKFLOW as PUBLISH_WORKFLOW, evaluate, interpolate } from "./workflow.mjs";

const run = promisify(execFile);

export const PREVIEW_WORKFLOW = ".github/workflows/preview.yml";
/// The check run `upm-publisher preview --check-run` posts (publisher/src/preview.rs, CHECK_NAME).
export const CHECK_NAME = "UPM publish preview";
/// The studio's GitHub App as the fake GitHub knows it: check runs can only be written with its
/// installation tokens. The key is the tests' own (tests/fixtures/app-auth/README.md).
export const APP = {
  id: 424242,
  installation: 77,
  key: readFileSync(join(ROOT, "tests/fixtures/app-auth/test-only-app-key.pkcs1.pem"), "utf8"),
};
/// GitHub's runner: SIGINT to a cancelled step, SIGTERM/kill after 7.5 s.
const CANCEL_GRACE_MS = 7_500;
/// A bound on any one step the harness runs (the workflow's own step timeouts are minutes).
const STEP_BOUND_MS = 120_000;

/// The preview job of `.github/workflows/preview.yml`: the job, its steps, the index of the step that
/// runs `upm-publisher preview`, the workflow's concurrency and run-name.
export function previewJob(root = ROOT) {
  const workflow = parse(readFileSync(join(root, PREVIEW_WORKFLOW), "utf8"));
  const on = workflow.on ?? workflow[true]; // YAML 1.1 reads a bare `on` key as the boolean true
  const types = on?.repository_dispatch?.types ?? [];
  if (!types.includes("package_preview")) {
    throw new Error(`${PREVIEW_WORKFLOW} does not take repository_dispatch package_preview (types: ${JSON.stringify(types)})`);
  }
  const runsPreview = (s) => typeof s.run === "string" && /(upm-publisher|\$\{?UPM_PUBLISHER\}?)"?\s+preview\b/.test(s.run);
  for (const job of Object.values(workflow.jobs ?? {})) {
    const steps = job.steps ?? [];
    const preview = steps.findIndex(runsPreview);
    if (preview < 0) continue;
    return {
      name: workflow.name,
      runName: String(workflow["run-name"] ?? "").replace(/\s*\n\s*/g, " ").trim(),
      job,
      steps,
      preview,
      concurrency: workflow.concurrency ?? job.concurrency ?? null,
    };
  }
  throw new Error(`${PREVIEW_WORKFLOW}: no step runs \`upm-publisher preview\``);
}

/// workflow.mjs's evaluator, its errors naming this workflow file.
function expand(text, contexts) {
  try {
    return interpolate(String(text), contexts);
  } catch (error) {
    throw new Error(error.message.replace(PUBLISH_WORKFLOW, PREVIEW_WORKFLOW));
  }
}

function expandBlock(block, contexts) {
  return Object.fromEntries(Object.entries(block ?? {}).map(([k, v]) => [k, expand(v, contexts)]));
}

/// What the harness does for a step (see the file's header); an unknown step is an error.
function stepKind(step) {
  const uses = String(step.uses ?? "");
  if (uses.startsWith("actions/checkout@")) return step.with?.repository ? "checkout-package" : "checkout-scripts";
  if (uses.startsWith("actions/create-github-app-token@")) return "app-token";
  if (uses.startsWith("actions/cache/restore@")) return "cache-restore";
  if (uses) throw new Error(`${PREVIEW_WORKFLOW}: the system test does not play step "${step.name}" (uses ${uses})`);
  if (typeof step.run !== "string") throw new Error(`${PREVIEW_WORKFLOW}: step "${step.name}" has neither uses nor run`);
  if (/\bscripts\/fetch-publisher\.sh\b/.test(step.run)) return "fetch-publisher";
  return "run";
}

/// A JWT of the App (RS256; `iat` 60 s back and `exp` under GitHub's 10-minute cap, at GitHub's "now").
/// RS256 signatures are deterministic: two runs in one second would send the same JWT, so a `jti`
/// (which GitHub ignores) tells their requests apart in the fake's log.
function appJwt(appId, key, nowMs) {
  const now = Math.floor(nowMs / 1000);
  const part = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const claims = { iat: now - 60, exp: now + 540, iss: Number(appId), jti: randomUUID() };
  const unsigned = `${part({ alg: "RS256", typ: "JWT" })}.${part(claims)}`;
  const signature = createSign("RSA-SHA256").update(unsigned).sign(key).toString("base64url");
  return `${unsigned}.${signature}`;
}

/// `key=value` and `key<<DELIMITER … DELIMITER` lines of a GITHUB_OUTPUT file.
function readOutputs(file) {
  const outputs = {};
  if (!existsSync(file)) return outputs;
  const lines = readFileSync(file, "utf8").split("\n");
  for (let i = 0; i < lines.length; i += 1) {
    const heredoc = lines[i].match(/^([^=<]+)<<(.+)$/);
    if (heredoc) {
      const value = [];
      for (i += 1; i < lines.length && lines[i] !== heredoc[2]; i += 1) value.push(lines[i]);
      outputs[heredoc[1]] = value.join("\n");
      continue;
    }
    const pair = lines[i].match(/^([^=]+)=(.*)$/);
    if (pair) outputs[pair[1]] = pair[2];
  }
  return outputs;
}

/// The central repository's runner for preview.yml. `take` is called by world.mjs's Runner for every
/// `package_preview` dispatch the fake GitHub recorded, in the order GitHub recorded them.
export class PreviewRunner {
  /// `world` gives the fake GitHub, the repositories, Verdaccio and Discord; `bin` the built binaries;
  /// `central` the central repository's name.
  constructor(world, { bin, central }) {
    this.world = world;
    this.bin = bin;
    this.central = central;
    this.runs = [];
    this.groups = new Map();
    this.holds = new Map();
    this.workflow = previewJob();
  }

  /// The central repository's configuration: vars and every secret it holds (see the header).
  vars() {
    return { UPM_APP_ID: String(APP.id), UPM_REGISTRY: this.world.verdaccio.url, UPM_ATTESTATION: "" };
  }

  secrets() {
    return {
      UPM_APP_PRIVATE_KEY: APP.key,
      NPM_TOKEN: this.world.verdaccio.token,
      DISCORD_WEBHOOK_URL: this.world.discord.url,
    };
  }

  /// The values no preview step but the token step may see.
  secretValues() {
    return Object.values(this.secrets());
  }

  /// Queues a run for one dispatch, with GitHub's concurrency rule for the workflow's group.
  take(dispatch) {
    const payload = dispatch.client_payload ?? {};
    const entry = {
      dispatch,
      payload,
      queuedAt: Date.now(),
      status: "queued",
      stepEnv: {},
      outputs: {},
      output: "",
    };
    entry.cancelled = new Promise((resolve) => (entry.onCancel = resolve));
    const concurrency = this.workflow.concurrency;
    if (concurrency) {
      const contexts = { github: { event: { client_payload: payload }, event_name: "repository_dispatch", workflow: this.workflow.name } };
      const group = typeof concurrency === "string" ? concurrency : concurrency.group;
      entry.group = expand(group, contexts);
      const cancelInProgress = concurrency["cancel-in-progress"] === true;
      const slot = this.groups.get(entry.group) ?? { running: null, pending: null };
      this.groups.set(entry.group, slot);
      // GitHub: at most one running and one pending run per group; a newer run cancels the pending
      // one, and with cancel-in-progress the running one as well.
      if (slot.pending) this.#cancel(slot.pending, "a newer run of its concurrency group was queued");
      if (slot.running) {
        if (cancelInProgress) this.#cancel(slot.running, "a newer run of its concurrency group was queued");
        slot.pending = entry;
        entry.turn = new Promise((resolve) => (entry.start = resolve));
      } else {
        slot.running = entry;
        entry.turn = Promise.resolve(true);
      }
    } else {
      entry.turn = Promise.resolve(true);
    }
    this.runs.push(entry);
    entry.done = this.#lifecycle(entry).catch((error) => {
      entry.error = error.stack ?? String(error);
      entry.conclusion = "failure";
    }).finally(() => {
      entry.status = "completed";
      entry.endedAt = Date.now();
      this.#release(entry);
    });
  }

  #release(entry) {
    const slot = entry.group && this.groups.get(entry.group);
    if (!slot || slot.running !== entry) return;
    slot.running = slot.pending;
    slot.pending = null;
    slot.running?.start(true);
  }

  #cancel(entry, reason) {
    if (entry.cancelReason) return;
    entry.cancelReason = reason;
    entry.onCancel(reason);
    const slot = this.groups.get(entry.group);
    if (slot?.pending === entry) {
      slot.pending = null;
      entry.start(false);
    }
    if (entry.child && entry.child.exitCode === null) {
      // The step's whole process group (bash and the publisher under it), as the runner signals it.
      try {
        process.kill(-entry.child.pid, "SIGINT");
      } catch {
        // already gone
      }
      const kill = setTimeout(() => {
        try {
          process.kill(-entry.child.pid, "SIGKILL");
        } catch {
          // already gone
        }
      }, CANCEL_GRACE_MS);
      entry.child.once("close", () => clearTimeout(kill));
    }
  }

  async #setRun(entry, fields) {
    await this.world.github.control("PATCH", `/_fake/repos/${this.central}/runs/${entry.runId}`, fields);
  }

  /// The run as GitHub records it (queued, in progress, completed with a conclusion), around the job.
  async #lifecycle(entry) {
    const title = expand(this.workflow.runName, { github: { event: { client_payload: entry.payload } } });
    const { id } = await this.world.github.control("POST", `/_fake/repos/${this.central}/runs`, {
      workflow: "preview.yml", display_title: title, event: "repository_dispatch", labels: [String(this.workflow.job["runs-on"])],
    });
    entry.runId = id;
    if (!(await entry.turn) || entry.cancelReason) {
      entry.conclusion = "cancelled";
      await this.#setRun(entry, { status: "completed", conclusion: "cancelled" });
      return;
    }
    entry.status = "in_progress";
    entry.startedAt = Date.now();
    await this.#setRun(entry, { status: "in_progress", runner_name: "GitHub Actions 2" });
    const ok = await this.#job(entry);
    entry.conclusion = entry.cancelReason ? "cancelled" : ok ? "success" : "failure";
    await this.#setRun(entry, { status: "completed", conclusion: entry.conclusion });
    await this.#countRequests(entry);
  }

  /// The preview job's steps, in order; false when a step failed.
  async #job(entry) {
    const workspace = mkdtempSync(join(tmpdir(), "upm-system-preview-"));
    const runnerTemp = mkdtempSync(join(tmpdir(), "upm-system-preview-temp-"));
    entry.workspace = workspace;
    const contexts = {
      github: {
        event: { client_payload: entry.payload, action: "package_preview", repository: { full_name: this.central, default_branch: "main" } },
        event_name: "repository_dispatch",
        repository: this.central,
        workflow: this.workflow.name,
        // The workflow run's own token (the central repository's GITHUB_TOKEN); the fake accepts it nowhere.
        token: "ghs_central_workflow_run_token",
      },
      vars: this.vars(),
      secrets: this.secrets(),
      runner: { temp: runnerTemp, os: "Linux" },
      env: {},
      steps: {},
    };
    const jobEnv = expandBlock(this.workflow.job.env, contexts);
    contexts.env = { ...jobEnv };
    // What GitHub's runner sets for every step.
    const runnerEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      CI: "true",
      GITHUB_ACTIONS: "true",
      GITHUB_API_URL: this.world.github.url,
      GITHUB_SERVER_URL: "https://github.com",
      GITHUB_REPOSITORY: this.central,
      GITHUB_EVENT_NAME: "repository_dispatch",
      GITHUB_RUN_ID: String(2_000_000 + this.runs.indexOf(entry)),
      GITHUB_WORKSPACE: workspace,
      RUNNER_TEMP: runnerTemp,
      GITHUB_STEP_SUMMARY: join(runnerTemp, "summary.md"),
    };
    entry.githubRunId = runnerEnv.GITHUB_RUN_ID;
    // GitHub: after a failed step only the steps whose condition asks for `failure()` run; a condition
    // without a status function means `success() && (condition)`.
    let failed = false;
    for (const [index, step] of this.workflow.steps.entries()) {
      if (entry.cancelReason) return false;
      const condition = step.if === undefined ? undefined : String(step.if).replace(/^\$\{\{(.*)\}\}$/s, "$1").trim();
      if (failed && !/\bfailure\(\)/.test(condition ?? "")) continue;
      if (condition !== undefined && !evaluate(condition.replaceAll("failure()", String(failed)), contexts)) continue;
      const kind = stepKind(step);
      const env = { ...jobEnv, ...expandBlock(step.env, { ...contexts, env: { ...jobEnv } }) };
      const inputs = expandBlock(step.with, { ...contexts, env });
      const id = step.id ?? `step-${index}`;
      entry.stepEnv[id] = { ...env, ...(kind === "app-token" ? { "with.private-key": inputs["private-key"] } : {}) };
      let outputs = {};
      const fail = (why) => {
        entry.failedStep ??= step.name;
        if (why) entry.error ??= why;
        failed = true;
      };
      try {
        if (kind === "checkout-scripts") {
          // The harness runs from the repository's root: the scripts are there.
        } else if (kind === "fetch-publisher") {
          mkdirSync(env.UPM_PUBLISHER_DIR, { recursive: true });
          symlinkSync(join(this.bin, "upm-publisher"), join(env.UPM_PUBLISHER_DIR, "upm-publisher"));
        } else if (kind === "app-token") {
          outputs = await this.#appToken(entry, inputs);
        } else if (kind === "checkout-package") {
          await this.#checkout(entry, workspace, inputs);
        } else if (kind === "cache-restore") {
          outputs = { "cache-hit": "false" };
        } else {
          if (index === this.workflow.preview && !(await this.#held(entry))) return false;
          const result = await this.#bash(entry, step, { ...runnerEnv, ...env }, workspace, index === this.workflow.preview);
          outputs = result.outputs;
          if (result.exitCode !== 0) {
            fail();
            continue;
          }
        }
      } catch (e) {
        // A played action that fails (a checkout of a commit the repository does not have) fails its
        // step, as on GitHub, and the job goes on to the steps that ask for failure().
        fail(String(e?.message ?? e));
        continue;
      }
      entry.outputs[id] = outputs;
      if (step.id) contexts.steps[step.id] = { outputs, outcome: "success", conclusion: "success" };
    }
    return !failed;
  }

  /// actions/create-github-app-token with `owner` and `repositories`: the installation of the first
  /// repository, then a token for the named repositories with the `permission-*` inputs.
  async #appToken(entry, inputs) {
    const jwt = appJwt(inputs["app-id"], inputs["private-key"], Date.now() + (this.world.clockOffsetMs ?? 0));
    entry.jwt = jwt;
    const owner = inputs.owner;
    const repositories = String(inputs.repositories ?? "").split(/[\s,]+/).filter(Boolean);
    const permissions = Object.fromEntries(
      Object.entries(inputs)
        .filter(([k, v]) => k.startsWith("permission-") && v)
        .map(([k, v]) => [k.slice("permission-".length).replaceAll("-", "_"), v]),
    );
    const headers = { authorization: `Bearer ${jwt}`, accept: "application/vnd.github+json", "content-type": "application/json" };
    const installation = await fetch(`${this.world.github.url}/repos/${owner}/${repositories[0]}/installation`, { headers });
    assert.equal(installation.status, 200, `the token step: GET /repos/${owner}/${repositories[0]}/installation answered ${installation.status}`);
    const { id } = await installation.json();
    const minted = await fetch(`${this.world.github.url}/app/installations/${id}/access_tokens`, {
      method: "POST",
      headers,
      body: JSON.stringify({ repositories, permissions }),
    });
    assert.equal(minted.status, 201, `the token step: POST /app/installations/${id}/access_tokens answered ${minted.status}`);
    const { token } = await minted.json();
    entry.token = token;
    entry.tokenPermissions = permissions;
    entry.tokenRepositories = repositories;
    return { token, "installation-id": String(id), "app-slug": "upm-auto-publisher" };
  }

  /// actions/checkout of a package repository: the repository at the ref (a sha; a fork's head is
  /// reachable in the base repository as refs/pull/N/head, so it is fetched by sha), full history.
  async #checkout(entry, workspace, inputs) {
    const repo = this.world.repos.get(String(inputs.repository).toLowerCase());
    assert.ok(repo, `the checkout step names ${inputs.repository}, which the system test does not host`);
    const path = join(workspace, inputs.path ?? ".");
    await run("git", ["clone", "--quiet", "--no-checkout", repo.url, path]);
    await run("git", ["-C", path, "fetch", "--quiet", "origin", inputs.ref]);
    await run("git", ["-C", path, "checkout", "--quiet", "--detach", inputs.ref]);
    entry.checkout = { repository: inputs.repository, ref: inputs.ref, path: inputs.path };
  }

  /// A `run` step: bash as GitHub runs it, in the workspace, its whole environment recorded.
  async #bash(entry, step, env, workspace, isPreview) {
    const scriptFile = join(workspace, "..", `${entry.runId}-${step.id ?? "step"}.sh`);
    writeFileSync(scriptFile, step.run);
    const outputFile = join(env.RUNNER_TEMP, `${step.id ?? "step"}-output`);
    const stepEnv = { ...env, GITHUB_OUTPUT: outputFile };
    if (isPreview) entry.env = stepEnv;
    const child = spawn("bash", ["--noprofile", "--norc", "-eo", "pipefail", scriptFile], {
      cwd: workspace,
      env: stepEnv,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    entry.child = child;
    const bound = setTimeout(() => this.#cancel(entry, `step "${step.name}" ran past ${STEP_BOUND_MS} ms`), STEP_BOUND_MS);
    const collect = (c) => (entry.output += c);
    child.stdout.on("data", collect);
    child.stderr.on("data", collect);
    const exitCode = await new Promise((resolve, reject) => {
      child.on("error", reject);
      child.on("close", (code, signal) => resolve(code ?? `killed by ${signal}`));
    });
    clearTimeout(bound);
    entry.child = null;
    if (isPreview) entry.exitCode = exitCode;
    return { exitCode, outputs: readOutputs(outputFile) };
  }

  /// A hold on the preview step of the run for `headSha` (see `hold`): true to go on, false when the
  /// run was cancelled while it waited.
  async #held(entry) {
    const hold = this.holds.get(entry.payload.head_sha);
    if (!hold) return true;
    hold.reach(entry);
    return Promise.race([hold.released.then(() => true), entry.cancelled.then(() => false)]);
  }

  /// Makes the run for `headSha` wait before its preview step: a run still in its set-up steps (which
  /// take tens of seconds on GitHub: the publisher's download, the token, the checkout). Returns
  /// `{ reached(ms), release() }`: `reached` waits until the run is there and returns it.
  hold(headSha) {
    const hold = {};
    hold.arrived = new Promise((resolve) => (hold.reach = resolve));
    hold.released = new Promise((resolve) => (hold.release = resolve));
    hold.reached = async (ms = 30_000) => {
      let timer;
      const timeout = new Promise((resolve) => (timer = setTimeout(resolve, ms)));
      const entry = await Promise.race([hold.arrived, timeout]);
      clearTimeout(timer);
      assert.ok(entry, `the preview run of ${headSha} did not reach its preview step within ${ms} ms\nruns:\n${this.describe()}`);
      return entry;
    };
    this.holds.set(headSha, hold);
    return hold;
  }

  /// The requests the run made to GitHub's REST API: the token step's (with the App's JWT) and the
  /// preview's (with the installation token), from the fake's log.
  async #countRequests(entry) {
    const requests = await (await fetch(`${this.world.github.url}/_fake/requests`)).json();
    entry.requests = {
      tokenStep: requests.filter((r) => entry.jwt && r.token === entry.jwt).map((r) => `${r.method} ${r.path} ${r.status}`),
      preview: requests.filter((r) => entry.token && r.token === entry.token).map((r) => `${r.method} ${r.path} ${r.status}`),
    };
  }

  /// The runs for the pull request's head `headSha`.
  runsOf(headSha) {
    return this.runs.filter((r) => r.payload.head_sha === headSha);
  }

  /// Waits until a run for `headSha` has ended; returns it.
  async ended(headSha, ms = 60_000) {
    const deadline = Date.now() + ms;
    for (;;) {
      const entry = this.runsOf(headSha).find((r) => r.status === "completed");
      if (entry) {
        await entry.done;
        return entry;
      }
      assert.ok(Date.now() < deadline, `no preview run for ${headSha} ended within ${ms} ms\nruns:\n${this.describe()}`);
      await sleep(25);
    }
  }

  /// Waits until a run for `headSha` was cancelled; returns it.
  async cancelledRun(headSha, ms = 30_000) {
    const deadline = Date.now() + ms;
    for (;;) {
      const entry = this.runsOf(headSha).find((r) => r.cancelReason);
      if (entry) return entry;
      assert.ok(Date.now() < deadline, `the preview run for ${headSha} was not cancelled within ${ms} ms\nruns:\n${this.describe()}`);
      await sleep(25);
    }
  }

  describe() {
    return this.runs
      .map(
        (r) =>
          `- ${r.payload.repository}#${r.payload.pull_request} @ ${String(r.payload.head_sha).slice(0, 12)}: ${r.status}` +
          `${r.conclusion ? ` ${r.conclusion}` : ""}${r.cancelReason ? ` (${r.cancelReason})` : ""}` +
          `${r.failedStep ? ` failed at "${r.failedStep}"` : ""}${r.error ? `\n${r.error}` : ""}\n${r.output.slice(-1500)}`,
      )
      .join("\n");
  }

  async stop() {
    for (const hold of this.holds.values()) hold.release();
    await Promise.all(this.runs.map((r) => r.done));
  }
}

/// The check runs named CHECK_NAME on `sha` of `repository`, as GitHub lists a commit's (newest first),
/// each with its annotations and the summary (read through the API a client of the pull request uses).
export async function checkRuns(world, repository, sha) {
  const { check_runs: runs } = await world.github.api(
    `/repos/${repository}/commits/${sha}/check-runs?check_name=${encodeURIComponent(CHECK_NAME)}`,
  );
  for (const run of runs) {
    run.annotations = run.output.annotations_count ? await world.github.api(`/repos/${repository}/check-runs/${run.id}/annotations`) : [];
  }
  return runs;
}

/// Waits until the newest CHECK_NAME run on `sha` is completed; returns every run on the sha (newest
/// first) and the time it was seen completed.
export async function waitCheck(world, repository, sha, ms = 60_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const runs = await checkRuns(world, repository, sha);
    if (runs[0]?.status === "completed") return { runs, at: Date.now() };
    assert.ok(
      Date.now() < deadline,
      `no completed "${CHECK_NAME}" check run on ${repository}@${sha.slice(0, 12)} within ${ms} ms ` +
        `(runs there: ${JSON.stringify(runs.map((r) => r.status))})\npreview runs:\n${world.previews.describe()}`,
    );
    await sleep(25);
  }
}

let pullRequestIds = 0;

/// A repository object of a webhook payload, shaped like `template` (the real payload's), for `fullName`.
function repositoryObject(template, fullName, { defaultBranch, fork }) {
  const [owner, name] = fullName.split("/");
  return {
    ...template,
    id: 900_000 + (pullRequestIds % 1000),
    name,
    full_name: fullName,
    owner: { ...template.owner, login: owner, url: `https://api.github.com/users/${owner}`, html_url: `https://github.com/${owner}` },
    html_url: `https://github.com/${fullName}`,
    url: `https://api.github.com/repos/${fullName}`,
    clone_url: `https://github.com/${fullName}.git`,
    fork,
    default_branch: defaultBranch,
  };
}

/// The `pull_request` webhook payload GitHub sends an organization hook, built from the real payload
/// (the fixture pull_request/opened.payload.json) with this pull request's fields: `action`, `number`,
/// `draft`, the head (`sha`, `ref`, and `repository` when it is a fork's) and the base (`base`: the
/// GitRepo the pull request merges into, its `branch` unless `baseRef` is given, at `baseSha`).
/// A `synchronize` carries `before` and `after`, as GitHub's does.
export function pullRequestPayload({ action, number, base, baseRef = base.branch, baseSha, headSha, headRef, headRepository = base.fullName, draft = false, before }) {
  pullRequestIds += 1;
  const fixture = JSON.parse(readFileSync(join(FIXTURES_DIR, "pull_request/opened.payload.json"), "utf8"));
  const baseRepo = repositoryObject(fixture.repository, base.fullName, { defaultBranch: base.branch, fork: false });
  const fork = headRepository.toLowerCase() !== base.fullName.toLowerCase();
  const headRepo = repositoryObject(fixture.pull_request.head.repo, headRepository, { defaultBranch: base.branch, fork });
  const [baseOwner] = base.fullName.split("/");
  const [headOwner] = headRepository.split("/");
  const user = (login) => ({ ...fixture.sender, login, url: `https://api.github.com/users/${login}`, html_url: `https://github.com/${login}` });
  const pr = fixture.pull_request;
  const payload = {
    action,
    number,
    pull_request: {
      ...pr,
      id: 279_000_000 + pullRequestIds,
      number,
      url: `https://api.github.com/repos/${base.fullName}/pulls/${number}`,
      html_url: `https://github.com/${base.fullName}/pull/${number}`,
      diff_url: `https://github.com/${base.fullName}/pull/${number}.diff`,
      patch_url: `https://github.com/${base.fullName}/pull/${number}.patch`,
      issue_url: `https://api.github.com/repos/${base.fullName}/issues/${number}`,
      title: `Change ${headRef}`,
      state: "open",
      draft,
      user: user(headOwner),
      author_association: fork ? "CONTRIBUTOR" : "MEMBER",
      head: { ...pr.head, label: `${headOwner}:${headRef}`, ref: headRef, sha: headSha, user: user(headOwner), repo: headRepo },
      base: { ...pr.base, label: `${baseOwner}:${baseRef}`, ref: baseRef, sha: baseSha, user: user(baseOwner), repo: baseRepo },
    },
    repository: baseRepo,
    organization: { login: baseOwner },
    sender: user(fork ? headOwner : "studio-dev"),
  };
  if (action === "synchronize") Object.assign(payload, { before, after: headSha });
  return payload;
}

/// GitHub's side of a pull request from a fork: the fork's head becomes reachable in the base
/// repository as `refs/pull/N/head` (what the preview's checkout fetches by sha).
export function exposePullHead(base, fork, branch, number) {
  git(base.bare, "fetch", "--quiet", fork.bare, `+refs/heads/${branch}:refs/pull/${number}/head`);
}

/// A fork of `base` owned by someone outside the organization, at the base's branch head.
export function forkOf(world, base, fullName) {
  const fork = world.repo(fullName, { branch: base.branch });
  git(fork.work, "fetch", "--quiet", base.bare, base.branch);
  git(fork.work, "reset", "--quiet", "--hard", "FETCH_HEAD");
  fork.push();
  return fork;
}

/// The developer pushes their clone's HEAD to `branch`, which is not the publishing branch: GitHub
/// holds the commit and delivers the push, which the worker ignores. Returns the new head.
export async function pushBranch(world, repo, branch) {
  const payload = repo.push(branch);
  await world.mirror(repo);
  const { answer } = await world.deliver(payload);
  assert.equal(answer.outcome, "ignored", `a push to ${branch}: ${JSON.stringify(answer)}`);
  return payload.after;
}
