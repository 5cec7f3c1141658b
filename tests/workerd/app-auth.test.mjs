// GitHub App authentication in real workerd: the worker signs its JWT with the runtime's WebCrypto (checked
// here with node:crypto against the App's public key), exchanges it for an installation token, and keeps
// that token in isolate memory and KV, so the steady state is ONE GitHub call per delivery.

import assert from "node:assert/strict";
import { generateKeyPairSync, verify } from "node:crypto";
import { beforeEach, describe, test } from "node:test";

import { CENTRAL, RoutedGitHub, publishingPush, runScheduled, useWorker, worker, github } from "./harness.mjs";

const APP_ID = "4242";
const INSTALLATION = 77;
// A throwaway key for this run: PKCS#1, the form GitHub issues for an App, and its PKCS#8 twin.
const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const PKCS1 = privateKey.export({ type: "pkcs1", format: "pem" });
const PKCS8 = privateKey.export({ type: "pkcs8", format: "pem" });
const PUBLIC = publicKey;

const INSTALLATION_PATH = `/repos/${CENTRAL}/installation`;
const TOKENS_PATH = `/app/installations/${INSTALLATION}/access_tokens`;

useWorker({
  github: new RoutedGitHub(),
  bindings: { GITHUB_TOKEN: undefined, GITHUB_APP_ID: APP_ID, GITHUB_APP_PRIVATE_KEY: PKCS1 },
});

let minted;
let jwtChecks;
/// Every token is different across the whole file.
let serial = 0;
beforeEach(() => {
  minted = 0;
  jwtChecks = [];
  github.routes.clear();
  github.route("GET", INSTALLATION_PATH, (request) => {
    jwtChecks.push(checkJwt(request));
    return { status: 200, body: JSON.stringify({ id: INSTALLATION, account: { login: "Studio" } }) };
  });
  github.route("POST", TOKENS_PATH, (request) => {
    jwtChecks.push(checkJwt(request));
    minted += 1;
    serial += 1;
    const expires = new Date(Date.now() + 3600_000).toISOString().replace(/\.\d+Z$/, "Z");
    return { status: 201, body: JSON.stringify({ token: `ghs_installation${serial}`, expires_at: expires }) };
  });
});

/// The App JWT in a request: RS256 over header.claims, verified with the App's public key.
function checkJwt(request) {
  const jwt = request.headers.authorization?.replace(/^Bearer /, "") ?? "";
  const [header, claims, signature] = jwt.split(".");
  const decode = (part) => JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
  const valid = verify("RSA-SHA256", Buffer.from(`${header}.${claims}`), PUBLIC, Buffer.from(signature, "base64url"));
  return { valid, header: decode(header), claims: decode(claims) };
}

function assertJwtsValid() {
  assert.ok(jwtChecks.length > 0, "a JWT was sent");
  const now = Math.floor(Date.now() / 1000);
  for (const { valid, header, claims } of jwtChecks) {
    assert.equal(valid, true, "the signature verifies with the App's public key");
    assert.deepEqual(header, { alg: "RS256", typ: "JWT" });
    assert.equal(claims.iss, Number(APP_ID), "a numeric App id is a JSON number");
    assert.ok(claims.iat <= now - 50 && claims.iat >= now - 70, "iat is backdated about 60 s");
    assert.ok(claims.exp - claims.iat <= 600, "GitHub refuses a JWT living more than 10 minutes");
  }
}

/// GitHub calls the worker made, by path, since `from`.
const pathsSince = (from) => github.requests.slice(from).map((r) => `${r.method} ${r.path}`);

