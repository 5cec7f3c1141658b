// Real local git repositories for the system test, and GitHub push payloads built from their objects.
//
// GitHub's push payload lists, per commit, the paths added, modified and removed, and never reports a
// rename as such (a rename is a removal plus an addition), so the lists come from `git diff-tree
// --no-renames` of each pushed commit against its first parent. `before`/`after` are the remote ref's
// old and new values, exactly as the push moved them.

import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";

const ZERO = "0000000000000000000000000000000000000000";

/// A fixed identity and no user/system configuration, so commits do not depend on the machine.
const GIT_ENV = {
  ...process.env,
  GIT_CONFIG_NOSYSTEM: "1",
  GIT_CONFIG_GLOBAL: "/dev/null",
  GIT_AUTHOR_NAME: "Studio Dev",
  GIT_AUTHOR_EMAIL: "dev@studio.test",
  GIT_COMMITTER_NAME: "Studio Dev",
  GIT_COMMITTER_EMAIL: "dev@studio.test",
};

export function git(cwd, ...args) {
  return execFileSync("git", args, { cwd, env: GIT_ENV, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
}

/// A repository as GitHub hosts it (a bare repository, the remote) and a developer's clone of it.
export class GitRepo {
  /// `fullName` is `owner/name`; the bare repository lives at `<root>/remotes/<owner>/<name>.git`.
  constructor(root, fullName, { branch = "main" } = {}) {
    this.fullName = fullName;
    this.branch = branch;
    this.bare = join(root, "remotes", `${fullName}.git`);
    this.work = join(root, "work", fullName);
    mkdirSync(this.bare, { recursive: true });
    mkdirSync(this.work, { recursive: true });
    git(this.bare, "init", "--quiet", "--bare", `--initial-branch=${branch}`);
    git(this.work, "init", "--quiet", `--initial-branch=${branch}`);
    git(this.work, "remote", "add", "origin", this.bare);
  }

  /// `file://` URL of the remote, what the publisher clones.
  get url() {
    return `file://${this.bare}`;
  }

  write(path, content) {
    const file = join(this.work, path);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, typeof content === "string" ? content : JSON.stringify(content, null, 2) + "\n");
  }

  remove(path) {
    rmSync(join(this.work, path), { recursive: true, force: true });
  }

  commit(message) {
    git(this.work, "add", "--all");
    git(this.work, "commit", "--quiet", "--allow-empty", "-m", message);
    return git(this.work, "rev-parse", "HEAD");
  }

  head() {
    return git(this.work, "rev-parse", "HEAD");
  }

  /// The remote branch's current sha, or the zero sha before the first push.
  remoteHead(branch = this.branch) {
    try {
      return git(this.bare, "rev-parse", "--verify", "--quiet", `refs/heads/${branch}`);
    } catch {
      return ZERO;
    }
  }

  /// Pushes the work branch and returns the push payload GitHub would deliver for it.
  push(branch = this.branch) {
    const before = this.remoteHead(branch);
    git(this.work, "push", "--quiet", "origin", `HEAD:refs/heads/${branch}`);
    const after = this.remoteHead(branch);
    return pushPayload(this, { branch, before, after });
  }

  /// Every file of the remote branch's head with its blob sha and mode: what a fake GitHub serves as the
  /// branch's tree.
  tree(branch = this.branch) {
    const sha = this.remoteHead(branch);
    const lines = git(this.bare, "ls-tree", "-r", "--full-tree", sha).split("\n").filter(Boolean);
    return lines.map((line) => {
      const [meta, path] = line.split("\t");
      const [mode, type, blob] = meta.split(" ");
      return { path, mode, type, sha: blob, content: git(this.bare, "cat-file", "-p", blob) };
    });
  }
}

/// The GitHub `push` payload for a ref update from `before` to `after` of `repo`, built from git objects.
export function pushPayload(repo, { branch, before, after }) {
  const range = before === ZERO ? [after] : [`${before}..${after}`];
  const shas = git(repo.bare, "rev-list", "--reverse", ...range).split("\n").filter(Boolean);
  const [owner, name] = repo.fullName.split("/");
  const htmlUrl = `https://github.com/${repo.fullName}`;
  const commits = shas.map((sha) => commitPayload(repo, sha, htmlUrl));
  return {
    ref: `refs/heads/${branch}`,
    before,
    after,
    repository: {
      id: 1000 + Number.parseInt(randomBytes(2).toString("hex"), 16),
      name,
      full_name: repo.fullName,
      private: false,
      owner: { name: owner, login: owner },
      html_url: htmlUrl,
      default_branch: repo.branch,
      master_branch: repo.branch,
    },
    pusher: { name: "studio-dev", email: "dev@studio.test" },
    organization: { login: owner },
    sender: { login: "studio-dev", type: "User" },
    created: before === ZERO,
    deleted: false,
    forced: false,
    base_ref: null,
    compare: `${htmlUrl}/compare/${before.slice(0, 12)}...${after.slice(0, 12)}`,
    commits,
    head_commit: commits.at(-1) ?? null,
  };
}

function commitPayload(repo, sha, htmlUrl) {
  const [tree, timestamp, authorName, authorEmail, message] = git(
    repo.bare,
    "show",
    "-s",
    "--format=%T%x00%aI%x00%an%x00%ae%x00%B",
    sha,
  ).split("\0");
  const changes = { added: [], modified: [], removed: [] };
  // --root: the first commit of a repository is compared with the empty tree (all its files are added).
  const status = git(repo.bare, "diff-tree", "--root", "--no-commit-id", "--no-renames", "-r", "--name-status", sha);
  for (const line of status.split("\n").filter(Boolean)) {
    const [kind, path] = line.split("\t");
    ({ A: changes.added, M: changes.modified, D: changes.removed, T: changes.modified })[kind]?.push(path);
  }
  const person = { name: authorName, email: authorEmail, username: "studio-dev" };
  return {
    id: sha,
    tree_id: tree,
    distinct: true,
    message: message.trimEnd(),
    timestamp,
    url: `${htmlUrl}/commit/${sha}`,
    author: person,
    committer: person,
    ...changes,
  };
}

/// A 32-hex GUID as Unity writes it into `.meta` files.
export function unityGuid() {
  return randomBytes(16).toString("hex");
}

/// Writes a real-shaped UPM package into `repo` at `dir`: package.json, a Runtime folder with an
/// assembly definition and a script, a README, each with its `.meta` (Unity refuses assets without one).
export function writeUnityPackage(repo, dir, { name, version, dependencies } = {}) {
  const at = (path) => (dir === "." || dir === "" ? path : `${dir}/${path}`);
  const manifest = { name, version, displayName: name, unity: "2022.3", description: `The ${name} package.` };
  if (dependencies) manifest.dependencies = dependencies;
  repo.write(at("package.json"), manifest);
  const meta = (folder) =>
    `fileFormatVersion: 2\nguid: ${unityGuid()}\n${folder ? "folderAsset: yes\nDefaultImporter:\n" : "TextScriptImporter:\n"}  externalObjects: {}\n  userData: \n  assetBundleName: \n  assetBundleVariant: \n`;
  repo.write(at("package.json.meta"), meta(false));
  repo.write(at("README.md"), `# ${name}\n`);
  repo.write(at("README.md.meta"), meta(false));
  repo.write(at("Runtime.meta"), meta(true));
  const asm = name.split(".").map((p) => p[0].toUpperCase() + p.slice(1)).join(".");
  repo.write(at(`Runtime/${asm}.asmdef`), { name: asm });
  repo.write(at(`Runtime/${asm}.asmdef.meta`), meta(false));
  repo.write(at("Runtime/Hello.cs"), `namespace ${asm} { public static class Hello { public const string Version = "${version}"; } }\n`);
  repo.write(at("Runtime/Hello.cs.meta"), meta(false));
}

/// Changes only the `version` of the package at `dir` (what a developer does to publish).
export function bumpVersion(repo, dir, version) {
  const path = dir === "." || dir === "" ? "package.json" : `${dir}/package.json`;
  const manifest = JSON.parse(git(repo.work, "show", `HEAD:${path}`));
  manifest.version = version;
  repo.write(path, manifest);
}
