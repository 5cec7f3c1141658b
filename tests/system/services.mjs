// The servers the system test runs beside the worker, all on 127.0.0.1 and all stopped by themselves:
// a real Verdaccio (the studio's registry) and a fake Discord webhook that records what it is sent.

import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import assert from "node:assert/strict";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { sleep } from "../workerd/harness.mjs";


/// A free port on 127.0.0.1, chosen by the OS.
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = http.createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/// Verdaccio runs under `timeout` (so it can never outlive a wedged test) and under a guard that stops it
/// when this process's end of its stdin closes, whatever way this process ends.
const GUARD = `
timeout 1800 "$@" &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null' EXIT
while kill -0 "$pid" 2>/dev/null; do
  read -r -t 1 _
  [ $? -gt 128 ] || break
done
`;

export class Verdaccio {
  static async start(root) {
    const dir = mkdtempSync(join(tmpdir(), "upm-system-verdaccio-"));
    const port = await freePort();
    const config = join(dir, "config.yaml");
    // Offline (no uplinks, no audit middleware); JWT API tokens as production should use.
    writeFileSync(
      config,
      [
        `storage: ${join(dir, "storage")}`,
        "auth:",
        `  htpasswd:`,
        `    file: ${join(dir, "htpasswd")}`,
        "    max_users: 100",
        "uplinks: {}",
        "packages:",
        "  '@*/*': { access: $all, publish: $authenticated, unpublish: $authenticated }",
        "  '**': { access: $all, publish: $authenticated, unpublish: $authenticated }",
        "middlewares: { audit: { enabled: false } }",
        "web: { enable: false }",
        "max_body_size: 100mb",
        "log: { type: stdout, format: pretty, level: warn }",
        "security: { api: { jwt: { sign: { expiresIn: 1d } } } }",
        "",
      ].join("\n"),
    );
    const node = join(root, "node_modules/.bin/node");
    const bin = join(root, "node_modules/verdaccio/bin/verdaccio");
    const child = spawn("bash", ["-c", GUARD, "guard", node, bin, "--config", config, "--listen", `127.0.0.1:${port}`], {
      stdio: ["pipe", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (c) => (stderr += c));
    const url = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        if ((await fetch(`${url}/-/ping`)).ok) break;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline || child.exitCode !== null) {
        child.stdin.end();
        throw new Error(`Verdaccio did not start on ${url}: ${stderr}`);
      }
      await sleep(100);
    }
    const response = await fetch(`${url}/-/user/org.couchdb.user:publisher`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "publisher", password: "system-test-password" }),
    });
    if (response.status !== 201) throw new Error(`Verdaccio user: ${response.status} ${await response.text()}`);
    const { token } = await response.json();
    return new Verdaccio(url, token, child);
  }

  constructor(url, token, child) {
    this.url = url;
    this.token = token;
    this.child = child;
  }

  /// The versions of `name` on the registry ([] when it has none). A 5xx throws an error marked
  /// `transient`: Verdaccio answers 500 to a read of a package whose document it is creating at that
  /// moment (publisher/README.md, "Verdaccio settings that matter"), so a poll that races a first
  /// publish may see one; waitPublished reads on, every other caller fails.
  async versions(name) {
    const response = await fetch(`${this.url}/${name.replace("/", "%2f")}`);
    if (response.status === 404) return [];
    if (!response.ok) {
      const error = new Error(`GET ${name}: ${response.status} ${await response.text()}`);
      error.transient = response.status >= 500;
      throw error;
    }
    return Object.keys((await response.json()).versions ?? {}).sort();
  }

  /// What Unity's Package Manager sees of `name@version`: it lists a scoped registry with ONE search call
  /// (`/-/v1/search?text=<scope>&from=0&size=250`; crates/unity/src/search.rs), which must answer JSON
  /// and list the package (at `latest`: Verdaccio's search objects carry `dist-tags`, not `version`), then
  /// reads the packument, which must list the version. Fails naming the endpoint and what it answered.
  async assertVisibleToUnity(name, version) {
    const scope = name.split(".").slice(0, 2).join(".");
    const url = `${this.url}/-/v1/search?text=${encodeURIComponent(scope)}&from=0&size=250`;
    const search = await fetch(url);
    const type = search.headers.get("content-type") ?? "";
    assert.equal(search.status, 200, `GET ${url}: ${search.status}`);
    assert.match(type, /^application\/json\b/, `GET ${url} answered ${type}, which Unity does not read`);
    const listed = (await search.json()).objects.map((o) => o.package).find((p) => p.name === name);
    assert.ok(listed, `GET ${url} does not list ${name}: Unity's Package Manager would not show it`);
    const packument = await (await fetch(`${this.url}/${name.replace("/", "%2f")}`)).json();
    assert.ok(packument.versions?.[version], `the packument of ${name} does not list ${version}`);
    const latest = packument["dist-tags"]?.latest;
    assert.equal(listed.version ?? listed["dist-tags"]?.latest, latest, `the search lists ${name} at another version than latest`);
  }

  /// Publishes `name@version` directly (a version that was already there before the push).
  async seed(name, version) {
    const { createHash } = await import("node:crypto");
    const { gzipSync } = await import("node:zlib");
    const tarball = gzipSync(tarFile("package/package.json", JSON.stringify({ name, version })));
    const shasum = createHash("sha1").update(tarball).digest("hex");
    const integrity = "sha512-" + createHash("sha512").update(tarball).digest("base64");
    const file = `${name}-${version}.tgz`;
    const body = {
      _id: name,
      name,
      "dist-tags": { latest: version },
      versions: {
        [version]: { name, version, dist: { shasum, integrity, tarball: `${this.url}/${name}/-/${file}` } },
      },
      _attachments: { [file]: { content_type: "application/octet-stream", data: tarball.toString("base64"), length: tarball.length } },
    };
    const response = await fetch(`${this.url}/${name.replace("/", "%2f")}`, {
      method: "PUT",
      headers: { "content-type": "application/json", authorization: `Bearer ${this.token}` },
      body: JSON.stringify(body),
    });
    if (response.status !== 201) throw new Error(`seed ${name}@${version}: ${response.status} ${await response.text()}`);
  }

  stop() {
    this.child.stdin.end();
  }
}

