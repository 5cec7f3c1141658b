// Test harness for the worker in real workerd (Miniflare): one Miniflare per test file, a fake GitHub on
// the outbound side, signed deliveries, and the worker's log lines captured and parsed.
//
// The fake GitHub is Miniflare's `outboundService` in its Node-handler form (`{ node: (req, res) => … }`)
// rather than `async (req) => Response`: Miniflare turns an exception thrown by a fetch-style handler into
// an HTTP 500 whose body is the stack trace, so only a handler that owns the socket can produce a real
// network failure (it destroys the connection, and the worker's `fetch` rejects).
//
// Every request made through `Worker` checks the invariants of the HTTP contract that hold for every
// response (JSON, outcome + reason, no secret, no stack trace), so individual tests only assert what is
// specific to them.

import assert from "node:assert/strict";
import { createHmac, randomUUID } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import http from "node:http";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { Miniflare, convertV4MiniflareOptions } from "miniflare";
import { after, before, beforeEach } from "node:test";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
/// Real GitHub payloads: UPM_FIXTURES_DIR, else the copy vendored in tests/fixtures/github-webhooks, else
/// the shared one next to the repository.
export const FIXTURES_DIR = process.env.UPM_FIXTURES_DIR
  ? resolve(process.env.UPM_FIXTURES_DIR)
  : [resolve(ROOT, "tests/fixtures/github-webhooks"), resolve(ROOT, "../shared/fixtures/github-webhooks")].find(
      (dir) => existsSync(dir),
    ) ?? resolve(ROOT, "tests/fixtures/github-webhooks");

export const SECRET = "workerd-test-secret";
export const TOKEN = "ghp_workerdTestToken0123456789";
/// Unlocks /health's details (HEALTH_TOKEN).
export const HEALTH_TOKEN = "workerd-health-token-42";
export const CENTRAL = "Studio/upm-auto-publisher";
export const GITHUB_API = "http://github.localhost";
export const REGISTRY_PATH = "config/repositories.json";
export const DISPATCHES_PATH = `/repos/${CENTRAL}/dispatches`;
export const CONTENTS_PATH = `/repos/${CENTRAL}/contents/${REGISTRY_PATH}`;
/// src/registry.rs kv_key: the key names the copy's source (central repository, lower-cased, and path).
export const KV_KEY = `registry:v1:${CENTRAL.toLowerCase()}:${REGISTRY_PATH}`;
/// `Cargo.toml`'s package version, which the worker reports and sends as its User-Agent.
export const VERSION = readFileSync(join(ROOT, "Cargo.toml"), "utf8").match(/^version = "([^"]+)"/m)[1];

/// The registry the fake GitHub serves: every status, and a per-repository branch override.
export const REGISTRY = {
  $schema: "./schema.json",
  repositories: [
    { url: "https://github.com/Codertocat/Hello-World", status: "active" },
    { url: "https://github.com/Studio/Disabled-Repo", status: "disabled", note: "archived" },
    { url: "Studio/Pending-Repo", status: "pending" },
    { url: "https://github.com/Studio/Release-Train.git", status: "active", branch: "release" },
  ],
};
export const REGISTRY_TEXT = JSON.stringify(REGISTRY, null, 2) + "\n";

export function fixture(name) {
  return readFileSync(join(FIXTURES_DIR, name));
}

export function fixtureJson(name) {
  return JSON.parse(fixture(name).toString("utf8"));
}

/// The crafted push that publishes (tests/fixtures/README.md): a real GitHub payload whose one commit
/// modifies Packages/com.codertocat.hello/package.json on master. A fresh copy on every call, and a new
/// push: its `after` keeps the fixture's first 12 characters (8f1d2c3b4a59) and gets a unique rest, as
/// the worker's dedup by (repository, sha) answers a second copy of one push `duplicate`.
let pushCounter = 0;
export function publishingPush() {
  const push = JSON.parse(readFileSync(join(ROOT, "tests/fixtures/push-package-json.json"), "utf8"));
  pushCounter += 1;
  push.after = `8f1d2c3b4a59${(process.pid * 1000 + pushCounter).toString(16).padStart(28, "0")}`;
  return push;
}

