//! A fake GitHub REST API on loopback, for every test that needs GitHub: the `upm` ops CLI, the
//! publisher's reconcile, the worker's sweeper and the end-to-end system test.
//!
//! Use it from Rust ([`FakeGitHub::start`]) or as the `fake-github` binary (Node and shell tests: it
//! prints its URL, serves a state loaded from JSON, and stops by itself). What it serves:
//!
//! | endpoint | notes |
//! |---|---|
//! | `GET /repos/{o}/{r}` | id, default branch, `allow_auto_merge` |
//! | `GET /repos/{o}/{r}/branches/{b}`, `GET …/git/ref/heads/{b}`, `POST …/git/refs`, `PATCH`/`DELETE …/git/refs/heads/{b}` | |
//! | `GET …/commits/{ref}`, `GET …/git/commits/{sha}`, `GET …/git/trees/{sha-or-ref}[?recursive=1]`, `GET …/git/blobs/{sha}` | git object ids as git computes them for blobs |
//! | `GET`/`PUT`/`DELETE …/contents/{path}` | a write is a commit; wrong or missing `sha` → 409/422 like GitHub |
//! | `POST …/git/blobs`, `POST …/git/trees` (`base_tree`, entries by `content` or `sha`, `sha: null` deletes), `POST …/git/commits`, `PATCH …/pulls/{n}` | `git_data`: GitHub's git data API and pull request updates |
//! | `GET`/`POST …/pulls` | 422 "A pull request already exists" for an open head→base |
//! | `POST /graphql` `enablePullRequestAutoMerge` | refused when the repo disallows it or `auto_merge_refusal` is set |
//! | `POST …/dispatches` | recorded (`dispatches`), ≤ 10 payload properties, payload < 64 KB |
//! | `GET /orgs/{org}/hooks/{id}/deliveries` (cursor pages, newest first), `GET …/{id}`, `POST …/{id}/attempts` | a redelivery is recorded (202) and its new attempt listed only from the second listing on, as GitHub accepts before it lists |
//! | `GET …/actions/workflows/{file}/runs`, `GET …/actions/runs` | `created` (`>=`, `<=`, `A..B`), pages, GitHub's 1,000-result cap |
//! | `GET …/actions/runs/{id}`, `…/runs/{id}/jobs`, `…/runs/{id}/artifacts`, `GET …/actions/artifacts/{id}/zip` | the zip: a 302 to a token-free download, 410 once expired |
//! | `GET …/commits?sha=&path=&since=&until=` | first-parent history, newest first, pages |
//! | `GET …/actions/workflows/{file}/runs`, `GET …/actions/runs` | `created=>=`, `status` (a status or a conclusion), `head_sha`, `event`, `per_page` filters |
//! | `GET …/actions/runs/{id}/jobs`, `POST …/actions/runs/{id}/cancel` | one job per run with the run's `labels` and `runner_name`; cancelling a completed run → 409 |
//! | `GET …/actions/workflows`, `PUT …/actions/workflows/{id-or-file}/enable`, `POST …/dispatches` of one | `state`; a dispatch needs an existing `ref` and an active workflow (422), creates a queued run and is recorded (`workflow_dispatches`) |
//! | `GET /repos/{o}/{r}/actions/runners`, `GET /orgs/{org}/actions/runners` | `status`, `busy`, `labels[]` objects |
//! | `GET /orgs/{org}/installation`, `GET /repos/{o}/{r}/installation`, `POST /app/installations/{id}/access_tokens` | JWT verified (RS256, iss, exp); `permissions`, `repository_selection`; 404 for a repository the installation does not include (`App::repositories`); a token naming one is refused whole (422), as is one naming more than 500 |
//! | `GET /repos/{o}/{r}/pulls` | pages of 30 by default, at most 100, `Link: next` |
//! | `GET /orgs/{org}/actions/runner-groups[?visible_to_repository=]`, `GET …/runner-groups/{id}/runners` | a default group (id 1, public repositories not allowed) unless the state sets one; a runner without a group is in it |
//! | `GET /orgs/{org}/hooks/{id}` | `active`, `events`, `config.url`, `config.content_type` |
//! | `GET …/actions/variables[/{name}]`, `GET …/actions/secrets`, `GET …/environments/{env}/secrets|variables`, `GET /orgs/{org}/actions/secrets|variables[/{name}/repositories]` | secret names only; variables page at most 30; organization items with `visibility` |
//! | `POST …/check-runs`, `PATCH`/`GET …/check-runs/{id}`, `GET …/check-runs/{id}/annotations`, `GET …/commits/{ref}/check-runs` | App tokens with `checks: write` only (403), 422 past 50 annotations a request or a 65535-character summary, or `completed` without a `conclusion`; annotations appended per update (`checks`) |
//! | `GET`/`PUT /_fake/state`, `PUT /_fake/repos` (upsert one), `POST /_fake/hooks/{org}/{id}/deliveries` (append one), `POST /_fake/repos/{o}/{r}/runs` (a run a runner queued), `PATCH /_fake/repos/{o}/{r}/runs/{id}` (its progress), `PUT /_fake/runners`, `GET /_fake/workflow_dispatches`, `PUT /_fake/clock` (`offset_secs` added to its clock), `GET /_fake/requests`, `GET /_fake/dispatches`, `POST /_fake/faults`, `POST /_fake/shutdown` | control |
//!
//! Every GET answer carries an `ETag` and answers `If-None-Match` with 304; every answer carries
//! `x-ratelimit-*` headers. Faults ([`state::Fault`]) script a status for the next K matching calls,
//! `Retry-After`, rate-limit headers and delays. Every request is recorded (`requests`).