describe("GitHub App authentication", () => {
  test("the first delivery mints a token with a WebCrypto-signed JWT; later ones make one call", async () => {
    await worker.restart();
    await (await worker.kv()).delete(`github-app-token:v1:${APP_ID}`);
    let from = github.requests.length;
    const first = await worker.deliver(publishingPush());
    assert.equal(first.body.outcome, "dispatched", first.text);
    assert.deepEqual(pathsSince(from), [
      `GET ${INSTALLATION_PATH}`,
      `POST ${TOKENS_PATH}`,
      `GET /repos/${CENTRAL}/contents/config/repositories.json`,
      `POST /repos/${CENTRAL}/dispatches`,
    ]);
    assertJwtsValid();
    assert.equal(github.dispatches.at(-1).headers.authorization, "Bearer ghs_installation1");

    for (let i = 0; i < 3; i++) {
      from = github.requests.length;
      const next = await worker.deliver(publishingPush());
      assert.equal(next.body.outcome, "dispatched");
      assert.deepEqual(pathsSince(from), [`POST /repos/${CENTRAL}/dispatches`], "one GitHub call per delivery");
    }
    assert.equal(minted, 1);

    // A fresh isolate finds the token (and the registry) in KV.
    await worker.restart();
    from = github.requests.length;
    await worker.deliver(publishingPush());
    assert.deepEqual(pathsSince(from), [`POST /repos/${CENTRAL}/dispatches`]);
    assert.equal(github.dispatches.at(-1).headers.authorization, "Bearer ghs_installation1");
  });

  test("a 401 drops the token and the dispatch is retried once with a new one", async () => {
    await worker.deliver(publishingPush());
    const before = minted;
    github.failNext(401);
    const from = github.requests.length;
    const { body } = await worker.deliver(publishingPush());
    assert.equal(body.outcome, "dispatched", JSON.stringify(body));
    assert.deepEqual(pathsSince(from), [
      `POST /repos/${CENTRAL}/dispatches`,
      `POST ${TOKENS_PATH}`,
      `POST /repos/${CENTRAL}/dispatches`,
    ]);
    assert.equal(minted, before + 1);
    const [refused, retried] = github.dispatches.slice(-2);
    assert.notEqual(refused.headers.authorization, retried.headers.authorization);
    const stored = JSON.parse(await (await worker.kv()).get(`github-app-token:v1:${APP_ID}`));
    assert.equal(`Bearer ${stored.token}`, retried.headers.authorization, "KV holds the new token");
  });

  test("a PKCS#8 key works too, and the installation id can be given", async () => {
    await worker.reconfigure({ GITHUB_APP_PRIVATE_KEY: PKCS8, GITHUB_APP_INSTALLATION_ID: String(INSTALLATION) });
    await (await worker.kv()).delete(`github-app-token:v1:${APP_ID}`);
    const from = github.requests.length;
    const { body } = await worker.deliver(publishingPush());
    assert.equal(body.outcome, "dispatched");
    assert.deepEqual(pathsSince(from), [`POST ${TOKENS_PATH}`, `POST /repos/${CENTRAL}/dispatches`]);
    assertJwtsValid();
    await worker.reconfigure({});
  });

  test("a token GitHub will not give is a 502 GitHub can redeliver, without secrets", async () => {
    await worker.restart();
    await (await worker.kv()).delete(`github-app-token:v1:${APP_ID}`);
    github.route("POST", TOKENS_PATH, { status: 401, body: '{"message":"A JSON web token could not be decoded"}' });
    const { status, body, text } = await worker.deliver(publishingPush());
    assert.equal(status, 502);
    assert.equal(body.retryable, true);
    assert.match(body.reason, /creating an installation token: GitHub answered 401/);
    assert.ok(!text.includes("BEGIN") && !text.includes("eyJ"), "no key or JWT in the answer");
    assert.equal(github.dispatches.length, 0);
  });

  test("the sweeper uses the same App token", async () => {
    await worker.reconfigure({ GITHUB_ORG: "Studio", HOOK_ID: "42" });
    github.route("GET", "/orgs/Studio/hooks/42/deliveries?per_page=100", { status: 200, body: "[]" });
    await worker.deliver(publishingPush());
    const lines = await runScheduled(worker);
    assert.equal(lines.length, 1);
    assert.equal(lines[0].outcome, "done");
    const [listing] = github.sentTo("GET", "/orgs/Studio/hooks/42/deliveries?per_page=100");
    assert.equal(listing.headers.authorization, github.dispatches.at(-1).headers.authorization);
    assert.match(listing.headers.authorization, /^Bearer ghs_installation\d+$/);
    await worker.reconfigure({});
  });

  test("no log line or response carried the key, a JWT or a token", async () => {
    for (const log of worker.logs) {
      assert.ok(!log.message.includes("PRIVATE KEY"), log.message);
      assert.ok(!/ghs_installation\d/.test(log.message), log.message);
      assert.ok(!/eyJ[\w-]+\.eyJ/.test(log.message), log.message);
    }
  });
});
