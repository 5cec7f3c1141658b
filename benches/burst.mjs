// A burst of publishing pushes at the built worker in workerd (Miniflare), with a fake GitHub that fails
// some dispatch attempts: does every push get dispatched exactly once, or answered non-2xx?
//
//   node benches/burst.mjs [--deliveries 1000] [--repos 50] [--concurrency 50] [--redeliveries 0.10]
//                          [--dispatch-failures 0.05]
//
// `deliveries` requests in all, of which a share are redeliveries (the same delivery id and body again,
// as GitHub's "Redeliver" sends them, queued after their original and possibly overlapping it); the rest
// are distinct pushes spread over `repos` registered repositories. Each dispatch attempt fails with a 500
// at the given rate (the worker retries within its deadline). Printed: requests, dispatched, duplicate
// (200), in flight (409), 502, other, then per push: lost (never accepted by GitHub, yet some delivery of
// it was answered 2xx) and double (accepted by GitHub more than once); latency p50 / p99.
// `runBurst` is also what tests/workerd/burst.test.mjs asserts on, with smaller numbers.

import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";

import { CENTRAL, DISPATCHES_PATH, FakeGitHub, SECRET, publishingPush, sign, startWorker } from "../tests/workerd/harness.mjs";

/// A deterministic generator (mulberry32), so a run can be repeated.
function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/// The fake GitHub of the tests, answering each dispatch attempt 500 at `failureRate`, and counting the
/// dispatches it accepted per push.
class BurstGitHub extends FakeGitHub {
  constructor({ registry, failureRate, rand }) {
    super({ registry });
    this.accepted = new Map();
    this.attempts = 0;
    this.handler = (req, res) => {
      const chunks = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => {
        const path = new URL(req.url, "http://x").pathname;
        if (req.method === "POST" && decodeURIComponent(path) === DISPATCHES_PATH) {
          this.attempts += 1;
          if (rand() < failureRate) {
            res.writeHead(500, { "content-type": "application/json" });
            return res.end('{"message":"Server Error (burst)"}');
          }
          const { client_payload: p } = JSON.parse(Buffer.concat(chunks).toString("utf8"));
          const key = `${p.repository.toLowerCase()}@${p.commit_sha}`;
          this.accepted.set(key, (this.accepted.get(key) ?? 0) + 1);
          res.writeHead(204);
          return res.end();
        }
        const request = { method: req.method, path: decodeURIComponent(path), url: req.url, headers: req.headers, body: "" };
        this.requests.push(request);
        if (req.method === "GET" && request.path === this.contentsPath) {
          res.writeHead(200, { "content-type": "application/vnd.github.raw+json" });
          return res.end(this.registry.body);
        }
        this.unexpected.push(request);
        res.writeHead(404, { "content-type": "application/json" });
        res.end('{"message":"Not Found"}');
      });
    };
  }
}

