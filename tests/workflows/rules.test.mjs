// The rules the workflows must keep to run on GitHub as it really behaves, read from the workflow files
// themselves (actionlint and zizmor check syntax and injection; these check our deployment's promises).
// Each rule names the GitHub behaviour it guards against. Run by scripts/lint-workflows.sh.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { load as parse } from "js-yaml";

const ROOT = join(fileURLToPath(import.meta.url), "../../..");
const DIR = join(ROOT, ".github/workflows");
const FILES = readdirSync(DIR).filter((f) => /\.ya?ml$/.test(f));
const text = (file) => readFileSync(join(DIR, file), "utf8");
const workflow = (file) => parse(text(file));
const on = (wf) => wf.on ?? wf[true]; // YAML 1.1 reads a bare `on` key as the boolean true
const steps = (wf) => Object.values(wf.jobs).flatMap((job) => job.steps ?? []);
const step = (wf, name) => {
  const found = steps(wf).find((s) => s.name === name);
  assert.ok(found, `no step named ${JSON.stringify(name)}`);
  return found;
};

// Every pinned action, with what its own action.yml says at that commit (`runs.using`; a composite's
// inner actions checked the same way). GitHub runs Node 20 actions on Node 24 by force from 2026: a pin
// to a Node 20 release must not come back. A new pin goes in this table once its action.yml is read.
const PINS = {
  "actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8": "v5.0.0, node24",
  "actions/upload-artifact@b7c566a772e6b6bfb58ed0dc250532a479d7789f": "v6.0.0, node24",
  "actions/cache@27d5ce7f107fe9357f9df03efb73ab90386fccae": "v5.0.5, node24",
  "actions/cache/restore@27d5ce7f107fe9357f9df03efb73ab90386fccae": "v5.0.5, node24",
  "actions/cache/save@27d5ce7f107fe9357f9df03efb73ab90386fccae": "v5.0.5, node24",
  "actions/create-github-app-token@1b10c78c7865c340bc4f6099eb2f838309f1e8c3": "v3.1.1, node24",
  "actions/attest-build-provenance@96278af6caaf10aea03fd8d33a09a777ca52d62f":
    "v3.2.0, composite of actions/attest v3.2.0 (node24) and its predicate action 2.0.0 (node24)",
};

test("every action is pinned to a commit whose runtime is known to be Node 24", () => {
  for (const file of FILES) {
    for (const s of steps(workflow(file))) {
      if (!s.uses) continue;
      assert.match(s.uses, /@[0-9a-f]{40}$/, `${file}: ${s.uses} is not pinned to a full commit`);
      assert.ok(PINS[s.uses], `${file}: ${s.uses} is not in the table of checked pins`);
    }
  }
});

test("no workflow names the default branch: the central repository's may be master", () => {
  for (const file of FILES) {
    const wf = workflow(file);
    for (const [event, filter] of Object.entries(on(wf) ?? {})) {
      for (const key of ["branches", "branches-ignore"]) {
        assert.ok(!filter?.[key], `${file}: on.${event}.${key} names branches`);
      }
    }
    assert.doesNotMatch(text(file), /refs\/heads\/(main|master)\b/, `${file} hard-codes a branch ref`);
  }
});

test("the binary is built apart from the tests, for the default branch, and never cancelled", () => {
  const wf = workflow("publisher-binary.yml");
  assert.equal(wf.concurrency, undefined, "a concurrency group would cancel a waiting commit's build");
  const [job] = Object.values(wf.jobs);
  assert.match(job.if, /github\.event\.repository\.default_branch/);
  assert.match(job.if, /github\.event_name == 'schedule'/, "a scheduled run has no repository in its payload");
  const names = job.steps.map((s) => s.uses?.split("@")[0] ?? s.name);
  const upload = names.indexOf("actions/upload-artifact");
  const attest = names.indexOf("actions/attest-build-provenance");
  assert.ok(upload >= 0 && upload < attest, "the artifact is uploaded before the attestation, which may be unavailable");
  assert.match(job.steps[attest].if, /vars\.UPM_ATTESTATION != 'off'/);
  assert.ok(!JSON.stringify(workflow("ci.yml")).includes("upload-artifact"), "ci.yml builds no binary");
  // What the publish and reconcile jobs download and verify (--signer-workflow) is this workflow's.
  assert.match(readFileSync(join(ROOT, "scripts/fetch-publisher.sh"), "utf8"), /^workflow=publisher-binary\.yml$/m);
});

