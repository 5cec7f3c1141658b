//! Check runs, as GitHub's REST "Checks" API serves them, with its documented limits:
//!
//! - only a GitHub App may create or update one ("Write permission for the REST API to interact with
//!   checks is only available to GitHub Apps"): with an App configured, any other token gets 403;
//! - and only with `checks: write`: an installation token asked for with `permissions` has those alone
//!   ("Create an installation access token for an app": "If permissions is not specified, the
//!   installation access token will have all of the permissions that were granted to the app"); one
//!   without `checks: write` gets 403 "Resource not accessible by integration";
//! - `name` and `head_sha` are required; `status` is `queued`, `in_progress` or `completed`, and a
//!   `completed` run needs a `conclusion` (422 otherwise);
//! - `output.summary` and `output.text` hold at most 65535 characters, `output.annotations` at most 50
//!   per request (422 otherwise); each update's annotations are appended to the run's;
//! - `GET …/commits/{ref}/check-runs` lists a commit's runs newest first, `check_name` filters.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use upm_github::deliveries::format_rfc3339_utc;

use crate::routes::{bearer, Request, Response};
use crate::state::{App, State};

const SUMMARY_MAX_CHARS: usize = 65535;
const ANNOTATIONS_PER_REQUEST: usize = 50;
const STATUSES: [&str; 3] = ["queued", "in_progress", "completed"];
const CONCLUSIONS: [&str; 8] = [
    "action_required",
    "cancelled",
    "failure",
    "neutral",
    "success",
    "skipped",
    "stale",
    "timed_out",
];
const LEVELS: [&str; 3] = ["notice", "warning", "failure"];

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CheckRun {
    pub id: u64,
    pub repository: String,
    pub name: String,
    pub head_sha: String,
    pub status: String,
    pub conclusion: Option<String>,
    pub started_at: String,
    pub completed_at: Option<String>,
    pub details_url: Option<String>,
    pub external_id: Option<String>,
    pub title: Option<String>,
    pub summary: Option<String>,
    pub annotations: Vec<Value>,
    /// Requests that changed this run (its creation included): what a test counts.
    pub writes: u32,
}

fn unprocessable(message: &str) -> Response {
    Response::error(422, &format!("Invalid request.\n\n{message}"))
}

fn run_json(run: &CheckRun) -> Value {
    json!({
        "id": run.id,
        "name": run.name,
        "head_sha": run.head_sha,
        "status": run.status,
        "conclusion": run.conclusion,
        "started_at": run.started_at,
        "completed_at": run.completed_at,
        "details_url": run.details_url,
        "external_id": run.external_id,
        "output": {
            "title": run.title,
            "summary": run.summary,
            "annotations_count": run.annotations.len(),
        },
    })
}

/// The parts of a create or update body that are checked the same way; applied to `run` when valid.
fn apply(run: &mut CheckRun, body: &Value, now: i64) -> Result<(), Response> {
    if let Some(status) = body.get("status").and_then(Value::as_str) {
        if !STATUSES.contains(&status) {
            return Err(unprocessable(&format!(
                "status {status:?} is not a member of {STATUSES:?}"
            )));
        }
        run.status = status.to_string();
    }
    if let Some(conclusion) = body.get("conclusion").and_then(Value::as_str) {
        if !CONCLUSIONS.contains(&conclusion) {
            return Err(unprocessable(&format!(
                "conclusion {conclusion:?} is not a member of {CONCLUSIONS:?}"
            )));
        }
        run.conclusion = Some(conclusion.to_string());
        // GitHub: "Providing conclusion will automatically set the status parameter to completed."
        run.status = "completed".into();
    }
    if run.status == "completed" {
        if run.conclusion.is_none() {
            return Err(unprocessable(
                "conclusion is required when status is completed",
            ));
        }
        run.completed_at
            .get_or_insert_with(|| format_rfc3339_utc(now));
    }
    if let Some(output) = body.get("output").filter(|o| !o.is_null()) {
        let (Some(title), Some(summary)) = (
            output.get("title").and_then(Value::as_str),
            output.get("summary").and_then(Value::as_str),
        ) else {
            return Err(unprocessable("output needs title and summary"));
        };
        for field in ["summary", "text"] {
            if let Some(text) = output.get(field).and_then(Value::as_str) {
                if text.chars().count() > SUMMARY_MAX_CHARS {
                    return Err(unprocessable(&format!(
                        "output.{field} is too long (maximum is {SUMMARY_MAX_CHARS} characters)"
                    )));
                }
            }
        }
        let annotations = output
            .get("annotations")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if annotations.len() > ANNOTATIONS_PER_REQUEST {
            return Err(unprocessable(&format!(
                "output.annotations: at most {ANNOTATIONS_PER_REQUEST} annotations per request"
            )));
        }
        for a in &annotations {
            let ok = a
                .get("path")
                .and_then(Value::as_str)
                .is_some_and(|p| !p.is_empty())
                && a.get("start_line").and_then(Value::as_u64).is_some()
                && a.get("end_line").and_then(Value::as_u64).is_some()
                && a.get("message").and_then(Value::as_str).is_some()
                && a.get("annotation_level")
                    .and_then(Value::as_str)
                    .is_some_and(|l| LEVELS.contains(&l));
            if !ok {
                return Err(unprocessable(&format!(
                    "annotation {a} needs path, start_line, end_line, message and an annotation_level of {LEVELS:?}"
                )));
            }
        }
        run.title = Some(title.to_string());
        run.summary = Some(summary.to_string());
        run.annotations.extend(annotations);
    }
    run.writes += 1;
    Ok(())
}

