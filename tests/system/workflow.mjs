// What `.github/workflows/handle-publish-request.yml` gives the publisher, read from the workflow file
// itself: the system test starts the CLI with exactly the environment the workflow would build from a
// `package_publish` dispatch, so a change to the workflow's mapping changes (or breaks) the test.
//
// Only the small expression language the workflow uses is understood — context paths, string literals,
// `false`/`true`, `fromJSON(path)`, `==`, `&&` and `||` (in GitHub's precedence: `==` before `&&` before
// `||`) — and anything else is an error naming the expression, never a guess.

import { readFileSync } from "node:fs";
import { join } from "node:path";

import { load as parse } from "js-yaml";

export const WORKFLOW = ".github/workflows/handle-publish-request.yml";

/// The publish job and the step that runs `upm-publisher publish`, from the workflow at `root`.
export function publishJob(root) {
  const workflow = parse(readFileSync(join(root, WORKFLOW), "utf8"));
  const on = workflow.on ?? workflow[true]; // YAML 1.1 reads a bare `on` key as the boolean true
  const types = on?.repository_dispatch?.types ?? [];
  if (!types.includes("package_publish")) {
    throw new Error(`${WORKFLOW} does not take repository_dispatch package_publish (types: ${JSON.stringify(types)})`);
  }
  const jobs = Object.values(workflow.jobs ?? {});
  // The step that runs the CLI's `publish` (by its name or through the variable holding the fetched binary).
  const runsPublish = (s) => typeof s.run === "string" && /(upm-publisher|\$\{?UPM_PUBLISHER\}?)"?\s+publish\b/.test(s.run);
  for (const job of jobs) {
    const steps = job.steps ?? [];
    const index = steps.findIndex(runsPublish);
    if (index < 0) continue;
    // The checkout of the package repository: the last actions/checkout before it that names a repository.
    const checkout = steps
      .slice(0, index)
      .filter((s) => String(s.uses ?? "").startsWith("actions/checkout@") && s.with?.repository)
      .at(-1);
    if (!checkout) throw new Error(`${WORKFLOW}: no checkout of the package repository before the publish step`);
    return { job, step: steps[index], checkout, concurrency: workflow.concurrency ?? job.concurrency ?? null };
  }
  throw new Error(`${WORKFLOW}: no step runs \`upm-publisher publish\``);
}

/// The environment of the publish step for one dispatch (the job's `env` then the step's, each value
/// evaluated against the dispatch payload, the repository's `vars` and `secrets`, and the runner), and
/// what the package repository's checkout step fetches (repository, ref, path).
export function publishEnvironment(root, { clientPayload, inputs = {}, vars = {}, secrets = {}, runnerTemp }) {
  const { job, step, checkout } = publishJob(root);
  const contexts = {
    github: { event: { client_payload: clientPayload, action: "package_publish" }, event_name: "repository_dispatch" },
    inputs,
    vars,
    secrets,
    runner: { temp: runnerTemp, os: "Linux" },
    env: {},
  };
  const env = {};
  const evaluateBlock = (block) => {
    for (const [name, value] of Object.entries(block)) {
      env[name] = interpolate(String(value), contexts);
      contexts.env[name] = env[name];
    }
  };
  evaluateBlock(job.env ?? {});
  // What the checkout step fetches, evaluated with the job's environment (as the runner does).
  const fetched = {
    repository: interpolate(String(checkout.with.repository), contexts),
    ref: interpolate(String(checkout.with.ref ?? ""), contexts),
    path: interpolate(String(checkout.with.path ?? "."), contexts),
  };
  evaluateBlock(step.env ?? {});
  return { env, checkout: fetched };
}

/// The publish job's `runs-on` and the run's `run-name` for one dispatch, evaluated as GitHub does:
/// which runners the job waits for, and the title the Actions list (and the worker's watchdog) reads.
export function publishRun(root, { clientPayload, inputs = {}, vars = {} }) {
  const workflow = parse(readFileSync(join(root, WORKFLOW), "utf8"));
  const { job } = publishJob(root);
  const contexts = {
    github: { event: { client_payload: clientPayload }, event_name: "repository_dispatch" },
    inputs,
    vars,
  };
  const runsOn = job["runs-on"];
  const whole = typeof runsOn === "string" ? runsOn.match(/^\$\{\{(.*)\}\}$/s) : null;
  const value = whole ? evaluate(whole[1].trim(), contexts) : runsOn;
  const labels = Array.isArray(value) ? value.map(String) : [String(value)];
  const title = interpolate(String(workflow["run-name"] ?? "").replace(/\s*\n\s*/g, " ").trim(), contexts);
  return { labels, title };
}

/// The workflow's concurrency group for one dispatch (null when it declares none), evaluated as GitHub
/// does, so the runner can apply GitHub's rule for it.
export function concurrencyGroup(root, { clientPayload, inputs = {} }) {
  const { concurrency } = publishJob(root);
  if (!concurrency) return null;
  const group = typeof concurrency === "string" ? concurrency : concurrency.group;
  const contexts = {
    github: { event: { client_payload: clientPayload }, workflow: "Handle publish request", event_name: "repository_dispatch" },
    inputs,
  };
  return { group: interpolate(String(group), contexts), cancelInProgress: concurrency["cancel-in-progress"] === true };
}

export function interpolate(text, contexts) {
  return text.replace(/\$\{\{(.*?)\}\}/g, (_, expression) => {
    const value = evaluate(expression.trim(), contexts);
    return value === undefined || value === null ? "" : String(value);
  });
}

/// `a || b && c == 'x' || 'literal'`: GitHub's `||` gives the first truthy operand (else the last),
/// `&&` the first falsy one (else the last); `==` compares strings without case, as GitHub does.
export function evaluate(expression, contexts) {
  let value;
  for (const alternative of expression.split("||").map((s) => s.trim())) {
    value = conjunction(alternative, contexts, expression);
    if (value) return value;
  }
  return value;
}

function conjunction(text, contexts, expression) {
  let value;
  for (const term of text.split("&&").map((s) => s.trim())) {
    value = comparison(term, contexts, expression);
    if (!value) return value;
  }
  return value;
}

function comparison(text, contexts, expression) {
  const sides = text.split("==").map((s) => s.trim());
  if (sides.length === 1) return operandValue(sides[0], contexts, expression);
  if (sides.length !== 2) throw new Error(`${WORKFLOW}: the system test does not understand \${{ ${expression} }}`);
  const [left, right] = sides.map((side) => operandValue(side, contexts, expression));
  const text_ = (v) => (v === undefined || v === null ? "" : String(v).toLowerCase());
  return text_(left) === text_(right);
}

function operandValue(operand, contexts, expression) {
  const json = operand.match(/^fromJSON\((.*)\)$/);
  if (json) return JSON.parse(String(operandValue(json[1].trim(), contexts, expression)));
  if (operand === "false") return false;
  if (operand === "true") return true;
  const literal = operand.match(/^'((?:[^']|'')*)'$/);
  if (literal) return literal[1].replaceAll("''", "'");
  if (/^[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*$/.test(operand)) {
    const [head, ...rest] = operand.split(".");
    if (!(head in contexts)) throw new Error(`${WORKFLOW}: unknown context ${head} in \${{ ${expression} }}`);
    return rest.reduce((v, key) => (v == null ? undefined : v[key]), contexts[head]);
  }
  throw new Error(`${WORKFLOW}: the system test does not understand \${{ ${expression} }}`);
}