test("every job that compiles pins one Rust toolchain, at least the crates' rust-version", () => {
  const pins = new Map();
  for (const file of FILES) {
    for (const [name, job] of Object.entries(workflow(file).jobs)) {
      const compiles = (job.steps ?? []).some((s) => /\bcargo |scripts\/setup\.sh/.test(s.run ?? ""));
      if (compiles) pins.set(`${file}:${name}`, job.env?.RUSTUP_TOOLCHAIN);
    }
  }
  assert.ok(pins.size >= 4, `jobs that compile: ${[...pins.keys()]}`);
  const versions = new Set(pins.values());
  assert.equal(versions.size, 1, `one pin for all: ${JSON.stringify(Object.fromEntries(pins))}`);
  const [pin] = versions;
  assert.match(pin ?? "", /^\d+\.\d+\.\d+$/, "a release, not a channel that moves");
  const msrv = readFileSync(join(ROOT, "Cargo.toml"), "utf8").match(/^rust-version = "([\d.]+)"$/m)[1];
  const [a, b] = [pin, msrv].map((v) => v.split(".").map(Number));
  assert.ok(a[0] > b[0] || (a[0] === b[0] && a[1] >= b[1]), `toolchain ${pin} is older than rust-version ${msrv}`);
});

test("deploy.yml deploys on every change the worker's build reads, from the default branch only", () => {
  const wf = workflow("deploy.yml");
  const paths = on(wf).push.paths;
  // The crates the worker links by path (Cargo.toml's [dependencies]) are part of the worker.
  const cargo = readFileSync(join(ROOT, "Cargo.toml"), "utf8");
  const dependencies = cargo.slice(cargo.indexOf("[dependencies]"), cargo.indexOf("\n[", cargo.indexOf("[dependencies]") + 1));
  const linked = [...dependencies.matchAll(/path = "([^"]+)"/g)].map((m) => m[1]);
  assert.ok(linked.length > 0, "the worker links crates/github by path");
  for (const dir of linked) assert.ok(paths.includes(`${dir}/**`), `deploy.yml's paths leave out ${dir}/**`);
  for (const job of Object.values(wf.jobs)) assert.match(job.if, /github\.event\.repository\.default_branch/);
});

test("a job that checks out this repository may read it: private repositories answer 'not found'", () => {
  for (const file of FILES) {
    const wf = workflow(file);
    for (const [name, job] of Object.entries(wf.jobs)) {
      const checksOut = (job.steps ?? []).some((s) => s.uses?.startsWith("actions/checkout@") && !s.with?.repository);
      if (!checksOut) continue;
      const permissions = job.permissions ?? wf.permissions;
      const contents = permissions === "read-all" || permissions === "write-all" ? "read" : permissions?.contents;
      assert.ok(["read", "write"].includes(contents), `${file}: job ${name} checks out without contents: read`);
    }
  }
});

test("the publish job: runner checked first, 40- or 64-hex commits, LFS content, registered repositories only", () => {
  const wf = workflow("handle-publish-request.yml");
  const job = wf.jobs.publish;
  assert.equal(job.steps[0].name, "Check the runner", "the prerequisites are checked before anything needs them");
  for (const tool of ["git", "git-lfs", "curl", "jq", "gh"]) assert.match(job.steps[0].run, new RegExp(`\\b${tool}\\b`));

  // The request check, run as Actions runs it: the worker accepts SHA-256 commit ids, so must this.
  const check = step(wf, "Check the request").run;
  const run = (sha) => {
    try {
      execFileSync("bash", ["-e", "-o", "pipefail", "-c", check], {
        env: { PATH: process.env.PATH, UPM_REPOSITORY: "Studio/game", UPM_COMMIT_SHA: sha, GITHUB_OUTPUT: "/dev/null" },
        stdio: "pipe",
      });
      return true;
    } catch {
      return false;
    }
  };
  assert.equal(run("a".repeat(40)), true);
  assert.equal(run("b".repeat(64)), true);
  assert.equal(run("c".repeat(63)), false);
  assert.equal(run("g".repeat(40)), false);

  const checkout = job.steps.find((s) => s.uses?.startsWith("actions/checkout@") && s.with?.repository);
  assert.equal(checkout.with.lfs, true, "without lfs the tarball would hold LFS pointer files");
  const scripts = step(wf, "Check out the publisher's scripts and the registry file");
  assert.match(scripts.with["sparse-checkout"], /^config$/m);
  assert.equal(step(wf, "Publish").env.UPM_REGISTRY_FILE, "config/repositories.json");
});