/// A publishing push whose commit(s) change the given files: `changes` is a list of
/// `{added?, modified?, removed?}`, one per commit.
export function pushChanging(changes) {
  const push = publishingPush();
  const template = push.commits[0];
  push.commits = changes.map((change, i) => ({
    ...structuredClone(template),
    id: `${String(i).padStart(2, "0")}${template.id.slice(2)}`,
    added: change.added ?? [],
    modified: change.modified ?? [],
    removed: change.removed ?? [],
  }));
  return push;
}

export function sign(secret, body) {
  return "sha256=" + createHmac("sha256", secret).update(body).digest("hex");
}

export function bodyBytes(payload) {
  if (typeof payload === "string") return Buffer.from(payload, "utf8");
  if (payload instanceof Uint8Array) return Buffer.from(payload);
  return Buffer.from(JSON.stringify(payload), "utf8");
}

/// The worker's log lines with msg "delivery" (what `wrangler tail` shows per delivery), parsed.
export function deliveryLines(logs) {
  return logs.flatMap((log) => {
    try {
      const line = JSON.parse(log.message);
      return line?.msg === "delivery" ? [line] : [];
    } catch {
      return [];
    }
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/// Polls `condition` every 10 ms until it is truthy or `ms` have passed.
export async function waitFor(condition, ms = 3000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = condition();
    if (value) return value;
    if (Date.now() > deadline) return value;
    await sleep(10);
  }
}

/// A fake api.github.com: serves the registry file, records every request, and answers dispatches from
/// a plan that tests set up (`failNext`), 204 when the plan is empty.
export class FakeGitHub {
  constructor({ registry = REGISTRY_TEXT } = {}) {
    /// Every request the worker sent: {method, path, headers (lower-cased names), body}.
    this.requests = [];
    /// Requests to anything but the two endpoints the worker should use.
    this.unexpected = [];
    /// The path the registry file is served at (REGISTRY_PATH decides it).
    this.contentsPath = CONTENTS_PATH;
    /// How the contents API answers: {status, body} or "network".
    this.registry = { status: 200, body: registry };
    /// Behaviours for the next dispatches, consumed in order: a status, {status, body, headers, delayMs},
    /// or "network".
    this.dispatchPlan = [];
    /// Behaviour once the plan is empty.
    this.dispatchDefault = 204;
  }

  /// Queue behaviours for the next dispatch attempts.
  failNext(...behaviours) {
    this.dispatchPlan.push(...behaviours);
  }

  get dispatches() {
    return this.requests.filter((r) => r.method === "POST" && r.path === DISPATCHES_PATH);
  }

  get registryFetches() {
    return this.requests.filter((r) => r.method === "GET" && r.path === this.contentsPath);
  }

  /// Forgets what was recorded and planned (the registry answer is kept).
  clear() {
    this.requests.length = 0;
    this.dispatchPlan.length = 0;
    this.dispatchDefault = 204;
  }

  /// Reads the request's body, records the request, then calls `then(request)`.
  record(req, then) {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const url = new URL(req.url, GITHUB_API);
      const request = {
        method: req.method,
        url: `${url.origin}${url.pathname}${url.search}`,
        host: req.headers.host,
        path: decodeURIComponent(url.pathname),
        headers: req.headers,
        body: Buffer.concat(chunks).toString("utf8"),
      };
      this.requests.push(request);
      then(request);
    });
  }

  handler = (req, res) => {
    this.record(req, (request) => {
      let behaviour;
      if (request.method === "GET" && request.path === this.contentsPath) {
        behaviour = this.registry;
      } else if (request.method === "POST" && request.path === DISPATCHES_PATH) {
        behaviour = this.dispatchPlan.length ? this.dispatchPlan.shift() : this.dispatchDefault;
      } else {
        this.unexpected.push(request);
        behaviour = { status: 404, body: '{"message":"Not Found"}' };
      }
      answer(req, res, behaviour);
    });
  };
}

function answer(req, res, behaviour) {
  if (behaviour && typeof behaviour === "object" && behaviour.delayMs) {
    // A GitHub that takes its time (or stalls): answer later, unless the worker gave up first.
    const { delayMs, ...rest } = behaviour;
    const timer = setTimeout(() => answer(req, res, Object.keys(rest).length ? rest : 204), delayMs);
    res.on("close", () => clearTimeout(timer));
    return;
  }
  if (behaviour === "network") {
    // A connection reset: the worker's fetch rejects, as it would on a DNS or TLS failure.
    req.socket.destroy();
    return;
  }
  const { status, body = "", headers = {} } =
    typeof behaviour === "number" ? { status: behaviour, body: defaultBody(behaviour) } : behaviour;
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", ...headers });
  res.end(status === 204 ? undefined : body);
}

