//! A real Verdaccio on 127.0.0.1 for the ops tests that read a registry (`upm trace`, `upm slo`).
//! It runs under a bash guard whose stdin is a pipe from this process: when the pipe closes (Drop, or
//! this process ending for any reason) the guard stops Verdaccio; `timeout` bounds its life anyway.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use sha1::Digest;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .new_agent()
}

pub struct Verdaccio {
    pub url: String,
    token: String,
    guard: Mutex<Option<(Child, ChildStdin)>>,
    _dir: tempfile::TempDir,
}

const GUARD: &str = r#"
node="$1"; verdaccio="$2"; config="$3"; listen="$4"; log="$5"
timeout 900 "$node" "$verdaccio" --config "$config" --listen "$listen" >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null' EXIT
while kill -0 "$pid" 2>/dev/null; do
  read -r -t 1 _
  [ $? -gt 128 ] || break
done
"#;

impl Verdaccio {
    /// One instance per test binary; tests publish distinct package names.
    pub fn shared() -> &'static Verdaccio {
        static SHARED: OnceLock<Verdaccio> = OnceLock::new();
        SHARED.get_or_init(Verdaccio::start)
    }

    fn start() -> Verdaccio {
        let root = repo_root();
        let node = root.join("node_modules/.bin/node");
        let bin = root.join("node_modules/verdaccio/bin/verdaccio");
        assert!(
            node.exists() && bin.exists(),
            "Verdaccio or Node 22 missing under node_modules: run scripts/setup.sh first"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "storage: {storage}\n\
                 auth:\n  htpasswd:\n    file: {htpasswd}\n    max_users: 100\n\
                 uplinks: {{}}\n\
                 packages:\n  '**':\n    access: $all\n    publish: $authenticated\n\
                 middlewares:\n  audit:\n    enabled: false\n\
                 web:\n  enable: false\n\
                 log: {{ type: stdout, format: pretty, level: warn }}\n",
                storage = dir.path().join("storage").display(),
                htpasswd = dir.path().join("htpasswd").display(),
            ),
        )
        .unwrap();
        let log = dir.path().join("verdaccio.log");
        let mut child = Command::new("bash")
            .args(["-c", GUARD, "verdaccio-guard"])
            .arg(&node)
            .arg(&bin)
            .arg(&config)
            .arg(format!("127.0.0.1:{port}"))
            .arg(&log)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("bash");
        let stdin = child.stdin.take().unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = http()
                .get(&format!("{url}/-/ping"))
                .call()
                .map(|r| r.status().as_u16() == 200)
                .unwrap_or(false);
            if ready {
                break;
            }
            if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
                panic!(
                    "Verdaccio did not start on {url}:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let body = serde_json::json!({ "name": "publisher", "password": "test-password-1" });
        let mut response = http()
            .put(&format!("{url}/-/user/org.couchdb.user:publisher"))
            .header("content-type", "application/json")
            .send(body.to_string().as_bytes())
            .unwrap();
        assert_eq!(response.status().as_u16(), 201, "creating the user");
        let value: serde_json::Value =
            serde_json::from_slice(&response.body_mut().read_to_vec().unwrap()).unwrap();
        Verdaccio {
            url,
            token: value["token"].as_str().unwrap().to_string(),
            guard: Mutex::new(Some((child, stdin))),
            _dir: dir,
        }
    }

    /// Publishes `name@version` as npm does (PUT of the packument with the tarball attached); the
    /// registry records its publish time in `time[version]`.
    pub fn publish(&self, name: &str, version: &str) {
        let tarball = format!("{name}@{version} fixture").into_bytes();
        let shasum: String = sha1::Sha1::digest(&tarball)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let file = format!("{name}-{version}.tgz");
        let body = serde_json::json!({
            "_id": name, "name": name,
            "versions": { version: { "name": name, "version": version,
                "dist": { "shasum": shasum, "tarball": format!("{}/{name}/-/{file}", self.url) } } },
            "dist-tags": { "latest": version },
            "_attachments": { file: { "content_type": "application/octet-stream",
                "data": base64::engine::general_purpose::STANDARD.encode(&tarball), "length": tarball.len() } },
        });
        let response = http()
            .put(&format!("{}/{}", self.url, name))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {}", self.token))
            .send(body.to_string().as_bytes())
            .unwrap();
        assert_eq!(
            response.status().as_u16(),
            201,
            "publishing {name}@{version}"
        );
    }

    /// The registry's publish time of a version (Unix seconds).
    pub fn published_at(&self, name: &str, version: &str) -> i64 {
        let mut response = http().get(&format!("{}/{name}", self.url)).call().unwrap();
        let doc: serde_json::Value =
            serde_json::from_slice(&response.body_mut().read_to_vec().unwrap()).unwrap();
        let text = doc["time"][version].as_str().expect("time[version]");
        upm_ops::npm::parse_time(text).expect("an RFC 3339 time")
    }
}

impl Drop for Verdaccio {
    fn drop(&mut self) {
        if let Some((mut child, stdin)) = self.guard.lock().unwrap().take() {
            drop(stdin);
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