/// The check-run endpoints under `/repos/{full}/…`; `None` when `rest` is not one of them. `app_token`
/// says whether the request carries a token GitHub would accept for writing checks.
pub fn route(
    state: &mut State,
    full: &str,
    request: &Request,
    rest: &[&str],
    body: &Value,
    now: i64,
    app_token: bool,
) -> Option<Response> {
    let (method, query) = (request.method.as_str(), request.query.as_str());
    let is_write = matches!(
        (method, rest),
        ("POST", ["check-runs"]) | ("PATCH", ["check-runs", _])
    );
    let is_read = matches!(
        (method, rest),
        ("GET", ["check-runs", _])
            | ("GET", ["check-runs", _, "annotations"])
            | ("GET", ["commits", _, "check-runs"])
    );
    if !is_write && !is_read {
        return None;
    }
    let repository = state.repo(full)?.full_name.clone();
    if is_write && !app_token {
        return Some(Response::error(
            403,
            "You must authenticate via a GitHub App.",
        ));
    }
    let token = bearer(&request.authorization);
    if is_write
        && state
            .app
            .as_ref()
            .zip(token.as_deref())
            .is_some_and(|(app, token)| !may_write_checks(app, token))
    {
        return Some(Response::error(
            403,
            "Resource not accessible by integration",
        ));
    }
    Some(match (method, rest) {
        ("POST", ["check-runs"]) => {
            let (Some(name), Some(head_sha)) = (
                body.get("name").and_then(Value::as_str),
                body.get("head_sha").and_then(Value::as_str),
            ) else {
                return Some(unprocessable("name and head_sha are required"));
            };
            if !matches!(head_sha.len(), 40 | 64)
                || !head_sha.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return Some(unprocessable("head_sha is not a commit sha"));
            }
            let mut run = CheckRun {
                id: state.fresh_id(),
                repository,
                name: name.to_string(),
                head_sha: head_sha.to_ascii_lowercase(),
                status: "queued".into(),
                started_at: format_rfc3339_utc(now),
                details_url: body
                    .get("details_url")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                external_id: body
                    .get("external_id")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                ..CheckRun::default()
            };
            if let Err(refused) = apply(&mut run, body, now) {
                return Some(refused);
            }
            let answer = run_json(&run);
            state.check_runs.push(run);
            Response::json(201, answer)
        }
        ("PATCH", ["check-runs", id]) => {
            let Some(run) = find(state, &repository, id) else {
                return Some(Response::error(404, "Not Found"));
            };
            let mut updated = run.clone();
            if let Err(refused) = apply(&mut updated, body, now) {
                return Some(refused);
            }
            *run = updated;
            Response::json(200, run_json(run))
        }
        ("GET", ["check-runs", id]) => match find(state, &repository, id) {
            Some(run) => Response::json(200, run_json(run)),
            None => Response::error(404, "Not Found"),
        },
        ("GET", ["check-runs", id, "annotations"]) => match find(state, &repository, id) {
            Some(run) => Response::json(200, Value::Array(run.annotations.clone())),
            None => Response::error(404, "Not Found"),
        },
        ("GET", ["commits", reference, "check-runs"]) => {
            let sha = state
                .repo(full)
                .and_then(|r| r.resolve(reference))
                .unwrap_or_else(|| reference.to_ascii_lowercase());
            let name = query_param(query, "check_name");
            let runs: Vec<Value> = state
                .check_runs
                .iter()
                .rev()
                .filter(|r| r.repository == repository && r.head_sha == sha)
                .filter(|r| name.as_deref().is_none_or(|n| r.name == n))
                .map(run_json)
                .collect();
            Response::json(
                200,
                json!({ "total_count": runs.len(), "check_runs": runs }),
            )
        }
        _ => return None,
    })
}

/// Whether the installation token `token` holds `checks: write`: the permissions it was asked for, or,
/// asked for none, the installation's (a fake installation that lists none is not narrowed). A token the
/// App did not mint is left to the App-only rule.
fn may_write_checks(app: &App, token: &str) -> bool {
    let Some(index) = app.minted.iter().position(|(minted, _)| minted == token) else {
        return true;
    };
    let asked = app
        .minted_permissions
        .get(index)
        .and_then(Value::as_object)
        .filter(|asked| !asked.is_empty());
    let level = match asked {
        Some(asked) => asked.get("checks").and_then(Value::as_str),
        None if app.permissions.is_empty() => return true,
        None => app.permissions.get("checks").map(String::as_str),
    };
    level == Some("write")
}

fn find<'a>(state: &'a mut State, repository: &str, id: &str) -> Option<&'a mut CheckRun> {
    let id: u64 = id.parse().ok()?;
    state
        .check_runs
        .iter_mut()
        .find(|r| r.id == id && r.repository == repository)
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}