function defaultBody(status) {
  if (status === 204) return "";
  if (status === 401) return '{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest"}';
  if (status === 404) return '{"message":"Not Found"}';
  return `{"message":"Server Error ${status}"}`;
}

/// The worker's build output, read once: a rebuild while tests run cannot hand a half-written file to
/// Miniflare.
let modules;
export function workerModules() {
  modules ??= [
    { type: "ESModule", path: join(ROOT, "build/index.js"), contents: readFileSync(join(ROOT, "build/index.js")) },
    {
      type: "CompiledWasm",
      path: join(ROOT, "build/index_bg.wasm"),
      contents: readFileSync(join(ROOT, "build/index_bg.wasm")),
    },
  ];
  return modules;
}

export const DEFAULT_BINDINGS = {
  WEBHOOK_SECRET: SECRET,
  GITHUB_TOKEN: TOKEN,
  DISPATCH_REPO: CENTRAL,
  GITHUB_API,
  REGISTRY_PATH,
  REGISTRY_TTL_SECONDS: "60",
  DRY_RUN: "false",
  IGNORE_SENDERS: "github-actions[bot]",
  HEALTH_TOKEN,
};

function miniflareOptions({ github, bindings, logs }) {
  return convertV4MiniflareOptions({
    modules: workerModules(),
    modulesRoot: join(ROOT, "build"),
    compatibilityDate: "2026-11-01",
    kvNamespaces: ["REGISTRY"],
    bindings,
    outboundService: { node: github.handler },
    handleStructuredLogs: (log) => logs.push(log),
  });
}

/// The suite's worker and its fake GitHub, set by `useWorker`. node:test runs every test file in a
/// process of its own, so each file has its own.
export let worker;
export let github;

/// The hooks every suite file needs: one worker for the file (started with `options`), a clean fake
/// GitHub before each test, and at the end the one-log-line-per-delivery check and disposal.
export function useWorker(options) {
  before(async () => {
    worker = await startWorker(options);
    github = worker.github;
  });
  after(async () => {
    if (!worker) return;
    try {
      await worker.assertCleanRun();
    } finally {
      await worker.dispose();
    }
  });
  beforeEach(() => github.clear());
}

/// Starts the worker. `bindings` are merged over DEFAULT_BINDINGS; a binding set to `undefined` is left out.
export async function startWorker({ github = new FakeGitHub(), bindings = {} } = {}) {
  const merged = Object.fromEntries(
    Object.entries({ ...DEFAULT_BINDINGS, ...bindings }).filter(([, v]) => v !== undefined),
  );
  const logs = [];
  const options = () => miniflareOptions({ github, bindings: merged, logs });
  const mf = new Miniflare(options());
  await mf.ready;
  return new Worker(mf, github, logs, merged, options);
}

export class Worker {
  constructor(mf, github, logs, bindings, options) {
    this.mf = mf;
    this.github = github;
    /// Everything workerd logged: {timestamp, level, message}.
    this.logs = logs;
    this.bindings = bindings;
    this.options = options;
    /// Requests answered so far that must each have produced exactly one delivery log line.
    this.expectedLogLines = 0;
    this.baseBindings = { ...bindings };
    /// Every secret and token configured during the run: none may appear in a response or a log line.
    this.secretsSeen = new Set();
    this.#rememberSecrets();
  }

  /// The log lines with msg "delivery", parsed.
  get deliveryLogs() {
    return deliveryLines(this.logs);
  }

  async kv() {
    return this.mf.getKVNamespace("REGISTRY");
  }

  /// Waits for the KV value under `key` to satisfy `wanted` (given the parsed JSON, or null while there is
  /// none): the worker writes its records after the response, in the request's waitUntil. Fails naming
  /// `what` and the last value read when it never does.
  async kvWritten(key, wanted, what, ms = 5000) {
    const deadline = Date.now() + ms;
    for (;;) {
      const text = await (await this.kv()).get(key);
      const value = text === null ? null : JSON.parse(text);
      if (wanted(value)) return value;
      if (Date.now() > deadline) assert.fail(`${what} was not written to KV under ${key} within ${ms} ms; it holds ${text}`);
      await sleep(10);
    }
  }

