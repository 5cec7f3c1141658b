//! Harness for `upm probe` end to end: a real Verdaccio on 127.0.0.1 (from node_modules, the same way
//! the publisher's tests start it), packages published to it with npm's publish document, a reverse
//! proxy that can alter answers, and a bounded runner for the `upm` binary. Everything listens on
//! loopback, on a port the OS picks, and stops by itself.

#![allow(dead_code)]

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub use upm_test_verdaccio::http;

pub fn sha1_hex(bytes: &[u8]) -> String {
    use sha1::Digest;
    sha1::Sha1::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A `.tgz` of `files`, each under `package/`, as npm packs.
pub fn tgz(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, format!("package/{path}"), *bytes)
            .unwrap();
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&builder.into_inner().unwrap()).unwrap();
    gz.finish().unwrap()
}

// ---------------------------------------------------------------------------------------------------
// Verdaccio

/// A Verdaccio for one test. It runs under a bash guard whose stdin is a pipe from this process: when
/// the pipe closes (Drop, or this process ending for any reason) the guard stops Verdaccio; `timeout`
/// bounds its life in any case.
/// The shared harness's Verdaccio (crates/test-verdaccio), with what these tests publish to it.
pub struct Verdaccio(upm_test_verdaccio::Verdaccio);

impl std::ops::Deref for Verdaccio {
    type Target = upm_test_verdaccio::Verdaccio;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// One package version to publish: its manifest (the tarball's package.json), and what to change in
/// the registry's copy of the version metadata (`edit`) or in the claimed shasum.
pub struct Publish<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub edit: &'a dyn Fn(&mut serde_json::Map<String, Value>),
}

impl Verdaccio {
    /// One instance shared by the tests of a binary (started on first use; stopped when the test
    /// process ends and its end of the guard's stdin closes); tests use distinct package names.
    pub fn shared() -> &'static Verdaccio {
        static SHARED: std::sync::OnceLock<Verdaccio> = std::sync::OnceLock::new();
        SHARED.get_or_init(Verdaccio::start)
    }

    pub fn start() -> Verdaccio {
        Verdaccio(upm_test_verdaccio::Verdaccio::start(&repo_root()))
    }

    /// Publishes `name`@`version` as npm does (`PUT /<name>`, the tarball attached, the version becoming
    /// `latest`); `edit` changes the version metadata sent beside the tarball (the tarball's own
    /// package.json stays the manifest). Returns the tarball.
    pub fn publish(&self, p: Publish) -> Vec<u8> {
        let manifest = json!({
            "name": p.name,
            "version": p.version,
            "displayName": format!("Test {}", p.name),
            "description": "fixture",
            "unity": "2022.3",
        });
        let tarball = tgz(&[
            ("package.json", manifest.to_string().as_bytes()),
            ("Runtime/Thing.cs", format!("// {}\n", p.name).as_bytes()),
        ]);
        let file = format!("{}-{}.tgz", p.name, p.version);
        let mut version = manifest.as_object().unwrap().clone();
        version.insert("_id".into(), json!(format!("{}@{}", p.name, p.version)));
        version.insert(
            "dist".into(),
            json!({
                "shasum": sha1_hex(&tarball),
                "tarball": format!("{}/{}/-/{file}", self.url, p.name),
            }),
        );
        (p.edit)(&mut version);
        let doc = json!({
            "_id": p.name,
            "name": p.name,
            "dist-tags": { "latest": p.version },
            "versions": { p.version: version },
            "_attachments": { file: {
                "content_type": "application/octet-stream",
                "data": base64::engine::general_purpose::STANDARD.encode(&tarball),
                "length": tarball.len(),
            }},
        });
        let mut response = http()
            .put(&format!("{}/{}", self.url, p.name))
            .header("Authorization", &format!("Bearer {}", self.token))
            .header("Content-Type", "application/json")
            .send(doc.to_string().as_bytes())
            .unwrap();
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().unwrap_or_default();
        assert_eq!(status, 201, "publishing {}@{}: {body}", p.name, p.version);
        tarball
    }

    /// Changes the stored tarball of `name`@`version` on Verdaccio's disk (what a storage fault or a
    /// rewrite does): the registry then serves bytes that do not match the shasum it recorded.
    pub fn corrupt_stored_tarball(&self, name: &str, version: &str) {
        let path = self
            .storage()
            .join(name)
            .join(format!("{name}-{version}.tgz"));
        let mut bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        bytes.extend_from_slice(b"trailing garbage");
        std::fs::write(&path, bytes).unwrap();
    }

    /// The registry's publish time of a version (Unix seconds), from the packument's `time`.
    pub fn published_at(&self, name: &str, version: &str) -> i64 {
        let mut response = http().get(&format!("{}/{name}", self.url)).call().unwrap();
        let doc: Value =
            serde_json::from_slice(&response.body_mut().read_to_vec().unwrap()).unwrap();
        let text = doc["time"][version].as_str().expect("time[version]");
        upm_ops::npm::parse_time(text).expect("an RFC 3339 time")
    }

    /// Publishes an intact version.
    pub fn publish_good(&self, name: &str, version: &str) -> Vec<u8> {
        self.publish(Publish {
            name,
            version,
            edit: &|_| {},
        })
    }
}

