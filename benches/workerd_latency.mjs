// Our worker against the original JavaScript worker, side by side in ONE workerd (Miniflare), with ONE
// fake GitHub answering both, and a floor worker that only reads the body:
//
//   node benches/workerd_latency.mjs [--sizes 10k,1m,5m,10m,25m] [--runs N] [--cold-starts N]
//
// Workers in the one Miniflare (each at its own route, all called through dispatchFetch):
//   ours      build/ (the optimised build), dispatching for real to the fake GitHub (204)
//   ours-2key the same build with two webhook secrets (to measure one HMAC by difference)
//   ours-dry  the same build with DRY_RUN=true (to split the KV reads from the dispatch)
//   peer      the original worker, run as it is from ../shared/peers/upm-original/cloudflare-worker-index.js
//             (MIT; SOURCE.md there names the commit; PEER_WORKER overrides the path). It needs
//             GITHUB_WEBHOOK_SECRET, GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY: a throwaway RSA key is made
//             here; it fetches its registry (raw.githubusercontent.com), lists the App's installations,
//             creates an installation token and dispatches, all answered by the fake GitHub.
//   floor     `await request.arrayBuffer(); return new Response("ok")`: the harness's own cost.
//
// Every time is measured by the client (Node) around dispatchFetch, the median of N runs, the workers
// interleaved run by run, with a pause after each request (outside the timer; SETTLE_MS, 20 ms) so that
// work done after a response (our log line and dedup records, written with ctx.waitUntil 5 ms after it)
// does not land in the next request's time: Miniflare's KV puts are heavy (a request overlapping them
// took 7 ms longer), and a 5 ms pause did not cover them. "Own" time = worker − floor. Our per-stage
// breakdown is by difference between requests that stop at successive stages (each a median):
//   read     = ours(bad signature, 1 secret) − floor − verify
//   verify   = ours-2key(bad signature) − ours(bad signature)       (one HMAC over the body)
//   parse    = ours(signed tag push: classify, then the first filter check) − ours(bad signature)
//   filter   = ours(signed push of an unregistered repo: the file lists walked, registry from memory) − parse row
//   KV       = ours-dry(publishing push: the dedup read) − unregistered row
//   dispatch = ours(publishing push) − ours-dry(publishing push)
// A stage near the noise floor can come out slightly negative; the sum is the own time by construction.
//
// Prints tables, and `RESULT<TAB>key<TAB>value` lines for scripts/bench-worker.sh. Not a test: it only
// checks every request took the path it is meant to measure (status and outcome), so the numbers
// describe the right thing.

import { createHmac, generateKeyPairSync, randomUUID } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";

import { Miniflare, convertV4MiniflareOptions } from "miniflare";

import { CENTRAL, GITHUB_API, REGISTRY_PATH, ROOT, SECRET, publishingPush, startWorker } from "../tests/workerd/harness.mjs";

const { values } = parseArgs({
  options: {
    sizes: { type: "string", default: "10k,1m,5m,10m,25m" },
    runs: { type: "string", default: "" },
    "cold-starts": { type: "string", default: "5" },
  },
});
const SIZE_OF = { "10k": 10 * 1024, "1m": 1024 * 1024, "5m": 5 << 20, "10m": 10 << 20, "25m": 25 * 1024 * 1024 - 4096 };
const LABEL = { "10k": "10 KB", "1m": "1 MB", "5m": "5 MB", "10m": "10 MB", "25m": "25 MB" };
// Runs per size: many for small pushes (a 10 KB median moves by ±0.1 ms between runs of 150 on a 2-core
// machine), a few for the large ones (a 25 MB run takes about a second).
const DEFAULT_RUNS = { "10k": 300, "1m": 80, "5m": 12, "10m": 8, "25m": 5 };
const SIZES = values.sizes.split(",").map((s) => s.trim()).filter(Boolean);
for (const s of SIZES) if (!(s in SIZE_OF)) throw new Error(`unknown size ${s} (known: ${Object.keys(SIZE_OF)})`);
const COLD_STARTS = Number(values["cold-starts"]);

const PEER_PATH = resolve(process.env.PEER_WORKER ?? join(ROOT, "../shared/peers/upm-original/cloudflare-worker-index.js"));
const PEER_ORG = "The1Studio";
const PEER_CENTRAL = "The1Studio/UPMAutoPublisher";
const INSTALLATION_ID = 4242;

// --- the fake GitHub, for both workers ------------------------------------------------------------------
const OUR_REGISTRY = JSON.stringify({
  repositories: [{ url: "https://github.com/Codertocat/Hello-World", status: "active" }],
});
const PEER_REGISTRY = OUR_REGISTRY; // the same file format
const counts = { ourDispatch: 0, peerDispatch: 0, token: 0, installations: 0, peerRegistry: 0, ourRegistry: 0, other: 0 };