  /// A fresh isolate with the same configuration: the memory tier is empty, KV is kept.
  async restart() {
    await this.mf.setOptions(this.options());
  }

  /// A fresh isolate configured with the bindings the worker started with, changed by `bindings`
  /// (`undefined` removes one). KV is kept.
  async reconfigure(bindings = {}) {
    for (const name of Object.keys(this.bindings)) delete this.bindings[name];
    for (const [name, value] of Object.entries({ ...this.baseBindings, ...bindings })) {
      if (value !== undefined) this.bindings[name] = value;
    }
    this.#rememberSecrets();
    await this.restart();
  }

  #rememberSecrets() {
    for (const secret of (this.bindings.WEBHOOK_SECRET ?? "").split(",")) {
      if (secret.trim()) this.secretsSeen.add(secret.trim());
    }
    if (this.bindings.GITHUB_TOKEN?.trim()) this.secretsSeen.add(this.bindings.GITHUB_TOKEN.trim());
    if (this.bindings.HEALTH_TOKEN?.trim()) this.secretsSeen.add(this.bindings.HEALTH_TOKEN.trim());
  }

  /// GET /health with the HEALTH_TOKEN bearer (the details), or as anyone with `{anonymous: true}`.
  async health({ anonymous = false } = {}) {
    const headers = anonymous ? {} : { Authorization: `Bearer ${this.bindings.HEALTH_TOKEN}` };
    return this.request("/health", { headers }, { expectLog: false });
  }

  async dispose() {
    await this.mf.dispose();
  }

  /// Any request; returns {status, headers, text, body (parsed JSON or null), log (this request's log line)}.
  async request(path, init = {}, { expectLog = true } = {}) {
    const before = this.deliveryLogs.length;
    const response = await this.mf.dispatchFetch(new URL(path, "http://worker.test"), init);
    const text = await response.text();
    return this.#check({ status: response.status, headers: response.headers, text }, init.method, before, expectLog);
  }

  /// A request written on a raw socket, for what fetch will not send: a Content-Length that does not match
  /// the body. Only `bodyStart` is written; the answer is awaited without ending the body, then the
  /// connection is dropped.
  async rawRequest(path, { method = "POST", headers = {}, bodyStart = "" } = {}) {
    const before = this.deliveryLogs.length;
    const url = new URL(path, await this.mf.ready);
    const { status, headers: responseHeaders, text } = await new Promise((resolve, reject) => {
      const req = http.request(url, { method, headers }, (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          resolve({
            status: res.statusCode,
            headers: new Headers(Object.entries(res.headers).map(([k, v]) => [k, String(v)])),
            text: Buffer.concat(chunks).toString("utf8"),
          });
          req.destroy();
        });
      });
      req.setTimeout(10_000, () => req.destroy(new Error("no answer within 10 s")));
      req.on("error", reject);
      req.flushHeaders();
      if (bodyStart) req.write(bodyStart);
    });
    return this.#check({ status, headers: responseHeaders, text }, method, before, true);
  }

  async #check({ status, headers, text }, method = "GET", before, expectLog) {
    const result = { status, headers, text, body: null, log: undefined };
    for (const secret of this.secretsSeen) {
      assert.ok(!text.includes(secret), `response leaks a secret: ${text}`);
    }
    assert.doesNotMatch(text, /(\n|\\n)\s+at /, "no stack trace in a response");
    if (method !== "HEAD") {
      assert.match(headers.get("content-type") ?? "", /^application\/json/);
      result.body = JSON.parse(text);
    }
    if (expectLog) {
      this.expectedLogLines += 1;
      const lines = await waitFor(() => {
        const fresh = this.deliveryLogs.slice(before);
        return fresh.length > 0 && fresh;
      });
      assert.ok(lines, `no delivery log line for a ${method} request (${status})`);
      result.log = lines[0];
      assert.equal(result.log.status, status, "the log line carries the response status");
      assert.equal(result.log.outcome, result.body.outcome);
      assert.equal(result.log.reason, result.body.reason);
      assert.equal(typeof result.log.elapsed_ms, "number");
      assert.ok(["info", "warn", "error"].includes(result.log.level), result.log.level);
      assert.ok(
        ["dispatched", "ignored", "duplicate", "rejected", "failed"].includes(result.body.outcome),
        `outcome ${result.body.outcome}`,
      );
      assert.equal(typeof result.body.reason, "string");
    }
    return result;
  }

  /// A webhook delivery signed the way GitHub signs it. `payload` is an object (sent as JSON), a string
  /// or bytes (sent as they are). Options: event, delivery (null leaves the header out), secret,
  /// signature (overrides; null leaves it out), form (send as application/x-www-form-urlencoded),
  /// contentType, path, headers.
  async deliver(payload, options = {}) {
    const {
      event = "push",
      delivery = randomUUID(),
      secret = SECRET,
      form = false,
      path = "/",
      headers: extra = {},
    } = options;
    let body = bodyBytes(payload);
    let contentType = "application/json";
    if (form) {
      body = Buffer.from(new URLSearchParams({ payload: body.toString("utf8") }).toString(), "utf8");
      contentType = "application/x-www-form-urlencoded";
    }
    if ("contentType" in options) contentType = options.contentType;
    const signature = "signature" in options ? options.signature : sign(secret, body);
    const headers = { "User-Agent": "GitHub-Hookshot/test", ...extra };
    if (contentType != null) headers["Content-Type"] = contentType;
    if (event != null) headers["X-GitHub-Event"] = event;
    if (delivery != null) headers["X-GitHub-Delivery"] = delivery;
    if (signature != null) headers["X-Hub-Signature-256"] = signature;
    const result = await this.request(path, { method: "POST", headers, body });
    result.delivery = delivery;
    if (delivery != null && result.body && result.status !== 400) {
      assert.equal(result.body.delivery, delivery, "the body names the delivery");
    }
    return result;
  }

  /// Checks, at the end of a file, that every answered request logged exactly one delivery line and that
  /// nothing the worker logged or sent carried a secret.
  async assertCleanRun() {
    await waitFor(() => this.deliveryLogs.length >= this.expectedLogLines, 2000);
    assert.equal(this.deliveryLogs.length, this.expectedLogLines, "exactly one log line per delivery");
    for (const log of this.logs) {
      for (const secret of this.secretsSeen) {
        assert.ok(!log.message.includes(secret), `a log line leaks a secret: ${log.message}`);
      }
    }
    assert.deepEqual(this.github.unexpected, [], "the worker only calls the two GitHub endpoints");
  }
}

