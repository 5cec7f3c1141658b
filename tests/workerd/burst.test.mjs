// The burst bench (benches/burst.mjs) at a tenth of its size, asserted: 200 deliveries from 20
// repositories at concurrency 20, 10 % redeliveries, 5 % of dispatch attempts failing with 500. Every
// push is dispatched exactly once or every delivery of it is answered non-2xx (so GitHub can redeliver).

import assert from "node:assert/strict";
import { test } from "node:test";

import { report, runBurst } from "../../benches/burst.mjs";

test("a burst loses nothing and dispatches nothing twice", async () => {
  const result = await runBurst({ deliveries: 200, repos: 20, concurrency: 20, redeliveries: 0.1, dispatchFailures: 0.05 });
  console.log(report(result));
  assert.equal(result.requests, 200);
  assert.equal(result.unexpected, 0);
  assert.equal(result.lost, 0, "every push not dispatched was answered non-2xx");
  assert.equal(result.double, 0, "no push dispatched twice");
  assert.ok(result.dispatched > 150, `most pushes went through (${result.dispatched})`);
  assert.ok(result.duplicate + result.inFlight > 0, "the redeliveries were recognised");
  assert.ok(result.dispatchAttempts > result.acceptedPushes, "some attempts failed and were retried");
});
