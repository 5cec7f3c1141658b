// The README's local loop, end to end: `scripts/dev.sh` (wrangler dev, local KV seeded, dry run) on a free
// port on 127.0.0.1, then the replay recipe — `scripts/replay.sh` (openssl + curl) and the README's own
// curl lines — against it. wrangler dev is always stopped (its whole process group).
//
// Run it on its own, not next to the Miniflare tests: wrangler dev's [build] step rewrites build/ (with
// --no-opt), which the Miniflare tests load. scripts/test-worker.sh runs it first, then rebuilds.
//
// Secrets: dev.sh writes .dev.vars on first run and wrangler dev reads secrets only from there, so this test
// signs with the secret in .dev.vars (as replay.sh does by default) and deletes .dev.vars afterwards if it
// was dev.sh that created it. .wrangler/state (local KV) is git-ignored.

import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { ROOT, sleep } from "./harness.mjs";

// wrangler dev runs the worker's dev build before it listens; scripts/test-worker.sh compiles that build
// first, so here it is up to date (≈ 10 s warm). The bound stays generous for a run of this file alone.
const READY_TIMEOUT_MS = 180_000;
const DEV_VARS = join(ROOT, ".dev.vars");

let dev; // {child, port, url, output: string}
let devVarsExisted;

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function groupAlive(pid) {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function stopGroup(child) {
  if (!child || !groupAlive(child.pid)) return;
  process.kill(-child.pid, "SIGTERM");
  for (let i = 0; i < 100 && groupAlive(child.pid); i += 1) await sleep(50);
  if (groupAlive(child.pid)) process.kill(-child.pid, "SIGKILL");
  for (let i = 0; i < 40 && groupAlive(child.pid); i += 1) await sleep(50);
}

/// Runs a command; resolves {code, stdout, stderr} whatever the exit status.
function run(command, args, env = {}) {
  return new Promise((resolve) => {
    execFile(command, args, { cwd: ROOT, env: { ...process.env, ...env }, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (error.code ?? 1) : 0, stdout, stderr });
    });
  });
}

/// The JSON delivery log line wrangler dev printed for a delivery id (bounded wait).
async function logLineFor(delivery) {
  for (let i = 0; i < 100; i += 1) {
    for (const line of dev.output.split("\n")) {
      if (!line.startsWith("{")) continue;
      try {
        const parsed = JSON.parse(line);
        if (parsed.msg === "delivery" && parsed.delivery === delivery) return parsed;
      } catch {
        // wrangler's own lines
      }
    }
    await sleep(50);
  }
  assert.fail(`no log line for ${delivery} in wrangler dev's output:\n${dev.output.slice(-2000)}`);
}

before(async () => {
  devVarsExisted = existsSync(DEV_VARS);
  const port = await freePort();
  const child = spawn("bash", [join(ROOT, "scripts/dev.sh")], {
    cwd: ROOT,
    env: { ...process.env, PORT: String(port), DRY_RUN: "true" },
    detached: true, // its own process group, so wrangler and workerd stop with it
    stdio: ["ignore", "pipe", "pipe"],
  });
  dev = { child, port, url: `http://127.0.0.1:${port}`, output: "" };
  // Should this process die first (a timeout, Ctrl-C), the server must not outlive it.
  process.once("exit", () => {
    if (groupAlive(child.pid)) process.kill(-child.pid, "SIGKILL");
  });
  child.stdout.on("data", (d) => (dev.output += d));
  child.stderr.on("data", (d) => (dev.output += d));
  let exited = null;
  child.on("exit", (code) => (exited = code));

  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (exited !== null) assert.fail(`scripts/dev.sh exited with ${exited}:\n${dev.output.slice(-3000)}`);
    if (Date.now() > deadline) assert.fail(`wrangler dev not healthy within ${READY_TIMEOUT_MS} ms:\n${dev.output.slice(-3000)}`);
    try {
      const response = await fetch(`${dev.url}/health`, { signal: AbortSignal.timeout(2000) });
      if (response.status === 200) {
        dev.health = await response.json();
        break;
      }
    } catch {
      // not listening yet
    }
    await sleep(250);
  }
}, { timeout: READY_TIMEOUT_MS + 30_000 });

after(async () => {
  await stopGroup(dev?.child);
  const leftOver = dev && groupAlive(dev.child.pid);
  if (!devVarsExisted) rmSync(DEV_VARS, { force: true });
  assert.ok(!leftOver, "wrangler dev's process group is gone");
});