/// A fake GitHub that also answers the routes a test adds (the sweeper's deliveries API, the App token
/// endpoints): `route(method, pathWithQuery, behaviour)`, where `behaviour` is what `failNext` takes, or a
/// function of the recorded request returning one (it may be async). Routed requests are recorded in
/// `requests` like the others; anything unrouted falls through to FakeGitHub.
export class RoutedGitHub extends FakeGitHub {
  routes = new Map();
  #base = this.handler;

  route(method, path, behaviour) {
    this.routes.set(`${method} ${path}`, behaviour);
    return this;
  }

  /// Requests recorded for `method path` (path with its query, if any).
  sentTo(method, path) {
    return this.requests.filter((r) => r.method === method && `${r.path}${new URL(r.url).search}` === path);
  }

  handler = (req, res) => {
    const url = new URL(req.url, GITHUB_API);
    const route = this.routes.get(`${req.method} ${decodeURIComponent(url.pathname)}${url.search}`);
    if (!route) return this.#base(req, res);
    this.record(req, async (request) => {
      const behaviour = typeof route === "function" ? await route(request) : route;
      answer(req, res, behaviour);
    });
  };
}

/// Runs the worker's cron handler once (what a `[triggers] crons` tick does) and returns the log lines
/// with msg "sweep" that it wrote, parsed.
export async function runScheduled(target, cron = "*/10 * * * *") {
  const before = target.logs.length;
  const fetcher = await target.mf.getWorker();
  const result = await fetcher.scheduled({ cron, scheduledTime: new Date() });
  assert.equal(result.outcome, "ok", "the scheduled handler completes");
  await waitFor(() => target.logs.length > before, 500);
  return target.logs.slice(before).flatMap((log) => {
    try {
      const line = JSON.parse(log.message);
      return line && line.msg === "sweep" ? [line] : [];
    } catch {
      return [];
    }
  });
}