function fakeGitHub(req, res) {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const url = new URL(req.url, `http://${req.headers.host}`);
    const json = (status, body) => {
      res.writeHead(status, { "content-type": "application/json; charset=utf-8" });
      res.end(status === 204 ? undefined : JSON.stringify(body));
    };
    const path = decodeURIComponent(url.pathname);
    if (req.method === "GET" && path === `/repos/${CENTRAL}/contents/${REGISTRY_PATH}`) {
      counts.ourRegistry += 1;
      res.writeHead(200, { "content-type": "application/vnd.github.raw+json" });
      return res.end(OUR_REGISTRY);
    }
    if (req.method === "POST" && path === `/repos/${CENTRAL}/dispatches`) return (counts.ourDispatch += 1), json(204);
    if (req.method === "GET" && path === `/${PEER_CENTRAL}/master/config/repositories.json`) {
      counts.peerRegistry += 1;
      res.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
      return res.end(PEER_REGISTRY);
    }
    if (req.method === "GET" && path === "/app/installations") {
      counts.installations += 1;
      return json(200, [{ id: INSTALLATION_ID, account: { login: PEER_ORG } }]);
    }
    if (req.method === "POST" && path === `/app/installations/${INSTALLATION_ID}/access_tokens`) {
      counts.token += 1;
      return json(201, { token: "ghs_benchInstallationToken", expires_at: new Date(Date.now() + 3600e3).toISOString() });
    }
    if (req.method === "POST" && path === `/repos/${PEER_CENTRAL}/dispatches`) return (counts.peerDispatch += 1), json(204);
    counts.other += 1;
    json(404, { message: `Not Found (bench fake GitHub: ${req.method} ${url.host}${path})` });
  });
}

// --- the workers -----------------------------------------------------------------------------------------
function ourModules() {
  return [
    { type: "ESModule", path: join(ROOT, "build/index.js"), contents: readFileSync(join(ROOT, "build/index.js")) },
    { type: "CompiledWasm", path: join(ROOT, "build/index_bg.wasm"), contents: readFileSync(join(ROOT, "build/index_bg.wasm")) },
  ];
}

const OUR_BINDINGS = {
  WEBHOOK_SECRET: SECRET,
  GITHUB_TOKEN: "ghp_benchToken",
  DISPATCH_REPO: CENTRAL,
  GITHUB_API,
  REGISTRY_PATH,
  REGISTRY_TTL_SECONDS: "3600",
  DRY_RUN: "false",
};

function ours(name, bindings = {}) {
  return {
    name,
    routes: [`http://${name}.bench/*`],
    modules: ourModules(),
    modulesRoot: join(ROOT, "build"),
    compatibilityDate: "2026-11-01",
    kvNamespaces: { REGISTRY: `${name}-kv` },
    bindings: { ...OUR_BINDINGS, ...bindings },
    outboundService: { node: fakeGitHub },
  };
}

function miniflareOptions() {
  if (!existsSync(PEER_PATH)) throw new Error(`the original worker is not at ${PEER_PATH} (set PEER_WORKER)`);
  // A throwaway GitHub App key (PKCS#8, what the original imports), made for this run only.
  const { privateKey } = generateKeyPairSync("rsa", {
    modulusLength: 2048,
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  });
  return convertV4MiniflareOptions({
    handleStructuredLogs: () => {},
    workers: [
      ours("ours"),
      ours("ours-2key", { WEBHOOK_SECRET: `bench-other-secret,${SECRET}` }),
      ours("ours-dry", { DRY_RUN: "true", GITHUB_TOKEN: undefined }),
      {
        name: "peer",
        routes: ["http://peer.bench/*"],
        modules: [{ type: "ESModule", path: PEER_PATH, contents: readFileSync(PEER_PATH) }],
        modulesRoot: dirname(PEER_PATH),
        compatibilityDate: "2026-11-01",
        bindings: { GITHUB_WEBHOOK_SECRET: SECRET, GITHUB_APP_ID: "123456", GITHUB_APP_PRIVATE_KEY: privateKey },
        outboundService: { node: fakeGitHub },
      },
      {
        name: "floor",
        routes: ["http://floor.bench/*"],
        modules: true,
        script: `export default { async fetch(request) { await request.arrayBuffer(); return new Response("ok"); } };`,
        compatibilityDate: "2026-11-01",
      },
    ].map((w) => ({ ...w, bindings: w.bindings && Object.fromEntries(Object.entries(w.bindings).filter(([, v]) => v !== undefined)) })),
  });
}