export async function runBurst({
  deliveries = 1000,
  repos = 50,
  concurrency = 50,
  redeliveries = 0.1,
  dispatchFailures = 0.05,
  seed = 7,
} = {}) {
  const rand = random(seed);
  const names = Array.from({ length: repos }, (_, i) => `Studio/Burst-Repo-${String(i).padStart(2, "0")}`);
  const registry = JSON.stringify({ repositories: names.map((n) => ({ url: `https://github.com/${n}`, status: "active" })) });
  const github = new BurstGitHub({ registry, failureRate: dispatchFailures, rand });
  const worker = await startWorker({ github, bindings: { REGISTRY_TTL_SECONDS: "3600" } });

  // The queue: distinct pushes, and redeliveries placed after their original.
  const redeliveryCount = Math.round(deliveries * redeliveries);
  const originals = [];
  for (let i = 0; i < deliveries - redeliveryCount; i += 1) {
    const push = publishingPush();
    push.repository.full_name = names[i % repos];
    push.repository.name = push.repository.full_name.split("/")[1];
    const body = Buffer.from(JSON.stringify(push));
    originals.push({ key: `${push.repository.full_name.toLowerCase()}@${push.after}`, body, id: randomUUID(), signature: sign(SECRET, body) });
  }
  const queue = [...originals];
  for (let i = 0; i < redeliveryCount; i += 1) {
    const original = originals[Math.floor(rand() * originals.length)];
    const after = queue.indexOf(original);
    const at = after + 1 + Math.floor(rand() * (queue.length - after));
    queue.splice(at, 0, { ...original, redelivery: true });
  }

  const answers = new Map(); // push key → [status, outcome][]
  const latencies = [];
  const counts = { requests: 0, dispatched: 0, duplicate: 0, inFlight: 0, failed502: 0, other: 0 };
  let next = 0;
  const started = performance.now();
  async function lane() {
    while (next < queue.length) {
      const item = queue[next];
      next += 1;
      const t0 = performance.now();
      const response = await worker.mf.dispatchFetch("http://worker.test/", {
        method: "POST",
        body: item.body,
        headers: {
          "Content-Type": "application/json",
          "X-GitHub-Event": "push",
          "X-GitHub-Delivery": item.id,
          "X-Hub-Signature-256": item.signature,
        },
      });
      const body = await response.json();
      latencies.push(performance.now() - t0);
      counts.requests += 1;
      if (response.status === 200 && body.outcome === "dispatched") counts.dispatched += 1;
      else if (response.status === 200 && body.outcome === "duplicate") counts.duplicate += 1;
      else if (response.status === 409) counts.inFlight += 1;
      else if (response.status === 502) counts.failed502 += 1;
      else counts.other += 1;
      if (!answers.has(item.key)) answers.set(item.key, []);
      answers.get(item.key).push([response.status, body.outcome]);
    }
  }
  try {
    await Promise.all(Array.from({ length: concurrency }, lane));
  } finally {
    await worker.dispose();
  }
  const seconds = (performance.now() - started) / 1000;

  let lost = 0;
  let double = 0;
  for (const [key, list] of answers) {
    const accepted = github.accepted.get(key) ?? 0;
    if (accepted === 0 && list.some(([status]) => status >= 200 && status < 300)) lost += 1;
    if (accepted > 1) double += 1;
  }
  latencies.sort((a, b) => a - b);
  const pct = (p) => latencies[Math.max(0, Math.ceil(p * latencies.length) - 1)];
  return {
    ...counts,
    pushes: originals.length,
    redeliveries: redeliveryCount,
    acceptedPushes: [...github.accepted.keys()].length,
    dispatchAttempts: github.attempts,
    lost,
    double,
    p50: pct(0.5),
    p99: pct(0.99),
    seconds,
    unexpected: github.unexpected.length,
    central: CENTRAL,
  };
}

export function report(r) {
  return [
    `requests ${r.requests} (${r.pushes} pushes, ${r.redeliveries} redeliveries); dispatch attempts ${r.dispatchAttempts}`,
    `dispatched ${r.dispatched} · duplicate ${r.duplicate} · in flight (409) ${r.inFlight} · 502 ${r.failed502} · other ${r.other}`,
    `pushes accepted by GitHub ${r.acceptedPushes} · lost ${r.lost} · double ${r.double}`,
    `latency p50 ${r.p50.toFixed(1)} ms · p99 ${r.p99.toFixed(1)} ms · ${(r.requests / r.seconds).toFixed(0)} requests/s over ${r.seconds.toFixed(1)} s`,
  ].join("\n");
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      deliveries: { type: "string", default: "1000" },
      repos: { type: "string", default: "50" },
      concurrency: { type: "string", default: "50" },
      redeliveries: { type: "string", default: "0.10" },
      "dispatch-failures": { type: "string", default: "0.05" },
      seed: { type: "string", default: "7" },
    },
  });
  const result = await runBurst({
    deliveries: Number(values.deliveries),
    repos: Number(values.repos),
    concurrency: Number(values.concurrency),
    redeliveries: Number(values.redeliveries),
    dispatchFailures: Number(values["dispatch-failures"]),
    seed: Number(values.seed),
  });
  console.log(`burst against the built worker in workerd (Miniflare), fake GitHub failing ${values["dispatch-failures"]} of dispatch attempts:`);
  console.log(report(result));
  if (result.lost || result.double) {
    console.error(`burst: ${result.lost} lost, ${result.double} double`);
    process.exit(1);
  }
}
