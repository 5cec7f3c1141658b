//! A real Verdaccio for the tests of the publisher and the ops CLI: started from the project's
//! `node_modules` (scripts/setup.sh installs it) on 127.0.0.1, on a port the OS picks, offline (no
//! uplinks, no audit middleware, no web UI), with JWT API tokens as production should use (legacy
//! tokens cost a bcrypt check per request). It runs under a bash guard whose stdin is a pipe from this
//! process: when the pipe closes (Drop, or this process ending for any reason) the guard stops
//! Verdaccio, and `timeout` bounds its life in any case.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Verdaccio {
    pub url: String,
    /// The token of the user `publisher`, who may publish.
    pub token: String,
    guard: Mutex<Option<(Child, ChildStdin)>>,
    dir: tempfile::TempDir,
}

const GUARD: &str = r#"
node="$1"; verdaccio="$2"; config="$3"; listen="$4"; log="$5"
timeout 1200 "$node" "$verdaccio" --config "$config" --listen "$listen" >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null' EXIT
while kill -0 "$pid" 2>/dev/null; do
  read -r -t 1 _
  # > 128: the 1 s read timed out, keep watching; otherwise a line or end of input: stop.
  [ $? -gt 128 ] || break
done
"#;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An HTTP agent that returns 4xx/5xx answers instead of errors, with a bound on every request.
pub fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .new_agent()
}

impl Verdaccio {
    /// Starts one from `root`'s node_modules and creates the user `publisher`.
    pub fn start(root: &Path) -> Verdaccio {
        let node = root.join("node_modules/.bin/node");
        let bin = root.join("node_modules/verdaccio/bin/verdaccio");
        assert!(
            node.exists() && bin.exists(),
            "Verdaccio or Node 22 missing under node_modules: run scripts/setup.sh first"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "storage: {storage}\n\
                 auth:\n  htpasswd:\n    file: {htpasswd}\n    max_users: 1000\n\
                 uplinks: {{}}\n\
                 packages:\n  '@*/*':\n    access: $all\n    publish: $authenticated\n    unpublish: $authenticated\n\
                 \x20 '**':\n    access: $all\n    publish: $authenticated\n    unpublish: $authenticated\n\
                 middlewares:\n  audit:\n    enabled: false\n\
                 web:\n  enable: false\n\
                 max_body_size: 100mb\n\
                 log: {{ type: stdout, format: pretty, level: warn }}\n\
                 security:\n  api:\n    jwt:\n      sign:\n        expiresIn: 1d\n",
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
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("Verdaccio did not start on {url} within 60 s:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let token = create_user(&url, "publisher", "test-password-1");
        Verdaccio {
            url,
            token,
            guard: Mutex::new(Some((child, stdin))),
            dir,
        }
    }

    /// Where Verdaccio keeps its packages (`<storage>/<name>/package.json` and the tarballs).
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// Another user's token (Verdaccio's user API), e.g. for a concurrent publisher.
    pub fn user(&self, name: &str, password: &str) -> String {
        create_user(&self.url, name, password)
    }
}

fn create_user(url: &str, name: &str, password: &str) -> String {
    let body = serde_json::json!({ "name": name, "password": password }).to_string();
    let mut response = http()
        .put(&format!("{url}/-/user/org.couchdb.user:{name}"))
        .header("Content-Type", "application/json")
        .send(body.as_bytes())
        .unwrap();
    assert_eq!(response.status().as_u16(), 201, "creating user {name}");
    let value: serde_json::Value =
        serde_json::from_slice(&response.body_mut().read_to_vec().unwrap()).unwrap();
    value["token"].as_str().unwrap().to_string()
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