// --- the pushes ----------------------------------------------------------------------------------------
/// The crafted publishing push grown with commits that each change 20 source files until it is at least
/// `target` bytes (the recipe of benches/verify_parse.rs). `after` is a placeholder each request rewrites
/// (in place, same length), so every delivery is a new push to our dedup.
const SHA_PLACEHOLDER = "a".repeat(40);
function pushBody(target, { repository, ref } = {}) {
  const push = publishingPush();
  push.after = SHA_PLACEHOLDER;
  if (repository) push.repository.full_name = repository;
  if (ref) push.ref = ref;
  const template = push.commits[0];
  const base = Buffer.byteLength(JSON.stringify(push));
  // Sized with the longest commit the loop makes (its index has the most digits): never over the target.
  const perCommit = Buffer.byteLength(JSON.stringify(makeCommit(template, 999_999))) + 1;
  const commits = Math.max(0, Math.floor((target - base) / perCommit));
  for (let i = 0; i < commits; i += 1) push.commits.push(makeCommit(template, i));
  const body = Buffer.from(JSON.stringify(push), "utf8");
  return { body, shaAt: body.indexOf(`"after":"${SHA_PLACEHOLDER}"`) + 9 };
}

function makeCommit(template, i) {
  return {
    ...template,
    id: (0xbe9c0000 + i).toString(16).padStart(40, "0"),
    message: `feat(feature-${i}): rework the components 🚀`,
    modified: Array.from({ length: 20 }, (_, j) => `Packages/com.codertocat.hello/Runtime/Feature${i}/Component${j}.cs`),
    added: [],
    removed: [],
  };
}

let shaCounter = 0;
function withFreshSha({ body, shaAt }) {
  const copy = Buffer.from(body);
  shaCounter += 1;
  copy.write(shaCounter.toString(16).padStart(40, "0"), shaAt, "latin1");
  return copy;
}

const sign = (body) => "sha256=" + createHmac("sha256", SECRET).update(body).digest("hex");

function init(body, signature) {
  return {
    method: "POST",
    body,
    headers: {
      "Content-Type": "application/json",
      "X-GitHub-Event": "push",
      "X-GitHub-Delivery": randomUUID(),
      "X-Hub-Signature-256": signature,
    },
  };
}

async function timed(mf, worker, request, expect) {
  const started = performance.now();
  const response = await mf.dispatchFetch(`http://${worker}.bench/`, request).catch((err) => {
    throw new Error(`${worker}: ${request.body.length}-byte request failed: ${err.cause?.message ?? err.message}`);
  });
  const text = await response.text();
  const ms = performance.now() - started;
  if (expect && !expect(response.status, text)) {
    throw new Error(`${worker}: unexpected answer ${response.status}: ${text.slice(0, 300)}`);
  }
  return ms;
}

const SETTLE_MS = Number(process.env.SETTLE_MS ?? 20);
const settle = (bytes) => new Promise((r) => setTimeout(r, SETTLE_MS + Math.round(bytes / 2e6)));

const outcome = (status, wanted) => (s, text) => s === status && (wanted === undefined || JSON.parse(text).outcome === wanted);

// --- the run -----------------------------------------------------------------------------------------------
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const f = (ms) => ms.toFixed(2).padStart(8);

async function measureSize(mf, key) {
  const size = SIZE_OF[key];
  const runs = Number(values.runs || DEFAULT_RUNS[key]);
  const publishing = pushBody(size);
  const tag = pushBody(size, { ref: "refs/tags/v1.0.0" });
  const unregistered = pushBody(size, { repository: "Studio/Unregistered" });
  const badSignature = "sha256=" + "0".repeat(64);
  // Each case: [name, worker, make a request (fresh sha, signed, outside the timer), expected answer].
  const cases = [
    ["floor", "floor", () => init(withFreshSha(publishing), badSignature), (s) => s === 200],
    ["peer", "peer", () => { const b = withFreshSha(publishing); return init(b, sign(b)); }, (s, t) => s === 200 && JSON.parse(t).message === "Publish triggered"],
    ["ours", "ours", () => { const b = withFreshSha(publishing); return init(b, sign(b)); }, outcome(200, "dispatched")],
    ["bad-signature", "ours", () => init(withFreshSha(publishing), badSignature), outcome(401)],
    ["bad-signature-2key", "ours-2key", () => init(withFreshSha(publishing), badSignature), outcome(401)],
    ["tag", "ours", () => { const b = withFreshSha(tag); return init(b, sign(b)); }, outcome(200, "ignored")],
    ["unregistered", "ours", () => { const b = withFreshSha(unregistered); return init(b, sign(b)); }, outcome(200, "ignored")],
    ["dry", "ours-dry", () => { const b = withFreshSha(publishing); return init(b, sign(b)); }, outcome(200, "dispatched")],
  ];
  const times = Object.fromEntries(cases.map(([name]) => [name, []]));
  // One warm-up round (the registry read, wasm tier-up), then the runs, interleaved.
  for (let round = -1; round < runs; round += 1) {
    for (const [name, worker, make, expect] of cases) {
      const request = make();
      const ms = await timed(mf, worker, request, expect);
      if (round >= 0) times[name].push(ms);
      // Let work a worker does after its response (our deferred KV write) finish before the next timed
      // request, so it is charged to no one's time. Miniflare runs KV in-process; on Cloudflare the write
      // is a network call that costs the isolate no CPU.
      await settle(request.body.length);
    }
  }
  const m = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));
  const verify = m["bad-signature-2key"] - m["bad-signature"];
  const stages = {
    read: m["bad-signature"] - m.floor - verify,
    verify,
    parse: m.tag - m["bad-signature"],
    filter: m.unregistered - m.tag,
    KV: m.dry - m.unregistered,
    dispatch: m.ours - m.dry,
  };
  return { key, bytes: publishing.body.length, runs, m, own: m.ours - m.floor, peerOwn: m.peer - m.floor, stages };
}

