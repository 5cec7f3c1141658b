// A representative subset of the hostile catalogue (src/delivery_tests.rs, `hostile_catalogue`, which
// runs every case natively) thrown at the built worker in workerd. For each: the documented status,
// nothing dispatched, no secret in the response or the log (the harness checks every answer), and the
// next valid delivery still dispatches.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { SECRET, publishingPush, sign, github, useWorker, worker } from "./harness.mjs";

useWorker();

const json = (value) => Buffer.from(JSON.stringify(value));
const withPush = (change) => {
  const push = publishingPush();
  change(push);
  return json(push);
};
const form = (raw) => ({ body: Buffer.from(`payload=${raw}`), contentType: "application/x-www-form-urlencoded" });

function invalidUtf8InSkippedField() {
  const body = json(publishingPush());
  const at = body.indexOf('"compare":"') + 11;
  body[at] = 0xff;
  return body;
}

const CASES = [
  // [name, body (Buffer), deliver options, expected status]
  ["no signature", json(publishingPush()), { signature: null }, 401],
  ["a sha1 signature", json(publishingPush()), { signature: "sha1=0123456789abcdef0123456789abcdef01234567" }, 401],
  ["signed with another secret", json(publishingPush()), { secret: "not-our-secret" }, 401],
  ["a 10 KB signature header", json(publishingPush()), { signature: "sha256=" + "a".repeat(10_000) }, 401],
  ["no X-GitHub-Event", json(publishingPush()), { event: null }, 400],
  ["a path in X-GitHub-Delivery", json(publishingPush()), { delivery: "../../etc/passwd" }, 400],
  ["text/plain", json(publishingPush()), { contentType: "text/plain" }, 415],
  ["POST /.env", json(publishingPush()), { path: "/.env" }, 404],
  ["invalid UTF-8 in a field the worker skips", invalidUtf8InSkippedField(), {}, 400],
  ["a UTF-8 byte-order mark", Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), json(publishingPush())]), {}, 400],
  ["a push as a JSON array", json(["refs/heads/master", "abc", false, { full_name: "Codertocat/Hello-World" }]), {}, 400],
  ["a merge-conflict marker after the payload", Buffer.concat([json(publishingPush()), Buffer.from("\n<<<<<<< HEAD")]), {}, 400],
  ["10,000 nested arrays", Buffer.from(`{"x":${"[".repeat(10_000)}${"]".repeat(10_000)}}`), {}, 400],
  [
    "ref refs/heads/ with an empty default branch",
    withPush((p) => {
      p.ref = "refs/heads/";
      p.repository.default_branch = "";
    }),
    {},
    400,
  ],
  ["../../package.json", withPush((p) => (p.commits[0].modified = ["../../package.json"])), {}, 200],
  ["a tag named like the branch", withPush((p) => (p.ref = "refs/tags/master")), {}, 200],
  ["a form payload with %FF", form("%7B%22a%22%3A%22%FF%22%7D").body, { contentType: form("").contentType }, 400],
  ["a form without payload", Buffer.from("other=1"), { contentType: "application/x-www-form-urlencoded" }, 400],
];

describe("hostile requests to the built worker", () => {
  assert.ok(CASES.length >= 15);
  for (const [name, body, options, status] of CASES) {
    test(`${name} → ${status}, nothing dispatched, the next delivery goes through`, async () => {
      const sent = { ...options };
      if ("contentType" in options) sent.contentType = options.contentType;
      const answer = await worker.deliver(body, sent);
      assert.equal(answer.status, status, answer.text);
      assert.notEqual(answer.body.outcome, "dispatched");
      assert.equal(github.dispatches.length, 0, "nothing dispatched");
      const next = await worker.deliver(publishingPush());
      assert.equal(next.body.outcome, "dispatched", next.text);
    });
  }

  test("a comma in a package directory dispatches '*', never two wrong paths", async () => {
    const { body } = await worker.deliver(withPush((p) => (p.commits[0].modified = ["Packages/a,b/package.json"])));
    assert.equal(body.outcome, "dispatched");
    assert.equal(body.package_path, "*");
    assert.equal(JSON.parse(github.dispatches[0].body).client_payload.package_path, "*");
  });

  test("a signature over the body with a valid header but another secret never reaches GitHub", async () => {
    const body = json(publishingPush());
    const answer = await worker.deliver(body, { signature: sign(`${SECRET}-not`, body) });
    assert.equal(answer.status, 401);
    assert.equal(github.requests.length, 0);
  });
});