test("runs-on honours the watchdog's github-hosted mark and nothing else; the run-name keeps the shape it reads", async () => {
  const { publishRun } = await import("../system/workflow.mjs");
  const pool = JSON.stringify(["self-hosted", "linux", "x64"]);
  const payload = { repository: "Studio/game", commit_sha: "a".repeat(40), delivery: "d-1" };
  const labels = (clientPayload, vars, inputs) => publishRun(ROOT, { clientPayload, vars, inputs }).labels;
  assert.deepEqual(labels(payload, { PUBLISH_RUNNER: pool }), ["self-hosted", "linux", "x64"]);
  assert.deepEqual(labels({ ...payload, runner: "github-hosted" }, { PUBLISH_RUNNER: pool }), ["ubuntu-latest"]);
  assert.deepEqual(labels({ ...payload, runner: "something-else" }, { PUBLISH_RUNNER: pool }), ["self-hosted", "linux", "x64"]);
  assert.deepEqual(labels(payload, {}), ["ubuntu-latest"]);
  // A manual run cannot choose: workflow_dispatch has no runner input, and no client_payload.
  const wf = workflow("handle-publish-request.yml");
  assert.equal(on(wf).workflow_dispatch.inputs.runner, undefined);
  assert.deepEqual(labels(undefined, { PUBLISH_RUNNER: pool }, { runner: "github-hosted" }), ["self-hosted", "linux", "x64"]);
  // src/watchdog.rs `publish_run` reads "publish <repository> @ <sha> (delivery <id>)" back.
  const { title } = publishRun(ROOT, { clientPayload: payload });
  assert.equal(title, `publish Studio/game @ ${"a".repeat(40)} (delivery d-1)`);
  const watchdog = readFileSync(join(ROOT, "src/watchdog.rs"), "utf8");
  for (const part of ['strip_prefix("publish ")', 'split_once(" @ ")', 'split_once(" (delivery ")']) {
    assert.ok(watchdog.includes(part), `src/watchdog.rs no longer reads the run-name with ${part}`);
  }
});

test("a timed-out step or job is still reported: step timeouts fit inside the job's", () => {
  for (const [file, jobName] of [["handle-publish-request.yml", "publish"], ["reconcile.yml", "reconcile"], ["preview.yml", "preview"], ["health.yml", "health"]]) {
    const job = workflow(file).jobs[jobName];
    const bounded = job.steps.filter((s) => s["timeout-minutes"]);
    assert.ok(bounded.some((s) => s.id === "fetch"), `${file}: the fetch (which may wait 15 minutes) has its own timeout`);
    const sum = bounded.reduce((total, s) => total + s["timeout-minutes"], 0);
    assert.ok(sum < job["timeout-minutes"], `${file}: step timeouts (${sum} min) must fit inside the job's (${job["timeout-minutes"]})`);
  }
  assert.match(step(workflow("handle-publish-request.yml"), "Report a failed run").if, /cancelled\(\)/);
  assert.match(step(workflow("health.yml"), "Report a failed run").if, /failure\(\) \|\| cancelled\(\)/);
});

test("reconcile names no repository in a token request, and scopes its reads to contents: read", () => {
  const wf = workflow("reconcile.yml");
  const tokenSteps = steps(wf).filter((s) => s.uses?.startsWith("actions/create-github-app-token@"));
  assert.equal(tokenSteps.length, 1, "one minted token: the dispatch token for this repository");
  assert.equal(tokenSteps[0].with.repositories, "${{ steps.central.outputs.name }}", "never github.event.repository.name (empty on a schedule)");
  const reconcile = step(wf, "Reconcile").env;
  assert.equal(reconcile.GITHUB_APP_TOKEN_PERMISSIONS, "contents:read");
  assert.equal(reconcile.GITHUB_TOKEN, undefined);
});