/// One ustar entry (512-byte header + content padded to 512) followed by the two zero blocks.
function tarFile(path, content) {
  const data = Buffer.from(content);
  const header = Buffer.alloc(512);
  header.write(path, 0, "utf8");
  header.write("0000644\0", 100);
  header.write("0000000\0", 108);
  header.write("0000000\0", 116);
  header.write(data.length.toString(8).padStart(11, "0") + "\0", 124);
  header.write("00000000000\0", 136);
  header.write("        ", 148);
  header.write("0", 156);
  header.write("ustar\0" + "00", 257);
  let sum = 0;
  for (const b of header) sum += b;
  header.write(sum.toString(8).padStart(6, "0") + "\0 ", 148);
  const padding = Buffer.alloc((512 - (data.length % 512)) % 512);
  return Buffer.concat([header, data, padding, Buffer.alloc(1024)]);
}

/// A Discord webhook that records every message (the parsed JSON body) and answers 204.
export class FakeDiscord {
  static async start() {
    const discord = new FakeDiscord();
    await new Promise((resolve) => discord.server.listen(0, "127.0.0.1", resolve));
    discord.url = `http://127.0.0.1:${discord.server.address().port}/api/webhooks/1/system-test`;
    return discord;
  }

  constructor() {
    this.messages = [];
    this.server = http.createServer((req, res) => {
      const chunks = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => {
        try {
          this.messages.push(JSON.parse(Buffer.concat(chunks).toString("utf8")));
        } catch {
          this.messages.push({ unparsable: Buffer.concat(chunks).toString("utf8") });
        }
        res.writeHead(204).end();
      });
    });
    // Never keeps the test process alive on its own.
    this.server.unref();
  }

  /// Every embed title and description sent so far, as one searchable text.
  text() {
    return JSON.stringify(this.messages);
  }

  stop() {
    return new Promise((resolve) => this.server.close(resolve));
  }
}