// ---------------------------------------------------------------------------------------------------
// A loopback HTTP server: a reverse proxy that may alter answers, or a Discord webhook

/// One answer: status, content type, body.
pub type Reply = (u16, String, Vec<u8>);

/// What a server received: method, URL (path and query), authorization header, body.
#[derive(Debug, Clone)]
pub struct Received {
    pub url: String,
    pub authorization: Option<String>,
    pub body: Vec<u8>,
}

pub struct Server {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    pub fn start(answer: impl Fn(&Received) -> Reply + Send + Sync + 'static) -> Server {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let port = server.server_addr().to_ip().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let server = server.clone();
            let received = received.clone();
            std::thread::spawn(move || {
                for mut request in server.incoming_requests() {
                    let mut body = Vec::new();
                    let _ = request.as_reader().read_to_end(&mut body);
                    let got = Received {
                        url: request.url().to_string(),
                        authorization: request
                            .headers()
                            .iter()
                            .find(|h| h.field.equiv("authorization"))
                            .map(|h| h.value.to_string()),
                        body,
                    };
                    let (status, content_type, body) = answer(&got);
                    received.lock().unwrap().push(got);
                    let response = tiny_http::Response::from_data(body)
                        .with_status_code(status)
                        .with_header(
                            tiny_http::Header::from_bytes(&b"Content-Type"[..], content_type)
                                .unwrap(),
                        );
                    let _ = request.respond(response);
                }
            })
        };
        Server {
            url: format!("http://127.0.0.1:{port}"),
            received,
            server,
            thread: Some(thread),
        }
    }

    /// A reverse proxy in front of `upstream` (GET only): `edit` may change each answer on its way back.
    pub fn proxy(
        upstream: &str,
        edit: impl Fn(&Received, Reply) -> Reply + Send + Sync + 'static,
    ) -> Server {
        let upstream = upstream.to_string();
        Server::start(move |request| {
            let reply = match http().get(&format!("{upstream}{}", request.url)).call() {
                Ok(mut response) => (
                    response.status().as_u16(),
                    response
                        .headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string(),
                    response
                        .body_mut()
                        .with_config()
                        .limit(1 << 30)
                        .read_to_vec()
                        .unwrap_or_default(),
                ),
                Err(e) => (502, "text/plain".into(), e.to_string().into_bytes()),
            };
            edit(request, reply)
        })
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// The CLI

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `upm` with `args` and only the environment given (bounded to two minutes); prints the output,
/// so `--nocapture` shows a real sample.
pub fn upm(args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = tempfile::tempdir().unwrap();
    let stdout_path = out.path().join("stdout");
    let stderr_path = out.path().join("stderr");
    let mut command = Command::new(env!("CARGO_BIN_EXE_upm"));
    for (key, _) in std::env::vars() {
        if key.starts_with("UPM_")
            || key.starts_with("GITHUB_")
            || key.starts_with("DISCORD_")
            || key == "NPM_TOKEN"
        {
            command.env_remove(key);
        }
    }
    command
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap());
    let mut child = command.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("upm {args:?} did not finish within 2 minutes");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let run = Run {
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(&stdout_path).unwrap(),
        stderr: std::fs::read_to_string(&stderr_path).unwrap(),
    };
    println!(
        "$ upm {}\n{}{}(exit {})\n",
        args.join(" "),
        run.stdout,
        run.stderr
            .lines()
            .filter(|l| !l.starts_with('['))
            .map(|l| format!("stderr: {l}\n"))
            .collect::<String>(),
        run.code
    );
    run
}