test("wrangler dev is up; anyone learns status and version only", () => {
  assert.deepEqual(Object.keys(dev.health).sort(), ["status", "version"]);
  assert.equal(dev.health.status, "ok");
  assert.ok(!JSON.stringify(dev.health).includes(readDevSecret()), "no secret in /health");
});

function readDevVar(name) {
  return readFileSync(DEV_VARS, "utf8").match(new RegExp(`^${name}=(.*)$`, "m"))?.[1].replace(/^"(.*)"$/, "$1");
}

function readDevSecret() {
  return readDevVar("WEBHOOK_SECRET");
}

test("scripts/replay.sh: the crafted push is dispatched (dry run)", async () => {
  const delivery = `replay-${process.pid}-push`;
  const { code, stdout, stderr } = await run("bash", ["scripts/replay.sh", "", "push", `${dev.url}/`], {
    DELIVERY_ID: delivery,
    WEBHOOK_SECRET: "",
  });
  assert.equal(code, 0, stderr);
  const body = JSON.parse(stdout);
  assert.equal(body.outcome, "dispatched");
  assert.equal(body.dry_run, true);
  assert.equal(body.delivery, delivery);
  assert.equal(body.repository, "Codertocat/Hello-World");
  assert.equal(body.package_path, "Packages/com.codertocat.hello");
  assert.equal(body.reason, "dry run: would dispatch Codertocat/Hello-World@8f1d2c3b4a59 (Packages/com.codertocat.hello)");
  const log = await logLineFor(delivery);
  assert.equal(log.status, 200);
  assert.equal(log.outcome, "dispatched");

  // The details, with the HEALTH_TOKEN dev.sh wrote into .dev.vars (a .dev.vars from before it did has
  // none): dry run, and the registry seeded from the test registry, never the production file.
  const token = readDevVar("HEALTH_TOKEN");
  if (token) {
    const health = await (await fetch(`${dev.url}/health`, { headers: { Authorization: `Bearer ${token}` } })).json();
    assert.equal(health.dry_run, true);
    const entries = JSON.parse(readFileSync(join(ROOT, "tests/fixtures/registry.json"), "utf8")).repositories.length;
    assert.equal(health.registry.entries, entries);
    assert.equal(health.registry.tier, "memory");
  }
});

test("scripts/replay.sh with the real ping payload answers pong", async () => {
  const { code, stdout } = await run("bash", [
    "scripts/replay.sh",
    join(ROOT, "tests/fixtures/github-webhooks/ping/payload.json"),
    "ping",
    `${dev.url}/`,
  ], { WEBHOOK_SECRET: "" });
  assert.equal(code, 0);
  assert.equal(JSON.parse(stdout).reason, "pong");
});

test("scripts/replay.sh with a wrong secret is refused with 401", async () => {
  const delivery = `replay-${process.pid}-wrong`;
  const { code, stdout } = await run("bash", ["scripts/replay.sh", "", "push", `${dev.url}/`], {
    DELIVERY_ID: delivery,
    WEBHOOK_SECRET: "not-the-dev-secret",
  });
  assert.equal(code, 22, "curl --fail-with-body exits 22 on an HTTP error");
  const body = JSON.parse(stdout);
  assert.equal(body.outcome, "rejected");
  assert.equal(body.reason, "X-Hub-Signature-256 does not match the body for any configured secret");
  const log = await logLineFor(delivery);
  assert.equal(log.status, 401);
  // wrangler's own request line, printed after the worker's log line.
  for (let i = 0; i < 100 && !/POST \/ 401 Unauthorized/.test(dev.output); i += 1) await sleep(50);
  assert.match(dev.output, /POST \/ 401 Unauthorized/);
});

test("the README's curl + openssl recipe, as written, gets the same answer", async () => {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const section = readme.split(/^## Replaying a delivery with curl$/m)[1];
  assert.ok(section, 'README.md has a "## Replaying a delivery with curl" section');
  const recipe = section.match(/```sh\n([\s\S]*?)```/)?.[1];
  assert.ok(recipe && recipe.includes("openssl dgst -sha256 -hmac"), "the section's first sh block is the recipe");
  const script = recipe.replaceAll("http://127.0.0.1:8787/", `${dev.url}/`);
  assert.notEqual(script, recipe, "the recipe posts to the local worker");
  const { code, stdout, stderr } = await run("bash", ["-euo", "pipefail", "-c", script], {
    WEBHOOK_SECRET: readDevSecret(),
  });
  assert.equal(code, 0, stderr);
  const body = JSON.parse(stdout);
  assert.equal(body.outcome, "dispatched");
  assert.equal(body.dry_run, true);
});