async function firstRequestAfterLoad() {
  const firsts = [];
  const body = pushBody(10 * 1024);
  for (let i = 0; i < COLD_STARTS; i += 1) {
    const worker = await startWorker();
    try {
      const b = withFreshSha(body);
      const started = performance.now();
      const response = await worker.mf.dispatchFetch("http://worker.test/", init(b, sign(b)));
      const text = await response.text();
      firsts.push(performance.now() - started);
      if (response.status !== 200 || JSON.parse(text).outcome !== "dispatched") throw new Error(`first request: ${response.status} ${text}`);
    } finally {
      await worker.dispose();
    }
  }
  return median(firsts);
}

async function main() {
  const first = await firstRequestAfterLoad();
  const mf = new Miniflare(miniflareOptions());
  await mf.ready;
  const results = [];
  try {
    for (const key of SIZES) results.push(await measureSize(mf, key));
  } finally {
    await mf.dispose();
  }
  if (counts.other) throw new Error(`the fake GitHub saw ${counts.other} unexpected requests`);

  console.log("workerd (Miniflare), one instance: ours (build/), the original JS worker (peer), a floor worker;");
  console.log("one fake GitHub on loopback; medians; own = worker − floor; ratio = ours own / peer own\n");
  console.log("  push      bytes      n     floor      ours      peer   ours own  peer own   ratio  target");
  for (const r of results) {
    const ratio = r.own / r.peerOwn;
    const target = r.key === "10k" || r.key === "1m" ? 0.5 : 1.0;
    console.log(
      `  ${LABEL[r.key].padEnd(6)} ${String(r.bytes).padStart(9)} ${String(r.runs).padStart(5)} ${f(r.m.floor)}  ${f(r.m.ours)}  ${f(r.m.peer)}  ${f(r.own)}  ${f(r.peerOwn)}  ${ratio.toFixed(2).padStart(6)}  ≤ ${target.toFixed(1)} ${ratio <= target ? "met" : "NOT MET"}`,
    );
  }
  console.log("\n  ours, per stage (ms, by difference; see the header of this file)");
  console.log(`  push    ${Object.keys(results[0].stages).map((s) => s.padStart(9)).join("")}      sum`);
  for (const r of results) {
    const st = Object.values(r.stages);
    console.log(`  ${LABEL[r.key].padEnd(6)} ${st.map((v) => f(v).padStart(9)).join("")} ${f(st.reduce((a, b) => a + b, 0))}`);
  }
  console.log("\n  medians by request (ms)");
  for (const r of results) {
    console.log(`  ${LABEL[r.key].padEnd(6)} ${Object.entries(r.m).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(" · ")}`);
  }
  console.log(`\n  first request after load (10 KB publishing push, a new Miniflare each time, median of ${COLD_STARTS}): ${first.toFixed(2)} ms (target ≤ 50 ms)`);
  console.log(`  fake GitHub saw: ${JSON.stringify(counts)}`);
  console.log(`RESULT\tfirst_request_ms\t${first.toFixed(2)}`);
  for (const r of results) {
    console.log(`RESULT\t${r.key}_own_ms\t${r.own.toFixed(2)}`);
    console.log(`RESULT\t${r.key}_peer_own_ms\t${r.peerOwn.toFixed(2)}`);
    console.log(`RESULT\t${r.key}_ratio\t${(r.own / r.peerOwn).toFixed(2)}`);
  }
}

await main();