pub mod checks;
pub mod git_data;
pub mod routes;
pub mod settings;
pub mod state;
pub mod zip;

use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use state::{Dispatch, Fault, RecordedRequest, State};

/// Called for each dispatch accepted (e.g. the system test starts the publisher from it).
pub type DispatchHook = Box<dyn Fn(&Dispatch) + Send + Sync>;

struct Shared {
    state: Mutex<State>,
    stop: AtomicBool,
    /// Unix ms of the last request, for the idle timeout.
    last_request_ms: AtomicU64,
    on_dispatch: Mutex<Option<DispatchHook>>,
}

/// A running fake. Dropping it stops the server.
pub struct FakeGitHub {
    url: String,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl FakeGitHub {
    /// Starts on `127.0.0.1:0` (a free port) with `state`.
    pub fn start(state: State) -> std::io::Result<FakeGitHub> {
        Self::start_on(state, 0)
    }

    pub fn start_on(state: State, port: u16) -> std::io::Result<FakeGitHub> {
        let server = tiny_http::Server::http(("127.0.0.1", port)).map_err(std::io::Error::other)?;
        let port = server
            .server_addr()
            .to_ip()
            .map(|a| a.port())
            .ok_or_else(|| std::io::Error::other("no TCP address"))?;
        let url = format!("http://127.0.0.1:{port}");
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            stop: AtomicBool::new(false),
            last_request_ms: AtomicU64::new(now_ms()),
            on_dispatch: Mutex::new(None),
        });
        let thread = {
            let shared = shared.clone();
            let url = url.clone();
            std::thread::spawn(move || serve(server, &shared, &url))
        };
        Ok(FakeGitHub {
            url,
            shared,
            thread: Some(thread),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Locks the state: read it, seed it, or script faults.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state().requests.clone()
    }

    pub fn dispatches(&self) -> Vec<Dispatch> {
        self.state().dispatches.clone()
    }

    pub fn fault(&self, fault: Fault) {
        self.state().faults.push(fault);
    }

    pub fn on_dispatch(&self, hook: DispatchHook) {
        *self
            .shared
            .on_dispatch
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(hook);
    }

    /// Milliseconds since the last request.
    pub fn idle_ms(&self) -> u64 {
        now_ms().saturating_sub(self.shared.last_request_ms.load(Ordering::Relaxed))
    }

    pub fn is_stopped(&self) -> bool {
        self.shared.stop.load(Ordering::Relaxed)
    }

    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        self.stop();
    }
}

