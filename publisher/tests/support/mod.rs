//! Test harness: a real Verdaccio on 127.0.0.1, fake HTTP endpoints (Discord, a broken registry), git
//! fixture repositories, and a bounded runner for the CLI. Everything listens on loopback only, on a
//! port the OS picks, and stops by itself.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub use upm_test_verdaccio::http;

/// GET → (status, body).
pub fn get(url: &str) -> (u16, Vec<u8>) {
    let mut response = http()
        .get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .unwrap();
    (status, body)
}

pub fn get_json(url: &str) -> Value {
    let (status, body) = get(url);
    assert_eq!(status, 200, "GET {url}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

pub fn sha1_hex(bytes: &[u8]) -> String {
    use sha1::Digest;
    sha1::Sha1::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Entry paths of a .tgz.
pub fn tarball_paths(bytes: &[u8]) -> Vec<String> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------------------
// Verdaccio

/// The shared harness's Verdaccio (crates/test-verdaccio), with what these tests read of it.
pub struct Verdaccio(upm_test_verdaccio::Verdaccio);

impl std::ops::Deref for Verdaccio {
    type Target = upm_test_verdaccio::Verdaccio;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Verdaccio {
    /// One instance shared by the tests of a binary (started on first use); tests use distinct names.
    pub fn shared() -> &'static Verdaccio {
        static SHARED: OnceLock<Verdaccio> = OnceLock::new();
        SHARED.get_or_init(Verdaccio::start)
    }

    pub fn start() -> Verdaccio {
        Verdaccio(upm_test_verdaccio::Verdaccio::start(&repo_root()))
    }

    /// A second user's token (Verdaccio's user API), e.g. for a concurrent publisher.
    pub fn user(&self, name: &str) -> String {
        self.0.user(name, "test-password-2")
    }

    pub fn packument(&self, name: &str) -> Value {
        get_json(&format!("{}/{}", self.url, name.replace('/', "%2f")))
    }

    pub fn version_status(&self, name: &str, version: &str) -> u16 {
        get(&format!(
            "{}/{}/{version}",
            self.url,
            name.replace('/', "%2f")
        ))
        .0
    }

    /// Checks that the stored tarball matches the metadata's shasum; returns (shasum, tarball).
    pub fn stored(&self, name: &str, version: &str) -> (String, Vec<u8>) {
        let doc = self.packument(name);
        let dist = &doc["versions"][version]["dist"];
        let shasum = dist["shasum"].as_str().expect("dist.shasum").to_string();
        let (status, bytes) = get(dist["tarball"].as_str().expect("dist.tarball"));
        assert_eq!(status, 200);
        assert_eq!(
            sha1_hex(&bytes),
            shasum,
            "stored tarball of {name}@{version} does not match its metadata"
        );
        (shasum, bytes)
    }
}

// ---------------------------------------------------------------------------------------------------
// Fake HTTP endpoints

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub url: String,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

type Responder = dyn Fn(&Recorded) -> (u16, Vec<u8>) + Send + Sync;

/// A loopback HTTP server that records every request and answers with `respond`; stops on drop.
pub struct FakeServer {
    pub url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl FakeServer {
    pub fn start(
        respond: impl Fn(&Recorded) -> (u16, Vec<u8>) + Send + Sync + 'static,
    ) -> FakeServer {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let port = server.server_addr().to_ip().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let respond: Arc<Responder> = Arc::new(respond);
        let thread = {
            let server = server.clone();
            let requests = requests.clone();
            std::thread::spawn(move || {
                for mut request in server.incoming_requests() {
                    let mut body = Vec::new();
                    let _ = request.as_reader().read_to_end(&mut body);
                    let recorded = Recorded {
                        method: request.method().to_string(),
                        url: request.url().to_string(),
                        body,
                    };
                    let (status, answer) = respond(&recorded);
                    requests.lock().unwrap().push(recorded);
                    let response = tiny_http::Response::from_data(answer)
                        .with_status_code(status)
                        .with_header(
                            tiny_http::Header::from_bytes(
                                &b"Content-Type"[..],
                                &b"application/json"[..],
                            )
                            .unwrap(),
                        );
                    let _ = request.respond(response);
                }
            })
        };
        FakeServer {
            url: format!("http://127.0.0.1:{port}"),
            requests,
            server,
            thread: Some(thread),
        }
    }

    /// A Discord webhook that accepts everything.
    pub fn discord() -> FakeServer {
        FakeServer::start(|_| (200, br#"{"id":"1"}"#.to_vec()))
    }

    /// A reverse proxy in front of `registry`, as studios run Verdaccio: every request is forwarded
    /// with the proxy's own token, and `edit` may change each answer (status, body) on its way back.
    pub fn proxy(
        registry: &Verdaccio,
        edit: impl Fn(&Recorded, u16, Vec<u8>) -> (u16, Vec<u8>) + Send + Sync + 'static,
    ) -> FakeServer {
        let upstream = registry.url.clone();
        let token = registry.token.clone();
        FakeServer::start(move |request| {
            let url = format!("{upstream}{}", request.url);
            let auth = format!("Bearer {token}");
            let result = match request.method.as_str() {
                "PUT" => http()
                    .put(&url)
                    .header("Authorization", &auth)
                    .header("Content-Type", "application/json")
                    .send(request.body.as_slice()),
                _ => http().get(&url).header("Authorization", &auth).call(),
            };
            let (status, body) = match result {
                Ok(mut response) => (
                    response.status().as_u16(),
                    response
                        .body_mut()
                        .with_config()
                        .limit(1 << 30)
                        .read_to_vec()
                        .unwrap_or_default(),
                ),
                Err(e) => (502, format!("{{\"error\":\"{e}\"}}").into_bytes()),
            };
            edit(request, status, body)
        })
    }

    pub fn webhook_url(&self) -> String {
        format!("{}/api/webhooks/42/secret-webhook-token", self.url)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Git fixtures

pub struct Repo {
    dir: tempfile::TempDir,
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

impl Repo {
    pub fn new() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["init", "-q", "-b", "main"]);
        for (k, v) in [
            ("user.name", "Test Author"),
            ("user.email", "author@example.com"),
            ("commit.gpgsign", "false"),
        ] {
            git(dir.path(), &["config", k, v]);
        }
        Repo { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, text: &str) {
        let path = self.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// A small UPM package as Unity lays it out: manifest, a runtime folder with a script, each with its
    /// .meta (GUIDs unique per package name), and a test folder that the package's .npmignore keeps out
    /// of the tarball.
    pub fn package(&self, dir: &str, name: &str, version: &str) {
        self.write(
            &format!("{dir}/package.json"),
            &format!(
                "{{\n  \"name\": \"{name}\",\n  \"version\": \"{version}\",\n  \"displayName\": \"Test {name}\",\n  \"unity\": \"2022.3\",\n  \"description\": \"fixture\"\n}}\n"
            ),
        );
        self.write(
            &format!("{dir}/Runtime/Thing.cs"),
            &format!("// {name}\nclass Thing {{}}\n"),
        );
        for asset in ["package.json", "Runtime", "Runtime/Thing.cs"] {
            self.write(&format!("{dir}/{asset}.meta"), &meta(name, asset));
        }
        self.write(
            &format!("{dir}/Tests/ThingTests.cs"),
            "class ThingTests {}\n",
        );
        self.write(&format!("{dir}/.npmignore"), "Tests/\n");
    }

    /// Copies the fixture tree tests/fixtures/`fixture` into `dir` as package `name`@`version` (other
    /// package.json fields from `fields`). Each GUID is re-derived from `name`, so one fixture can provide
    /// several packages of a run, as real packages have distinct GUIDs.
    pub fn fixture(&self, fixture: &str, dir: &str, name: &str, version: &str, fields: Value) {
        self.fixture_keeping_guids(fixture, dir, name, version, fields);
        rewrite_guids(&self.path().join(dir), name);
    }

    /// `fixture`, with the GUIDs exactly as in the fixture (two copies then share them).
    pub fn fixture_keeping_guids(
        &self,
        fixture: &str,
        dir: &str,
        name: &str,
        version: &str,
        fields: Value,
    ) {
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(fixture);
        copy_tree(&src, &self.path().join(dir));
        let manifest = self.path().join(dir).join("package.json");
        let text = std::fs::read_to_string(&manifest).unwrap();
        let mut value: Value = serde_json::from_str(&text).unwrap();
        value["name"] = Value::String(name.to_string());
        value["version"] = Value::String(version.to_string());
        for (k, v) in fields.as_object().into_iter().flatten() {
            value[k] = v.clone();
        }
        std::fs::write(manifest, serde_json::to_string_pretty(&value).unwrap()).unwrap();
    }

    pub fn set_version(&self, dir: &str, name: &str, version: &str) {
        let path = format!("{dir}/package.json");
        let text = std::fs::read_to_string(self.path().join(&path)).unwrap();
        let mut value: Value = serde_json::from_str(&text).unwrap();
        value["version"] = Value::String(version.to_string());
        assert_eq!(value["name"], name);
        self.write(&path, &serde_json::to_string_pretty(&value).unwrap());
    }

    pub fn commit(&self, message: &str) -> String {
        git(self.path(), &["add", "-A"]);
        git(self.path(), &["commit", "-q", "-m", message]);
        git(self.path(), &["rev-parse", "HEAD"]).trim().to_string()
    }

    /// A bare copy, as a `file://` URL: what `--clone` is given.
    pub fn bare(&self) -> (tempfile::TempDir, String) {
        let tmp = tempfile::tempdir().unwrap();
        let bare = tmp.path().join("origin.git");
        git(
            self.path(),
            &["clone", "-q", "--bare", ".", bare.to_str().unwrap()],
        );
        let url = format!("file://{}", bare.display());
        (tmp, url)
    }
}

/// A Unity `.meta` for `asset` of package `name`, with a GUID derived from both (unique per package).
pub fn meta(name: &str, asset: &str) -> String {
    let guid = &sha1_hex(format!("{name}/{asset}").as_bytes())[..32];
    format!("fileFormatVersion: 2\nguid: {guid}\nDefaultImporter:\n  externalObjects: {{}}\n  userData: \n")
}

fn rewrite_guids(dir: &Path, salt: &str) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rewrite_guids(&path, salt);
        } else if path.extension().is_some_and(|e| e == "meta") {
            let text = std::fs::read_to_string(&path).unwrap();
            let rewritten: Vec<String> = text
                .lines()
                .map(|line| match line.strip_prefix("guid: ") {
                    Some(guid) => format!(
                        "guid: {}",
                        &sha1_hex(format!("{salt}/{guid}").as_bytes())[..32]
                    ),
                    None => line.to_string(),
                })
                .collect();
            std::fs::write(&path, rewritten.join("\n") + "\n").unwrap();
        }
    }
}

fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let target = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// The CLI

pub struct Run {
    pub code: i32,
    pub stderr: String,
    pub audit: Value,
    pub summary: String,
}

impl Run {
    pub fn names(&self, list: &str) -> Vec<String> {
        self.audit[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                format!(
                    "{}@{}",
                    o["name"].as_str().unwrap_or("?"),
                    o["version"].as_str().unwrap_or("?")
                )
            })
            .collect()
    }

    pub fn count(&self, list: &str) -> usize {
        self.audit[list].as_array().unwrap().len()
    }
}

/// Builder for one `upm-publisher` run (`publish` unless [`Cli::command`] names another) with a clean
/// environment.
pub struct Cli {
    args: Vec<String>,
    envs: Vec<(String, String)>,
}

impl Cli {
    pub fn new(registry: &str) -> Cli {
        Cli::command("publish", registry)
    }

    /// A run of another subcommand that takes `--registry` (every one that writes an audit file).
    pub fn command(subcommand: &str, registry: &str) -> Cli {
        Cli {
            args: vec![subcommand.into(), "--registry".into(), registry.into()],
            envs: Vec::new(),
        }
    }

    pub fn arg(mut self, a: &str) -> Cli {
        self.args.push(a.to_string());
        self
    }

    pub fn args(mut self, list: &[&str]) -> Cli {
        self.args.extend(list.iter().map(|s| s.to_string()));
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Cli {
        self.envs.push((k.into(), v.into()));
        self
    }

    pub fn token(self, token: &str) -> Cli {
        self.env("NPM_TOKEN", token)
    }

    pub fn discord(self, discord: &FakeServer) -> Cli {
        self.env("DISCORD_WEBHOOK_URL", &discord.webhook_url())
    }

    /// Publish from `repo`'s working tree, which must be at `sha`.
    pub fn workspace(self, repo: &Repo, sha: &str) -> Cli {
        self.args(&[
            "--workspace",
            repo.path().to_str().unwrap(),
            "--commit-sha",
            sha,
        ])
    }

    /// Publish from a fresh clone of `url` at `sha`.
    pub fn clone_at(self, url: &str, sha: &str) -> Cli {
        self.args(&["--clone", url, "--commit-sha", sha])
    }

    /// The usual run: `repo`'s working tree at `sha`, to `registry` with its publisher's token.
    pub fn publish(registry: &Verdaccio, repo: &Repo, sha: &str) -> Cli {
        Cli::new(&registry.url)
            .token(&registry.token)
            .workspace(repo, sha)
    }

    /// Runs the CLI (bounded to two minutes) and reads its audit file and summary.
    pub fn run(self) -> Run {
        self.spawn().finish()
    }

    pub fn spawn(self) -> Running {
        let out = tempfile::tempdir().unwrap();
        let audit = out.path().join("audit.json");
        let summary = out.path().join("summary.md");
        let stderr_path = out.path().join("stderr.txt");
        let mut command = Command::new(env!("CARGO_BIN_EXE_upm-publisher"));
        command
            .args(&self.args)
            .arg("--audit-file")
            .arg(&audit)
            .arg("--summary-file")
            .arg(&summary)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr_path).unwrap());
        // Nothing of the developer's or CI's environment leaks into a run.
        for (key, _) in std::env::vars() {
            if key.starts_with("UPM_")
                || key.starts_with("GITHUB_")
                || key.starts_with("DISCORD_")
                || key == "NPM_TOKEN"
            {
                command.env_remove(key);
            }
        }
        for (k, v) in &self.envs {
            command.env(k, v);
        }
        Running {
            child: command.spawn().unwrap(),
            out,
            audit,
            summary,
            stderr_path,
        }
    }
}

pub struct Running {
    child: Child,
    out: tempfile::TempDir,
    audit: PathBuf,
    summary: PathBuf,
    stderr_path: PathBuf,
}

impl Running {
    pub fn finish(mut self) -> Run {
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("upm-publisher did not finish within 2 minutes");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let audit_text = std::fs::read_to_string(&self.audit)
            .unwrap_or_else(|e| panic!("no audit file ({e}); stderr:\n{stderr}"));
        let run = Run {
            code: status.code().unwrap_or(-1),
            audit: serde_json::from_str(&audit_text).unwrap(),
            summary: std::fs::read_to_string(&self.summary).unwrap_or_default(),
            stderr,
        };
        let _ = &self.out;
        // Captured by the test harness: shown only when the test fails.
        eprintln!("--- upm-publisher (exit {}) ---\n{}", run.code, run.stderr);
        run
    }
}