test("the preview job never publishes: only the App's key reaches it, its token reads contents and writes checks, nothing of the head runs", () => {
  const wf = workflow("preview.yml");
  assert.deepEqual(on(wf).repository_dispatch.types, ["package_preview"], "the worker's event type (src/dispatch.rs)");
  const dispatchRs = readFileSync(join(ROOT, "src/dispatch.rs"), "utf8");
  assert.match(dispatchRs, /PREVIEW_EVENT_TYPE: &str = "package_preview"/);
  const job = wf.jobs.preview;
  // No write permission of the job token, and no environment that could release a registry token.
  for (const [scope, level] of Object.entries(job.permissions)) assert.notEqual(level, "write", `${scope}: write`);
  assert.equal(job.environment, undefined, "the upm-publish environment holds NPM_TOKEN");
  // The only secret anywhere in the file is the App's key, in the token step only.
  const secrets = [...text("preview.yml").matchAll(/secrets\.([A-Za-z_]+)/g)].map((m) => m[1]);
  assert.deepEqual([...new Set(secrets)], ["UPM_APP_PRIVATE_KEY"], `secrets named: ${secrets}`);
  const tokenStep = step(wf, "Get a token for the package repository");
  const withSecret = job.steps.filter((s) => JSON.stringify(s).includes("secrets."));
  assert.deepEqual(withSecret.map((s) => s.name), [tokenStep.name]);
  assert.ok(!JSON.stringify(job.env ?? {}).includes("secrets."), "no secret in the job's env");
  // The App token: checks write, contents read, nothing else.
  const asked = Object.entries(tokenStep.with).filter(([k]) => k.startsWith("permission-"));
  assert.deepEqual(Object.fromEntries(asked), { "permission-checks": "write", "permission-contents": "read" });
  // The head is data: checked out after the token exists, without credentials left in .git, and no
  // later step runs anything from it (no script, no action from its path, no build tool).
  const names = job.steps.map((s) => s.name);
  const checkout = step(wf, "Check out the pull request's head");
  assert.ok(names.indexOf(checkout.name) > names.indexOf(tokenStep.name));
  assert.equal(checkout.with["persist-credentials"], false);
  const dir = checkout.with.path;
  for (const s of job.steps.slice(names.indexOf(checkout.name) + 1)) {
    assert.ok(!s.uses?.startsWith("./"), `${s.name}: runs an action from a checkout`);
    const run = s.run ?? "";
    assert.doesNotMatch(run, new RegExp(`(bash|sh|source|\\.)\\s+${dir}/|\\./${dir}/|\\b(npm|npx|make|cargo|dotnet|python3?)\\b`), `${s.name} may run the head's code`);
  }
  const preview = step(wf, "Preview");
  assert.match(preview.run, /preview --workspace upm-package-repo --base "\$UPM_BASE_SHA" --check-run/);
  assert.equal(preview.env.NPM_TOKEN, undefined);
  // A newer head cancels the older head's preview.
  assert.equal(wf.concurrency["cancel-in-progress"], true);
  assert.match(wf.concurrency.group, /client_payload\.repository.*client_payload\.pull_request/);
  // A preview that could not be made still answers: the last step, on failure, posts a completed
  // failing check run of the same name with the App's token (a required check must not wait forever).
  const report = job.steps.at(-1);
  assert.match(String(report.if), /failure\(\)/, "the last step runs on failure");
  assert.match(report.run, /check-runs/);
  assert.match(report.run, /name: "UPM publish preview"/);
  assert.match(report.run, /status: "completed", conclusion: "failure"/);
  assert.equal(report.env.GH_TOKEN, "${{ steps.app-token.outputs.token }}");
});

test("health mints no token in the workflow, reads with read scopes and writes only its fix pull requests", () => {
  const wf = workflow("health.yml");
  assert.equal(steps(wf).filter((s) => s.uses?.startsWith("actions/create-github-app-token@")).length, 0,
    "the CLI mints its tokens naming no repository: one uninstalled repository would refuse a token naming it");
  const health = step(wf, "Health").env;
  assert.equal(health.GITHUB_APP_TOKEN_PERMISSIONS, "contents:read,pull_requests:read");
  assert.equal(health.GITHUB_TOKEN, undefined);
  // Its writes are narrowed in the CLI to exactly these (publisher/src/health_run.rs).
  const glue = readFileSync(join(ROOT, "publisher/src/health_run.rs"), "utf8");
  assert.match(glue, /with_permissions\("contents:write,pull_requests:write"\)/);
  const job = wf.jobs.health;
  assert.deepEqual(job.permissions, { contents: "read", actions: "read", attestations: "read" });
  assert.ok(on(wf).schedule?.length === 1 && on(wf).workflow_dispatch, "weekly, and by hand");
  assert.equal(wf.concurrency["cancel-in-progress"], false);
});
