// Latency of the built worker (build/) in real workerd through Miniflare, with the fake GitHub of the
// tests (tests/workerd/harness.mjs) answering the registry read and the dispatch (204) on loopback.
//
//   node benches/workerd_latency.mjs [--runs-10k N] [--runs-1m N] [--cold-starts N]
//
// Prints a table on stdout, and one `RESULT<TAB>metric<TAB>value` line per headline number for
// scripts/bench-worker.sh. Times are measured by the client (Node), so they include the loopback HTTP
// hops: request in, dispatch out to the fake GitHub, response back. Not a test: it asserts only that
// every delivery took the publishing path (200 dispatched), so the numbers describe the right thing.

import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";

import { FakeGitHub, publishingPush, sign, SECRET, startWorker } from "../tests/workerd/harness.mjs";

const { values } = parseArgs({
  options: {
    "runs-10k": { type: "string", default: "200" },
    "runs-1m": { type: "string", default: "50" },
    "cold-starts": { type: "string", default: "3" },
  },
});
const RUNS_10K = Number(values["runs-10k"]);
const RUNS_1M = Number(values["runs-1m"]);
const COLD_STARTS = Number(values["cold-starts"]);
const WARM_UP = 10;

/// The same recipe as benches/verify_parse.rs: the crafted publishing push grown with commits that each
/// change 20 source files until it is at least `target` bytes.
function qualifyingPush(target) {
  const push = publishingPush();
  const template = push.commits[0];
  for (let i = 0; Buffer.byteLength(JSON.stringify(push)) < target; i += 1) {
    push.commits.push({
      ...structuredClone(template),
      id: (0xbe9c0000 + i).toString(16).padStart(40, "0"),
      message: `feat(feature-${i}): rework the components 🚀`,
      modified: Array.from({ length: 20 }, (_, j) => `Packages/com.codertocat.hello/Runtime/Feature${i}/Component${j}.cs`),
      added: [],
      removed: [],
    });
  }
  return Buffer.from(JSON.stringify(push), "utf8");
}

function delivery(body) {
  return {
    method: "POST",
    body,
    headers: {
      "Content-Type": "application/json",
      "X-GitHub-Event": "push",
      "X-GitHub-Delivery": randomUUID(),
      "X-Hub-Signature-256": sign(SECRET, body),
    },
  };
}

async function deliverOnce(mf, body) {
  const init = delivery(body);
  const started = performance.now();
  const response = await mf.dispatchFetch("http://worker.test/", init);
  const text = await response.text();
  const ms = performance.now() - started;
  if (response.status !== 200 || JSON.parse(text).outcome !== "dispatched") {
    throw new Error(`expected a dispatch, got ${response.status}: ${text.slice(0, 300)}`);
  }
  return ms;
}

const percentile = (sorted, p) => sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)];
const median = (values) => percentile([...values].sort((a, b) => a - b), 0.5);
const fmt = (ms) => `${ms.toFixed(2)} ms`;

async function coldStart(body) {
  const started = performance.now();
  const worker = await startWorker({ github: new FakeGitHub() });
  const ready = performance.now();
  const first = await deliverOnce(worker.mf, body);
  await worker.dispose();
  return { load: ready - started, first, total: ready - started + first };
}

async function main() {
  const small = qualifyingPush(10 * 1024);
  const large = qualifyingPush(1024 * 1024);
  const rows = [];
  const results = [];

  // Cold: Miniflare start (workerd process, module compile) → ready, then the first delivery, which also
  // instantiates the wasm and reads the registry from the fake GitHub.
  const colds = [];
  for (let i = 0; i < COLD_STARTS; i += 1) colds.push(await coldStart(small));
  const load = median(colds.map((c) => c.load));
  const first = median(colds.map((c) => c.first));
  rows.push([`cold start → ready (median of ${COLD_STARTS})`, fmt(load)]);
  rows.push([`first delivery after ready (10 KB push, median of ${COLD_STARTS})`, fmt(first)]);
  rows.push([`start → first response (median of ${COLD_STARTS})`, fmt(median(colds.map((c) => c.total)))]);
  results.push(["first_request_ms", first.toFixed(2)], ["load_ms", load.toFixed(2)]);

  const worker = await startWorker({ github: new FakeGitHub() });
  try {
    for (const [label, body, runs] of [
      ["10 KB", small, RUNS_10K],
      ["1 MB", large, RUNS_1M],
    ]) {
      for (let i = 0; i < WARM_UP; i += 1) await deliverOnce(worker.mf, body);
      const times = [];
      for (let i = 0; i < runs; i += 1) times.push(await deliverOnce(worker.mf, body));
      times.sort((a, b) => a - b);
      const p50 = percentile(times, 0.5);
      const p99 = percentile(times, 0.99);
      const mbps = (body.length * runs) / (times.reduce((a, b) => a + b, 0) / 1000) / 1e6;
      rows.push([
        `${label} push (${body.length} B), n=${runs}`,
        `median ${fmt(p50)} · p99 ${fmt(p99)} · max ${fmt(times.at(-1))} · ${mbps.toFixed(1)} MB/s`,
      ]);
      const key = label === "10 KB" ? "10k" : "1m";
      results.push([`${key}_bytes`, String(body.length)], [`${key}_runs`, String(runs)]);
      results.push([`${key}_median_ms`, p50.toFixed(2)], [`${key}_p99_ms`, p99.toFixed(2)]);
    }
    const expected = WARM_UP * 2 + RUNS_10K + RUNS_1M;
    if (worker.github.dispatches.length !== expected) {
      throw new Error(`the fake GitHub saw ${worker.github.dispatches.length} dispatches, expected ${expected}`);
    }
  } finally {
    await worker.dispose();
  }

  const width = Math.max(...rows.map(([k]) => k.length));
  console.log("workerd (Miniflare), dispatch answered 204 by the fake GitHub on loopback:");
  for (const [k, v] of rows) console.log(`  ${k.padEnd(width)}  ${v}`);
  for (const [k, v] of results) console.log(`RESULT\t${k}\t${v}`);
}

await main();