const MAX_REQUEST_BODY: u64 = 16 * 1024 * 1024;

/// Accepts requests and answers each on its own thread, so a scripted delay holds up only its own
/// request (the state lock still serialises the routes themselves).
fn serve(server: tiny_http::Server, shared: &Arc<Shared>, url: &str) {
    while !shared.stop.load(Ordering::Relaxed) {
        let request = match server.recv_timeout(Duration::from_millis(50)) {
            Ok(Some(request)) => request,
            Ok(None) => continue,
            Err(_) => break,
        };
        let shared = shared.clone();
        let url = url.to_string();
        std::thread::spawn(move || answer(request, &shared, &url));
    }
}

fn answer(mut request: tiny_http::Request, shared: &Shared, url: &str) {
    shared.last_request_ms.store(now_ms(), Ordering::Relaxed);
    let header = |name: &str| {
        request
            .headers()
            .iter()
            .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str().to_string())
    };
    let (path, query) = match request.url().split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (request.url().to_string(), String::new()),
    };
    let authorization = header("authorization");
    let if_none_match = header("if-none-match");
    let accept = header("accept");
    let mut body = Vec::new();
    let _ = request
        .as_reader()
        .take(MAX_REQUEST_BODY)
        .read_to_end(&mut body);
    let fake_request = routes::Request {
        method: request.method().as_str().to_ascii_uppercase(),
        path,
        query,
        authorization,
        if_none_match,
        accept,
        body,
    };
    if fake_request.method == "POST" && fake_request.path == "/_fake/shutdown" {
        shared.stop.store(true, Ordering::Relaxed);
        let _ = request.respond(tiny_http::Response::empty(204));
        return;
    }
    let started = Instant::now();
    let (response, dispatched) = {
        let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
        let before = state.dispatches.len();
        let now = (now_ms() / 1000) as i64;
        let response = routes::handle(&mut state, &fake_request, now);
        // `get`: a test may have replaced the whole state (PUT /_fake/state) with fewer dispatches.
        let fresh = state.dispatches.get(before..).map(<[_]>::to_vec);
        (response, fresh.unwrap_or_default())
    };
    if let Some(hook) = shared
        .on_dispatch
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
    {
        for dispatch in &dispatched {
            hook(dispatch);
        }
    }
    let delay = Duration::from_millis(response.delay_ms).saturating_sub(started.elapsed());
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
    let mut reply = tiny_http::Response::from_data(response.body).with_status_code(response.status);
    for (name, value) in response.headers {
        // Link URLs are absolute at GitHub; the routes write them relative to this server.
        let value = if name == "link" {
            value.replacen("</", &format!("<{url}/"), 1)
        } else if name == "location" && value.starts_with('/') {
            // A redirect (an artifact download) names a path of this server.
            format!("{url}{value}")
        } else {
            value
        };
        if let Ok(header) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            reply.add_header(header);
        }
    }
    let _ = request.respond(reply);
}

/// Stops the binary when nobody talks to it or its parent is gone, so a crashed test never leaves
/// a server behind.
/// `parent` is the parent process id read first thing in `main` (read later, a parent that already
/// exited would be mistaken for the real one).
pub fn run_until_abandoned(fake: &FakeGitHub, idle_timeout: Duration, parent: u32) {
    loop {
        std::thread::sleep(Duration::from_millis(200));
        if fake.is_stopped() || fake.idle_ms() > idle_timeout.as_millis() as u64 {
            return;
        }
        #[cfg(unix)]
        if std::os::unix::process::parent_id() != parent {
            return;
        }
    }
}
