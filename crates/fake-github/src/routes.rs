//! The fake's endpoints: a pure function from (state, request, clock) to a response, so the routing is
//! tested without sockets and the server around it stays small.
//!
//! Auto-merge is GraphQL's `enablePullRequestAutoMerge` (REST has no endpoint for it): refused with
//! GitHub's message when the repository does not allow auto-merge, or with `auto_merge_refusal`.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};
use sha1::{Digest, Sha1};
use upm_github::deliveries::format_rfc3339_utc;

use crate::state::{
    Commit, Delivery, Dispatch, Fault, Pull, RecordedRequest, RedeliveryRequest, Repo,
    SelfHostedRunner, State, WorkflowDispatch, WorkflowRun,
};

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Raw (percent-encoded) path.
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
    pub if_none_match: Option<String>,
    /// The `Accept` header: the contents API answers the file itself for GitHub's raw media type.
    pub accept: Option<String>,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Milliseconds the server waits before answering (a scripted delay).
    pub delay_ms: u64,
}

impl Response {
    pub(crate) fn json(status: u16, value: Value) -> Response {
        Response {
            status,
            headers: vec![(
                "content-type".into(),
                "application/json; charset=utf-8".into(),
            )],
            body: value.to_string().into_bytes(),
            delay_ms: 0,
        }
    }

    pub(crate) fn empty(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay_ms: 0,
        }
    }

    pub(crate) fn error(status: u16, message: &str) -> Response {
        Response::json(
            status,
            json!({ "message": message, "documentation_url": "https://docs.github.com/rest", "status": status.to_string() }),
        )
    }

    fn header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

pub(crate) fn not_found() -> Response {
    Response::error(404, "Not Found")
}

fn decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

pub(crate) fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| decode(&v.replace('+', " ")))
    })
}

pub(crate) fn bearer(authorization: &Option<String>) -> Option<String> {
    let value = authorization.as_deref()?.trim();
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .or_else(|| value.strip_prefix("token "))
        .map(|t| t.trim().to_string())
}

/// Handles one request: scripted faults first, then auth, then the endpoint; records it; adds the
/// ETag / 304 and rate-limit headers GitHub sends.
pub fn handle(state: &mut State, request: &Request, now: i64) -> Response {
    let now = now + state.clock_offset_secs;
    let path_only = request.path.clone();
    let fault = take_fault(&mut state.faults, &request.method, &path_only);
    let mut response = match &fault {
        Some(f) if f.status.is_some() => {
            let status = f.status.unwrap_or(500);
            Response::error(status, f.message.as_deref().unwrap_or("scripted failure"))
        }
        _ => route_authorized(state, request, now),
    };
    if request.method == "GET" && response.status == 200 {
        let etag = format!("\"{}\"", &hex_sha1(&response.body)[..20]);
        if request.if_none_match.as_deref() == Some(etag.as_str()) {
            // GitHub's 304 has no body but keeps the other headers.
            response.status = 304;
            response.body.clear();
        }
        response = response.header("etag", etag);
    }
    let (remaining, reset_in) = match &fault {
        Some(f) => (
            f.rate_limit_remaining.unwrap_or(4999),
            f.rate_limit_reset_in.unwrap_or(3600),
        ),
        None => (4999, 3600),
    };
    response = response
        .header("x-ratelimit-limit", "5000")
        .header("x-ratelimit-remaining", remaining.to_string())
        .header("x-ratelimit-reset", (now + reset_in).to_string());
    if let Some(f) = &fault {
        if let Some(secs) = f.retry_after {
            response = response.header("retry-after", secs.to_string());
        }
        response.delay_ms = f.delay_ms;
    }
    if !request.path.starts_with("/_fake/") {
        state.requests.push(RecordedRequest {
            method: request.method.clone(),
            path: decode(&request.path),
            query: request.query.clone(),
            status: response.status,
            token: bearer(&request.authorization),
            body: serde_json::from_slice(&request.body).ok(),
        });
    }
    response
}

fn take_fault(faults: &mut Vec<Fault>, method: &str, path: &str) -> Option<Fault> {
    let decoded = decode(path);
    let index = faults.iter().position(|f| {
        f.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && f.path_contains
                .as_deref()
                .is_none_or(|p| decoded.contains(p))
            && !path.starts_with("/_fake/")
    })?;
    let fault = &mut faults[index];
    if fault.skip > 0 {
        fault.skip -= 1;
        return None;
    }
    let taken = fault.clone();
    fault.times = fault.times.saturating_sub(1);
    if fault.times == 0 {
        faults.remove(index);
    }
    Some(taken)
}

fn hex_sha1(bytes: &[u8]) -> String {
    Sha1::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn route_authorized(state: &mut State, request: &Request, now: i64) -> Response {
    let segments: Vec<String> = request
        .path
        .trim_start_matches('/')
        .split('/')
        .map(decode)
        .collect();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    if segs.first() == Some(&"_fake") {
        return route(state, request, &segs, now);
    }
    if segs.first() == Some(&"app") {
        return match check_jwt(state, request, now) {
            Ok(()) => route_app(state, request, &segs, now),
            Err(message) => Response::error(401, &message),
        };
    }
    if matches!(
        segs.as_slice(),
        ["orgs", _, "installation"] | ["repos", _, _, "installation"]
    ) {
        if let Err(message) = check_jwt(state, request, now) {
            return Response::error(401, &message);
        }
        return installation_of(state, &segs);
    }
    if !authorized(state, request, now) {
        return Response::error(401, "Bad credentials");
    }
    route(state, request, &segs, now)
}

fn authorized(state: &State, request: &Request, now: i64) -> bool {
    let minted = state
        .app
        .as_ref()
        .map(|a| a.minted.as_slice())
        .unwrap_or(&[]);
    if state.tokens.is_empty() && state.app.is_none() {
        return true;
    }
    let Some(token) = bearer(&request.authorization) else {
        return false;
    };
    state.tokens.contains(&token) || minted.iter().any(|(t, exp)| *t == token && *exp > now)
}

/// A live installation token of the App (what GitHub requires to write check runs).
fn installation_token(state: &State, request: &Request, now: i64) -> bool {
    let minted = state
        .app
        .as_ref()
        .map(|a| a.minted.as_slice())
        .unwrap_or(&[]);
    bearer(&request.authorization)
        .is_some_and(|t| minted.iter().any(|(m, exp)| *m == t && *exp > now))
}

fn check_jwt(state: &State, request: &Request, now: i64) -> Result<(), String> {
    use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
    use rsa::signature::Verifier;
    use rsa::{RsaPrivateKey, RsaPublicKey};
    let app = state
        .app
        .as_ref()
        .ok_or("no GitHub App is configured in the fake")?;
    let jwt = bearer(&request.authorization).ok_or("A JSON web token could not be decoded")?;
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 {
        return Err("A JSON web token could not be decoded".into());
    }
    let pem = app.key_pem.trim();
    let public = RsaPublicKey::from_pkcs1_pem(pem)
        .or_else(|_| RsaPublicKey::from_public_key_pem(pem))
        .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem).map(|k| k.to_public_key()))
        .or_else(|_| RsaPrivateKey::from_pkcs8_pem(pem).map(|k| k.to_public_key()))
        .map_err(|_| "the fake's App key is not an RSA PEM".to_string())?;
    let signature = URL_SAFE_NO_PAD
        .decode(parts[2])
        .ok()
        .and_then(|s| Signature::try_from(s.as_slice()).ok())
        .ok_or("A JSON web token could not be decoded")?;
    VerifyingKey::<sha2::Sha256>::new(public)
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .map_err(|_| "'Issuer' claim ('iss') must be an Integer (signature invalid)".to_string())?;
    let json_part = |part: &str| -> Result<Value, String> {
        URL_SAFE_NO_PAD
            .decode(part)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| "A JSON web token could not be decoded".to_string())
    };
    let header = json_part(parts[0])?;
    if header["alg"] != "RS256" {
        return Err("JWT alg must be RS256".into());
    }
    let claims = json_part(parts[1])?;
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap_or(0),
        claims["exp"].as_i64().unwrap_or(0),
    );
    // A numeric App id must come as a JSON number; a client id as a string.
    let issuer_ok = match app.app_id.parse::<i64>() {
        Ok(id) => claims["iss"].as_i64() == Some(id),
        Err(_) => claims["iss"].as_str() == Some(app.app_id.as_str()),
    };
    if !issuer_ok {
        return Err("'Issuer' claim ('iss') must be an Integer".into());
    }
    // GitHub: exp no more than 10 minutes into the future; iat not in the future.
    if exp <= now || exp - now > 600 || iat > now + 60 {
        return Err(
            "'Expiration time' claim ('exp') is too far in the future or has passed".into(),
        );
    }
    Ok(())
}

fn installation_of(state: &State, segs: &[&str]) -> Response {
    let app = state.app.as_ref().expect("checked by check_jwt");
    let owner = segs[1].to_ascii_lowercase();
    // GitHub answers 404 for a repository that does not exist, even under an installed owner, and
    // for one an installation on "Only select repositories" does not include.
    if let ["repos", owner, name, _] = segs {
        let full = format!("{owner}/{name}");
        if state.repo(&full).is_none() || !app.reaches(&full) {
            return not_found();
        }
    }
    let selection = if app.repositories.is_some() {
        "selected"
    } else {
        "all"
    };
    match app.installations.get(&owner) {
        Some(id) => Response::json(
            200,
            json!({ "id": id, "app_id": app.app_id.parse::<u64>().ok(), "account": { "login": segs[1] },
                "repository_selection": selection, "permissions": app.permissions }),
        ),
        None => not_found(),
    }
}

fn route_app(state: &mut State, request: &Request, segs: &[&str], now: i64) -> Response {
    match (request.method.as_str(), segs) {
        ("POST", ["app", "installations", id, "access_tokens"]) => {
            let id: u64 = id.parse().unwrap_or(0);
            let serial = state.fresh_id();
            let Some(app) = state.app.as_mut() else {
                return not_found();
            };
            let Some(owner) = app
                .installations
                .iter()
                .find(|(_, i)| **i == id)
                .map(|(owner, _)| owner.clone())
            else {
                return not_found();
            };
            #[derive(serde::Deserialize, Default)]
            #[serde(default)]
            struct Ask {
                repositories: Option<Vec<String>>,
                permissions: Option<serde_json::Value>,
            }
            let ask: Ask = if request.body.is_empty() {
                Ask::default()
            } else {
                match serde_json::from_slice(&request.body) {
                    Ok(ask) => ask,
                    Err(e) => return Response::error(400, &format!("Problems parsing JSON: {e}")),
                }
            };
            // GitHub's limits on a token request ("Create an installation access token for an app"): at
            // most 500 repositories by name, and ONE repository the installation cannot reach refuses
            // the whole token.
            if let Some(names) = &ask.repositories {
                if names.len() > 500 {
                    return Response::error(
                        422,
                        "Too many repositories: a token can name at most 500 repositories",
                    );
                }
                let unreachable = names.iter().any(|name| {
                    let full = format!("{owner}/{name}");
                    state.repo(&full).is_none()
                        || !state.app.as_ref().is_some_and(|app| app.reaches(&full))
                });
                if unreachable {
                    return Response::error(
                        422,
                        "There is at least one repository that does not exist or is not accessible to the parent installation.",
                    );
                }
            }
            let app = state.app.as_mut().expect("checked above");
            app.minted_permissions
                .push(ask.permissions.unwrap_or_else(|| json!({})));
            let token = format!("ghs_fake_installation_{serial}");
            let expires = now + app.token_ttl_secs;
            app.minted.push((token.clone(), expires));
            Response::json(
                201,
                json!({ "token": token, "expires_at": format_rfc3339_utc(expires) }),
            )
        }
        _ => not_found(),
    }
}

fn route(state: &mut State, request: &Request, segs: &[&str], now: i64) -> Response {
    let method = request.method.as_str();
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    match (method, segs) {
        ("GET", ["_fake", "state"]) => Response::json(
            200,
            serde_json::to_value(&*state).expect("state serialises"),
        ),
        ("PUT", ["_fake", "state"]) => match serde_json::from_slice::<State>(&request.body) {
            Ok(new_state) => {
                *state = new_state;
                Response::empty(204)
            }
            Err(e) => Response::error(400, &format!("state: {e}")),
        },
        ("GET", ["_fake", "requests"]) => Response::json(200, json!(state.requests)),
        ("GET", ["_fake", "dispatches"]) => Response::json(200, json!(state.dispatches)),
        // Atomic edits for a test that changes the world while other clients (a worker, a runner) use
        // it: a read-modify-write of the whole state would lose what they recorded in between.
        ("PUT", ["_fake", "repos"]) => match serde_json::from_slice::<Repo>(&request.body) {
            Ok(mut repo) => {
                match state.repo_mut(&repo.full_name) {
                    Some(existing) => {
                        repo.id = existing.id;
                        // A snapshot of the git side (refs, objects) keeps the Actions side.
                        if repo.workflow_runs.is_empty() {
                            repo.workflow_runs = std::mem::take(&mut existing.workflow_runs);
                        }
                        if repo.workflows.is_empty() {
                            repo.workflows = std::mem::take(&mut existing.workflows);
                        }
                        *existing = repo;
                    }
                    None => {
                        repo.id = 1000 + state.fresh_id();
                        state.repos.push(repo);
                    }
                }
                Response::empty(204)
            }
            Err(e) => Response::error(400, &format!("repo: {e}")),
        },
        ("POST", ["_fake", "hooks", org, hook, "deliveries"]) => {
            let Ok(hook_id) = hook.parse::<u64>() else {
                return Response::error(400, "hook id: not a number");
            };
            match serde_json::from_slice::<Delivery>(&request.body) {
                Ok(mut delivery) => {
                    delivery.id = state.fresh_id();
                    let id = delivery.id;
                    state.hook_mut(org, hook_id).deliveries.push(delivery);
                    Response::json(201, json!({ "id": id }))
                }
                Err(e) => Response::error(400, &format!("delivery: {e}")),
            }
        }
        ("GET", ["_fake", "artifact-downloads", owner, name, id]) => {
            let Some(repo) = state.repo(&format!("{owner}/{name}")) else {
                return not_found();
            };
            match repo
                .workflow_runs
                .iter()
                .flat_map(|r| &r.artifacts)
                .find(|a| a.id.to_string() == *id)
            {
                Some(a) => {
                    let mut zip = Response::empty(200);
                    zip.body = crate::zip::write(&a.files);
                    zip.header("content-type", "application/zip")
                }
                None => not_found(),
            }
        }
        // The Actions runner's side: a run it queued (GitHub creates one per workflow a dispatch
        // triggers), and the run's progress (a runner took it, it ended).
        ("POST", ["_fake", "repos", owner, name, "runs"]) => {
            let id = state.fresh_id();
            let Some(repo) = state.repo_mut(&format!("{owner}/{name}")) else {
                return not_found();
            };
            match serde_json::from_slice::<WorkflowRun>(&request.body) {
                Ok(mut run) => {
                    run.id = id;
                    if run.created_at.is_empty() {
                        run.created_at = format_rfc3339_utc(now);
                    }
                    if run.status.is_empty() {
                        run.status = "queued".into();
                    }
                    repo.workflow_runs.push(run);
                    Response::json(201, json!({ "id": id }))
                }
                Err(e) => Response::error(400, &format!("run: {e}")),
            }
        }
        ("PATCH", ["_fake", "repos", owner, name, "runs", id]) => {
            let Some(repo) = state.repo_mut(&format!("{owner}/{name}")) else {
                return not_found();
            };
            let Some(run) = repo
                .workflow_runs
                .iter_mut()
                .find(|r| r.id.to_string() == *id)
            else {
                return not_found();
            };
            for (field, value) in body.as_object().into_iter().flatten() {
                match (field.as_str(), value) {
                    ("status", Value::String(v)) => run.status = v.clone(),
                    ("conclusion", v) => run.conclusion = v.as_str().map(str::to_string),
                    ("created_at", Value::String(v)) => run.created_at = v.clone(),
                    ("runner_name", v) => run.runner_name = v.as_str().map(str::to_string),
                    _ => return Response::error(400, &format!("run: cannot set {field}")),
                }
            }
            Response::empty(204)
        }
        ("PUT", ["_fake", "clock"]) => match body["offset_secs"].as_i64() {
            Some(offset) => {
                state.clock_offset_secs = offset;
                Response::empty(204)
            }
            None => Response::error(400, "clock: offset_secs (a whole number) is required"),
        },
        ("PUT", ["_fake", "runners"]) => {
            match serde_json::from_slice::<Vec<SelfHostedRunner>>(&request.body) {
                Ok(runners) => {
                    state.runners = runners;
                    Response::empty(204)
                }
                Err(e) => Response::error(400, &format!("runners: {e}")),
            }
        }
        ("GET", ["_fake", "workflow_dispatches"]) => {
            Response::json(200, json!(state.workflow_dispatches))
        }
        ("GET", ["orgs", org, "actions", "runners"]) => runners_json(&org_runners(state, org)),
        ("POST", ["_fake", "faults"]) => match serde_json::from_slice::<Fault>(&request.body) {
            Ok(fault) => {
                state.faults.push(fault);
                Response::empty(204)
            }
            Err(e) => Response::error(400, &format!("fault: {e}")),
        },
        ("POST", ["graphql"]) => graphql(state, &body),
        ("GET", ["orgs", ..] | ["repos", _, _, "actions", "variables" | "secrets", ..])
        | ("GET", ["repos", _, _, "environments", ..])
            if crate::settings::serves(segs) =>
        {
            crate::settings::route(state, segs, &request.query)
        }
        ("GET", ["orgs", org, "hooks", hook, "deliveries"]) => {
            list_deliveries(state, org, hook, &request.query)
        }
        ("GET", ["orgs", org, "hooks", hook, "deliveries", id]) => {
            match find_delivery(state, org, hook, id) {
                Some(d) => Response::json(200, delivery_json(&d, true)),
                None => not_found(),
            }
        }
        ("POST", ["orgs", org, "hooks", hook, "deliveries", id, "attempts"]) => {
            let Some(original) = find_delivery(state, org, hook, id) else {
                return not_found();
            };
            let new_id = 900_000 + state.fresh_id();
            let code = state.redelivery_status_code.unwrap_or(200);
            let hook_id: u64 = hook.parse().unwrap_or(0);
            state.redeliveries.push(RedeliveryRequest {
                org: org.to_string(),
                hook_id,
                delivery_id: original.id,
                guid: original.guid.clone(),
            });
            state.hook_mut(org, hook_id).deliveries.push(Delivery {
                id: new_id,
                redelivery: true,
                delivered_at: format_rfc3339_utc(now),
                status_code: code,
                status: Delivery::status_text(code),
                // GitHub answers 202 and makes the attempt later: the first listing after the
                // answer does not show it yet (docs, "Redeliver a delivery for an organization
                // webhook": 202 Accepted).
                unlisted_for: 1,
                ..original
            });
            Response::json(202, json!({}))
        }
        (_, ["repos", owner, name, rest @ ..]) => {
            let full = format!("{owner}/{name}");
            let app_token = state.app.is_none() || installation_token(state, request, now);
            let checks = crate::checks::route(state, &full, request, rest, &body, now, app_token);
            if let Some(answer) = checks {
                return answer;
            }
            if method == "POST" && rest == ["dispatches"] {
                return dispatch(state, &full, &body);
            }
            if let ("POST", ["actions", "workflows", workflow, "dispatches"]) = (method, rest) {
                return workflow_dispatch(state, &full, workflow, &body, now);
            }
            if let ("GET", ["actions", "runners"]) = (method, rest) {
                let runners: Vec<&SelfHostedRunner> = state
                    .runners
                    .iter()
                    .filter(|r| {
                        r.repo
                            .as_deref()
                            .is_some_and(|f| f.eq_ignore_ascii_case(&full))
                    })
                    .collect();
                return if state.repo(&full).is_some() {
                    runners_json(&runners)
                } else {
                    not_found()
                };
            }
            let Some(repo) = state.repo_mut(&full) else {
                return not_found();
            };
            let raw = request
                .accept
                .as_deref()
                .is_some_and(|a| a.contains("vnd.github.raw"));
            repo_route(repo, method, rest, &request.query, &body, now, raw)
        }
        _ => not_found(),
    }
}

fn dispatch(state: &mut State, full: &str, body: &Value) -> Response {
    let Some(repo) = state.repo(full) else {
        return not_found();
    };
    let repository = repo.full_name.clone();
    let event_type = body["event_type"].as_str().unwrap_or("");
    if event_type.is_empty() || event_type.len() > 100 {
        return Response::error(422, "Invalid request.\n\nevent_type is missing or too long");
    }
    let payload = body.get("client_payload").cloned().unwrap_or(json!({}));
    // GitHub: "The maximum number of top-level properties is 10."
    if payload.as_object().is_some_and(|o| o.len() > 10) {
        return Response::error(
            422,
            "Invalid request.\n\nclient_payload has more than 10 properties",
        );
    }
    // GitHub: "The client_payload … The total size of the JSON payload must be less than 64KB."
    if payload.to_string().len() >= 64 * 1024 {
        return Response::error(
            422,
            "Invalid request.\n\nclient_payload is too large: it must be less than 64KB",
        );
    }
    state.dispatches.push(Dispatch {
        repository,
        event_type: event_type.to_string(),
        client_payload: payload,
    });
    Response::empty(204)
}

/// "Create a workflow dispatch event": 204 No Content; the workflow must exist, be active and be
/// dispatched on a branch that exists. The fake creates the run GitHub would, queued.
fn workflow_dispatch(
    state: &mut State,
    full: &str,
    workflow: &str,
    body: &Value,
    now: i64,
) -> Response {
    let run_id = state.fresh_id();
    let Some(repo) = state.repo_mut(full) else {
        return not_found();
    };
    let Some(found) = repo.workflows.iter().find(|w| w.is(workflow)).cloned() else {
        return not_found();
    };
    let Some(reference) = body["ref"].as_str() else {
        return Response::error(422, "Invalid request.\n\n\"ref\" wasn't supplied.");
    };
    let Some(head) = repo.resolve(reference) else {
        return Response::error(422, &format!("No ref found for: {reference}"));
    };
    if found.state != "active" {
        return Response::error(
            422,
            "Cannot trigger a 'workflow_dispatch' on a disabled workflow",
        );
    }
    let file = found
        .path
        .rsplit('/')
        .next()
        .unwrap_or(&found.path)
        .to_string();
    repo.workflow_runs.push(WorkflowRun {
        id: run_id,
        workflow: file.clone(),
        display_title: found.name.clone(),
        event: "workflow_dispatch".into(),
        status: "queued".into(),
        conclusion: None,
        created_at: format_rfc3339_utc(now),
        head_sha: head,
        head_branch: reference.to_string(),
        labels: vec!["ubuntu-latest".into()],
        runner_name: None,
        ..WorkflowRun::default()
    });
    let repository = repo.full_name.clone();
    state.workflow_dispatches.push(WorkflowDispatch {
        repository,
        workflow: file,
        reference: reference.to_string(),
        inputs: body.get("inputs").cloned().unwrap_or(json!({})),
        run_id,
    });
    Response::empty(204)
}

/// "List self-hosted runners": labels as objects, as GitHub lists them.
/// The runners registered on an organization (not on one of its repositories).
pub(crate) fn org_runners<'s>(state: &'s State, org: &str) -> Vec<&'s SelfHostedRunner> {
    state
        .runners
        .iter()
        .filter(|r| {
            r.org
                .as_deref()
                .is_some_and(|o| o.eq_ignore_ascii_case(org))
        })
        .collect()
}

pub(crate) fn runners_json(runners: &[&SelfHostedRunner]) -> Response {
    let list: Vec<Value> = runners
        .iter()
        .map(|r| {
            let labels: Vec<Value> = r
                .labels
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    let kind = if matches!(name.as_str(), "self-hosted" | "linux" | "x64" | "windows" | "macos" | "arm64") { "read-only" } else { "custom" };
                    json!({ "id": i + 1, "name": name, "type": kind })
                })
                .collect();
            json!({ "id": r.id, "name": r.name, "os": r.os, "status": r.status, "busy": r.busy, "labels": labels })
        })
        .collect();
    Response::json(200, json!({ "total_count": list.len(), "runners": list }))
}

fn find_delivery(state: &State, org: &str, hook: &str, id: &str) -> Option<Delivery> {
    let id: u64 = id.parse().ok()?;
    state
        .hooks
        .iter()
        .find(|h| h.org.eq_ignore_ascii_case(org) && h.id.to_string() == hook)?
        .deliveries
        .iter()
        .find(|d| d.id == id)
        .cloned()
}

fn delivery_json(d: &Delivery, with_request: bool) -> Value {
    let mut value = json!({
        "id": d.id, "guid": d.guid, "delivered_at": d.delivered_at, "redelivery": d.redelivery,
        "duration": d.duration, "status": d.status, "status_code": d.status_code, "event": d.event,
        "action": d.action, "installation_id": null, "repository_id": d.repository_id,
    });
    if with_request {
        value["request"] = json!({ "headers": { "X-GitHub-Delivery": d.guid, "X-GitHub-Event": d.event }, "payload": d.payload });
        value["response"] =
            json!({ "headers": {}, "payload": d.response.clone().unwrap_or_default() });
    }
    value
}

/// Newest first, cursor-paginated like GitHub (`Link: <…?per_page=N&cursor=…>; rel="next"`).
fn list_deliveries(state: &mut State, org: &str, hook: &str, query: &str) -> Response {
    let page_size_cap = state.page_size_cap;
    let Some(hook_state) = state
        .hooks
        .iter_mut()
        .find(|h| h.org.eq_ignore_ascii_case(org) && h.id.to_string() == hook)
    else {
        return not_found();
    };
    let first_page = query_param(query, "cursor").is_none();
    let mut all: Vec<&Delivery> = Vec::new();
    let mut pending = Vec::new();
    for (index, d) in hook_state.deliveries.iter().enumerate() {
        if d.unlisted_for == 0 {
            all.push(d);
        } else if first_page {
            pending.push(index);
        }
    }
    all.sort_by_key(|d| std::cmp::Reverse(d.id));
    let per_page = query_param(query, "per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(30usize)
        .clamp(1, 100)
        .min(page_size_cap.unwrap_or(100));
    let start = match query_param(query, "cursor") {
        Some(cursor) => {
            let Some(id) = cursor
                .strip_prefix("v1_")
                .and_then(|c| c.parse::<u64>().ok())
            else {
                return Response::error(422, "Invalid cursor");
            };
            all.iter().position(|d| d.id <= id).unwrap_or(all.len())
        }
        None => 0,
    };
    let page: Vec<Value> = all
        .iter()
        .skip(start)
        .take(per_page)
        .map(|d| delivery_json(d, false))
        .collect();
    let mut response = Response::json(200, Value::Array(page));
    if let Some(next) = all.get(start + per_page) {
        response = response.header(
            "link",
            format!(
                "</orgs/{org}/hooks/{hook}/deliveries?per_page={per_page}&cursor=v1_{}>; rel=\"next\"",
                next.id
            ),
        );
    }
    for index in pending {
        hook_state.deliveries[index].unlisted_for -= 1;
    }
    // GitHub's Link URLs are absolute; the server fills in its own origin (see `server`).
    response
}

fn graphql(state: &mut State, body: &Value) -> Response {
    let query = body["query"].as_str().unwrap_or("");
    if !query.contains("enablePullRequestAutoMerge") {
        return Response::json(
            200,
            json!({ "errors": [{ "message": "the fake only knows enablePullRequestAutoMerge" }] }),
        );
    }
    let id = body["variables"]["id"].as_str().unwrap_or("");
    for repo in &mut state.repos {
        let allowed = repo.allow_auto_merge;
        let refusal = repo.auto_merge_refusal.clone();
        if let Some(pull) = repo.pulls.iter_mut().find(|p| p.node_id == id) {
            let refusal = if !allowed {
                Some("Pull request Auto merge is not allowed for this repository".to_string())
            } else {
                refusal
            };
            return match refusal {
                Some(message) => Response::json(
                    200,
                    json!({ "data": { "enablePullRequestAutoMerge": null }, "errors": [{ "type": "UNPROCESSABLE", "message": message }] }),
                ),
                None => {
                    pull.auto_merge = true;
                    Response::json(
                        200,
                        json!({ "data": { "enablePullRequestAutoMerge": { "pullRequest": { "number": pull.number } } } }),
                    )
                }
            };
        }
    }
    Response::json(
        200,
        json!({ "errors": [{ "type": "NOT_FOUND", "message": format!("Could not resolve to a node with the global id of '{id}'") }] }),
    )
}

fn repo_json(repo: &Repo) -> Value {
    json!({
        "id": repo.id, "node_id": format!("R_{}", repo.id), "name": repo.full_name.split('/').nth(1),
        "full_name": repo.full_name, "private": repo.private, "archived": repo.archived,
        "default_branch": repo.default_branch, "allow_auto_merge": repo.allow_auto_merge,
        "html_url": format!("https://github.com/{}", repo.full_name),
    })
}

pub(crate) fn pull_json(repo: &Repo, pull: &Pull) -> Value {
    json!({
        "number": pull.number, "node_id": pull.node_id, "state": pull.state, "title": pull.title,
        "body": pull.body, "auto_merge": if pull.auto_merge { json!({"merge_method": "squash"}) } else { Value::Null },
        "html_url": format!("https://github.com/{}/pull/{}", repo.full_name, pull.number),
        "head": { "ref": pull.head, "label": format!("{}:{}", repo.full_name.split('/').next().unwrap_or(""), pull.head) },
        "base": { "ref": pull.base },
    })
}

/// A git reference as the refs API answers it.
fn ref_json(name: &str, sha: &str) -> Value {
    json!({ "ref": name, "object": { "sha": sha, "type": "commit" } })
}

/// Points `branch` at `sha`, which must be a known commit, and answers `status` with the ref.
fn point_branch(repo: &mut Repo, branch: &str, sha: &str, status: u16) -> Response {
    if !repo.commits.contains_key(sha) {
        return Response::error(422, "Object does not exist");
    }
    repo.branches.insert(branch.to_string(), sha.to_string());
    Response::json(status, ref_json(&format!("refs/heads/{branch}"), sha))
}

/// The branch a contents write names (the default branch when it names none) and its head commit.
fn branch_of_write(repo: &Repo, body: &Value) -> Result<(String, String), Response> {
    let branch = body["branch"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| repo.default_branch.clone());
    match repo.branches.get(&branch) {
        Some(head) => Ok((branch, head.clone())),
        None => Err(Response::error(404, &format!("Branch {branch} not found"))),
    }
}

fn parents_json(commit: &Commit) -> Vec<Value> {
    commit.parents.iter().map(|p| json!({ "sha": p })).collect()
}

fn repo_route(
    repo: &mut Repo,
    method: &str,
    rest: &[&str],
    query: &str,
    body: &Value,
    now: i64,
    raw: bool,
) -> Response {
    if let Some(answer) = crate::git_data::route(repo, method, rest, body) {
        return answer;
    }
    match (method, rest) {
        ("GET", []) => Response::json(200, repo_json(repo)),
        ("GET", ["branches", branch @ ..]) => {
            let branch = branch.join("/");
            match repo.branches.get(&branch) {
                Some(sha) => {
                    let tree = repo.commits[sha].tree.clone();
                    Response::json(
                        200,
                        json!({ "name": branch, "commit": { "sha": sha, "commit": { "tree": { "sha": tree } } } }),
                    )
                }
                None => Response::error(404, "Branch not found"),
            }
        }
        ("GET", ["git", "ref" | "refs", "heads", branch @ ..]) => {
            let branch = branch.join("/");
            match repo.branches.get(&branch) {
                Some(sha) => Response::json(200, ref_json(&format!("refs/heads/{branch}"), sha)),
                None => not_found(),
            }
        }
        ("POST", ["git", "refs"]) => {
            let (Some(name), Some(sha)) = (body["ref"].as_str(), body["sha"].as_str()) else {
                return Response::error(
                    422,
                    "Invalid request.\n\n\"ref\" and \"sha\" are required",
                );
            };
            let Some(branch) = name.strip_prefix("refs/heads/") else {
                return Response::error(
                    422,
                    "Reference name must start with refs/heads/ in this fake",
                );
            };
            if repo.branches.contains_key(branch) {
                return Response::error(422, "Reference already exists");
            }
            point_branch(repo, branch, sha, 201)
        }
        ("PATCH", ["git", "refs", "heads", branch @ ..]) => {
            let branch = branch.join("/");
            let Some(sha) = body["sha"].as_str() else {
                return Response::error(422, "\"sha\" is required");
            };
            if !repo.branches.contains_key(&branch) {
                return Response::error(422, "Reference does not exist");
            }
            point_branch(repo, &branch, sha, 200)
        }
        ("DELETE", ["git", "refs", "heads", branch @ ..]) => {
            match repo.branches.remove(&branch.join("/")) {
                Some(_) => Response::empty(204),
                None => Response::error(422, "Reference does not exist"),
            }
        }
        ("GET", ["commits", reference]) => match repo.resolve(reference) {
            Some(sha) => Response::json(200, commit_json(repo, &sha)),
            None => Response::error(422, &format!("No commit found for SHA: {reference}")),
        },
        ("GET", ["git", "commits", sha]) => match repo.commits.get(*sha) {
            Some(commit) => Response::json(
                200,
                json!({ "sha": sha, "message": commit.message, "tree": { "sha": commit.tree }, "parents": parents_json(commit) }),
            ),
            None => not_found(),
        },
        ("GET", ["git", "trees", tree_ish]) => {
            let tree_sha = if repo.trees.contains_key(*tree_ish) {
                tree_ish.to_string()
            } else {
                match repo.resolve(tree_ish) {
                    Some(commit) => repo.commits[&commit].tree.clone(),
                    None => return not_found(),
                }
            };
            let recursive = query_param(query, "recursive")
                .is_some_and(|v| !v.is_empty() && v != "0" && v != "false");
            let mut entries = Vec::new();
            list_tree(repo, &tree_sha, "", recursive, &mut entries);
            Response::json(
                200,
                json!({ "sha": tree_sha, "truncated": false, "tree": entries }),
            )
        }
        ("GET", ["git", "blobs", sha]) => match repo.blobs.get(*sha) {
            Some(content) => {
                let size = STANDARD.decode(content).map(|b| b.len()).unwrap_or(0);
                Response::json(
                    200,
                    json!({ "sha": sha, "size": size, "encoding": "base64", "content": content }),
                )
            }
            None => not_found(),
        },
        ("GET", ["contents", path @ ..]) => {
            let path = path.join("/");
            let reference =
                query_param(query, "ref").unwrap_or_else(|| repo.default_branch.clone());
            let Some(commit) = repo.resolve(&reference) else {
                return Response::error(404, &format!("No commit found for the ref {reference}"));
            };
            if let Some(blob) = repo.file_blob(&commit, &path) {
                // `application/vnd.github.raw(+json)`: the file's bytes, no base64 envelope (what the
                // worker asks for, as GitHub serves files up to 100 MB that way).
                if raw {
                    let mut raw = Response::empty(200);
                    raw.body = repo.blob_bytes(blob).unwrap_or_default();
                    return raw.header("content-type", "application/vnd.github.raw; charset=utf-8");
                }
                let content = repo.blobs[blob].clone();
                return Response::json(
                    200,
                    json!({ "type": "file", "path": path, "name": path.rsplit('/').next(), "sha": blob, "encoding": "base64", "content": content, "size": repo.blob_bytes(blob).map(|b| b.len()).unwrap_or(0) }),
                );
            }
            let prefix = if path.is_empty() {
                String::new()
            } else {
                format!("{path}/")
            };
            let mut listing: Vec<Value> = Vec::new();
            let mut seen = std::collections::BTreeSet::new();
            for (file, blob) in &repo.commits[&commit].files {
                let Some(rest) = file.strip_prefix(&prefix) else {
                    continue;
                };
                match rest.split_once('/') {
                    None => listing
                        .push(json!({ "type": "file", "name": rest, "path": file, "sha": blob })),
                    Some((dir, _)) => {
                        if seen.insert(dir.to_string()) {
                            listing.push(json!({ "type": "dir", "name": dir, "path": format!("{prefix}{dir}") }));
                        }
                    }
                }
            }
            if listing.is_empty() {
                not_found()
            } else {
                Response::json(200, Value::Array(listing))
            }
        }
        ("PUT", ["contents", path @ ..]) => {
            let path = path.join("/");
            let (branch, head) = match branch_of_write(repo, body) {
                Ok(found) => found,
                Err(answer) => return answer,
            };
            let Some(content) = body["content"]
                .as_str()
                .and_then(|c| STANDARD.decode(c).ok())
            else {
                return Response::error(
                    422,
                    "Invalid request.\n\n\"content\" wasn't supplied or is not base64.",
                );
            };
            let message = body["message"].as_str().unwrap_or("");
            if message.is_empty() {
                return Response::error(422, "Invalid request.\n\n\"message\" wasn't supplied.");
            }
            let existing = repo.file_blob(&head, &path).cloned();
            match (existing.as_deref(), body["sha"].as_str()) {
                (Some(_), None) => {
                    return Response::error(422, "Invalid request.\n\n\"sha\" wasn't supplied.")
                }
                (Some(current), Some(given)) if current != given => {
                    return Response::error(409, &format!("{path} does not match {given}"))
                }
                _ => {}
            }
            let commit = repo
                .commit(&branch, &[(&path, Some(&content))], message)
                .expect("a write never fails");
            let blob = repo.file_blob(&commit, &path).cloned();
            Response::json(
                if existing.is_some() { 200 } else { 201 },
                json!({ "content": { "path": path, "sha": blob }, "commit": { "sha": commit } }),
            )
        }
        ("DELETE", ["contents", path @ ..]) => {
            let path = path.join("/");
            let (branch, head) = match branch_of_write(repo, body) {
                Ok(found) => found,
                Err(answer) => return answer,
            };
            let Some(current) = repo.file_blob(&head, &path).cloned() else {
                return not_found();
            };
            if body["sha"].as_str() != Some(current.as_str()) {
                return Response::error(409, &format!("{path} does not match {}", body["sha"]));
            }
            let message = body["message"].as_str().unwrap_or("delete");
            let commit = repo
                .commit(&branch, &[(&path, None)], message)
                .expect("the file exists");
            Response::json(200, json!({ "content": null, "commit": { "sha": commit } }))
        }
        ("GET", ["pulls"]) => {
            let state_filter = query_param(query, "state").unwrap_or_else(|| "open".into());
            let head = query_param(query, "head");
            let owner = repo.full_name.split('/').next().unwrap_or("").to_string();
            let list: Vec<Value> = repo
                .pulls
                .iter()
                .filter(|p| state_filter == "all" || p.state == state_filter)
                .filter(|p| {
                    head.as_deref()
                        .is_none_or(|h| h.eq_ignore_ascii_case(&format!("{owner}:{}", p.head)))
                })
                .map(|p| pull_json(repo, p))
                .collect();
            // GitHub pages this listing like every other: 30 by default, at most 100, `Link: next`.
            let (per_page, page) = page_params(query, None);
            let path = format!("/repos/{}/pulls", repo.full_name);
            paged(&path, query, list, per_page, page, Value::Array)
        }
        ("GET", ["pulls", number]) => {
            match repo.pulls.iter().find(|p| p.number.to_string() == *number) {
                Some(p) => Response::json(200, pull_json(repo, p)),
                None => not_found(),
            }
        }
        ("POST", ["pulls"]) => {
            let (Some(title), Some(head), Some(base)) = (
                body["title"].as_str(),
                body["head"].as_str(),
                body["base"].as_str(),
            ) else {
                return Response::error(422, "Validation Failed");
            };
            let head = head.split_once(':').map_or(head, |(_, b)| b).to_string();
            let owner = repo.full_name.split('/').next().unwrap_or("").to_string();
            if repo
                .pulls
                .iter()
                .any(|p| p.state == "open" && p.head == head && p.base == base)
            {
                return Response::json(
                    422,
                    json!({ "message": "Validation Failed", "errors": [{ "resource": "PullRequest", "code": "custom", "message": format!("A pull request already exists for {owner}:{head}.") }] }),
                );
            }
            let (Some(head_sha), Some(base_sha)) =
                (repo.branches.get(&head), repo.branches.get(base))
            else {
                return Response::json(
                    422,
                    json!({ "message": "Validation Failed", "errors": [{ "resource": "PullRequest", "field": "head", "code": "invalid" }] }),
                );
            };
            if head_sha == base_sha {
                return Response::json(
                    422,
                    json!({ "message": "Validation Failed", "errors": [{ "resource": "PullRequest", "code": "custom", "message": format!("No commits between {base} and {head}") }] }),
                );
            }
            let number = repo.pulls.len() as u64 + 1;
            let pull = Pull {
                number,
                node_id: format!("PR_fake_{}_{number}", repo.id),
                state: "open".into(),
                title: title.to_string(),
                body: body["body"].as_str().unwrap_or("").to_string(),
                head,
                base: base.to_string(),
                auto_merge: false,
            };
            let value = pull_json(repo, &pull);
            repo.pulls.push(pull);
            Response::json(201, value)
        }
        ("GET", ["actions", "workflows", workflow, "runs"]) => {
            workflow_runs(repo, Some(workflow), query)
        }
        ("GET", ["actions", "runs"]) => workflow_runs(repo, None, query),
        ("GET", ["actions", "runs", id]) => match find_run(repo, id) {
            Some(run) => Response::json(200, run_json(repo, run)),
            None => not_found(),
        },
        // The run's jobs as the test gave them; a run given none has one job carrying the run's
        // `runs-on` labels and the runner that took it (what the watchdog reads).
        ("GET", ["actions", "runs", id, "jobs"]) => match find_run(repo, id) {
            Some(run) if run.jobs.is_empty() => Response::json(
                200,
                json!({ "total_count": 1, "jobs": [{ "id": run.id * 10, "run_id": run.id, "name": run.workflow,
                    "status": run.status, "conclusion": run.conclusion, "labels": run.labels,
                    "runner_id": run.runner_name.as_ref().map(|_| 1), "runner_name": run.runner_name,
                    "created_at": run.created_at }] }),
            ),
            Some(run) => {
                let jobs: Vec<Value> = run.jobs.iter().map(|j| job_json(repo, run, j)).collect();
                Response::json(200, json!({ "total_count": jobs.len(), "jobs": jobs }))
            }
            None => not_found(),
        },
        ("GET", ["actions", "runs", id, "artifacts"]) => match find_run(repo, id) {
            Some(run) => {
                let list: Vec<Value> = run
                    .artifacts
                    .iter()
                    .map(|a| artifact_json(repo, run, a))
                    .collect();
                Response::json(200, json!({ "total_count": list.len(), "artifacts": list }))
            }
            None => not_found(),
        },
        // GitHub answers a download with a redirect to a URL that "expires after 1 minute" and needs
        // no token; an expired artifact is gone (410).
        ("GET", ["actions", "artifacts", id, "zip"]) => {
            let found = repo
                .workflow_runs
                .iter()
                .flat_map(|r| &r.artifacts)
                .find(|a| a.id.to_string() == *id);
            match found {
                Some(a) if a.expired => Response::error(410, "Artifact has expired"),
                Some(a) => {
                    let mut redirect = Response::empty(302);
                    redirect.headers.push((
                        "location".into(),
                        format!("/_fake/artifact-downloads/{}/{}", repo.full_name, a.id),
                    ));
                    redirect
                }
                None => not_found(),
            }
        }
        // "Cancel a workflow run": 202; a completed run cannot be cancelled (409).
        ("POST", ["actions", "runs", id, "cancel"]) => {
            match repo
                .workflow_runs
                .iter_mut()
                .find(|r| r.id.to_string() == *id)
            {
                Some(run) if run.status == "completed" => {
                    Response::error(409, "Cannot cancel a workflow run that is completed.")
                }
                Some(run) => {
                    run.status = "completed".into();
                    run.conclusion = Some("cancelled".into());
                    Response::json(202, json!({}))
                }
                None => not_found(),
            }
        }
        ("GET", ["actions", "workflows"]) => {
            let list: Vec<Value> = repo
                .workflows
                .iter()
                .map(|w| json!({ "id": w.id, "node_id": format!("W_{}", w.id), "name": w.name, "path": w.path,
                    "state": w.state, "url": "", "html_url": format!("https://github.com/{}/blob/HEAD/{}", repo.full_name, w.path),
                    "badge_url": "" }))
                .collect();
            Response::json(200, json!({ "total_count": list.len(), "workflows": list }))
        }
        // "Enable a workflow" (and "Disable a workflow"): 204.
        ("PUT", ["actions", "workflows", workflow, verb @ ("enable" | "disable")]) => {
            match repo.workflows.iter_mut().find(|w| w.is(workflow)) {
                Some(found) => {
                    found.state = if *verb == "enable" {
                        "active".into()
                    } else {
                        "disabled_manually".into()
                    };
                    Response::empty(204)
                }
                None => not_found(),
            }
        }
        ("GET", ["commits"]) => list_commits(repo, query),
        _ => {
            let _ = now;
            not_found()
        }
    }
}

fn list_tree(repo: &Repo, sha: &str, prefix: &str, recursive: bool, out: &mut Vec<Value>) {
    let Some(items) = repo.trees.get(sha) else {
        return;
    };
    for item in items {
        let path = format!("{prefix}{}", item.name);
        let mut entry = json!({ "path": path, "mode": if item.kind == "tree" { "040000" } else { "100644" }, "type": item.kind, "sha": item.sha });
        if item.kind == "blob" {
            entry["size"] = json!(repo.blob_bytes(&item.sha).map(|b| b.len()).unwrap_or(0));
        }
        out.push(entry);
        if recursive && item.kind == "tree" {
            list_tree(repo, &item.sha, &format!("{path}/"), true, out);
        }
    }
}

/// GitHub's date qualifier for `created` (its search syntax): `>=A`, `>A`, `<=B`, `<B`, `A..B`, `A`
/// (that day), as Unix seconds `[from, to]`, both inclusive.
fn created_range(text: &str) -> Option<(i64, i64)> {
    use upm_github::deliveries::parse_rfc3339_utc as parse;
    let day = |d: &str| {
        if d.len() == 10 {
            parse(&format!("{d}T00:00:00Z"))
        } else {
            parse(d)
        }
    };
    if let Some((a, b)) = text.split_once("..") {
        let from = if a == "*" { i64::MIN } else { day(a)? };
        let to = if b == "*" {
            i64::MAX
        } else if b.len() == 10 {
            day(b)? + 86_399
        } else {
            day(b)?
        };
        return Some((from, to));
    }
    if let Some(d) = text.strip_prefix(">=") {
        return Some((day(d)?, i64::MAX));
    }
    if let Some(d) = text.strip_prefix("<=") {
        return Some((i64::MIN, day(d)?));
    }
    if let Some(d) = text.strip_prefix('>') {
        return Some((day(d)? + 1, i64::MAX));
    }
    if let Some(d) = text.strip_prefix('<') {
        return Some((i64::MIN, day(d)? - 1));
    }
    let d = day(text)?;
    Some((d, if text.len() == 10 { d + 86_399 } else { d }))
}

/// GitHub: "This endpoint will return up to 1,000 results for each search when using the following
/// parameters: `actor`, `branch`, `check_suite_id`, `created`, `event`, `head_sha`, `status`."
pub const RUNS_SEARCH_CAP: usize = 1_000;

pub(crate) fn page_params(query: &str, cap: Option<usize>) -> (usize, usize) {
    let per_page = query_param(query, "per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(30usize)
        .clamp(1, 100)
        .min(cap.unwrap_or(100));
    let page = query_param(query, "page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1usize)
        .max(1);
    (per_page, page)
}

/// One page of `items` and, when more follow, GitHub's `Link: <…&page=N+1>; rel="next"` (relative
/// here; the server makes it absolute).
pub(crate) fn paged(
    path: &str,
    query: &str,
    items: Vec<Value>,
    per_page: usize,
    page: usize,
    wrap: impl FnOnce(Vec<Value>) -> Value,
) -> Response {
    let total = items.len();
    let start = (page - 1).saturating_mul(per_page);
    let slice: Vec<Value> = items.into_iter().skip(start).take(per_page).collect();
    let mut response = Response::json(200, wrap(slice));
    if start + per_page < total {
        let kept: Vec<&str> = query
            .split('&')
            .filter(|p| !p.is_empty() && !p.starts_with("page=") && !p.starts_with("per_page="))
            .collect();
        let mut next = format!("{path}?per_page={per_page}&page={}", page + 1);
        for p in kept {
            next.push('&');
            next.push_str(p);
        }
        response = response.header("link", format!("<{next}>; rel=\"next\""));
    }
    response
}

fn workflow_runs(repo: &Repo, workflow: Option<&str>, query: &str) -> Response {
    let created = query_param(query, "created");
    let range = match created.as_deref().map(created_range) {
        Some(None) => return Response::error(422, "Invalid created date"),
        Some(Some(range)) => Some(range),
        None => None,
    };
    let status = query_param(query, "status");
    let head_sha = query_param(query, "head_sha");
    let event = query_param(query, "event");
    let mut runs: Vec<&crate::state::WorkflowRun> = repo
        .workflow_runs
        .iter()
        .filter(|r| workflow.is_none_or(|w| r.workflow == w))
        // `status` takes a status or a conclusion; `head_sha` and `event` match exactly.
        .filter(|r| {
            status
                .as_deref()
                .is_none_or(|s| r.status == s || r.conclusion.as_deref() == Some(s))
        })
        .filter(|r| head_sha.as_deref().is_none_or(|s| r.head_sha == s))
        .filter(|r| event.as_deref().is_none_or(|e| r.event == e))
        .filter(|r| match range {
            Some((from, to)) => upm_github::deliveries::parse_rfc3339_utc(&r.created_at)
                .is_some_and(|t| t >= from && t <= to),
            None => true,
        })
        .collect();
    runs.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    let total = runs.len();
    let capped = [
        "actor",
        "branch",
        "check_suite_id",
        "created",
        "event",
        "head_sha",
        "status",
    ]
    .iter()
    .any(|p| query_param(query, p).is_some());
    if capped {
        runs.truncate(RUNS_SEARCH_CAP);
    }
    let list: Vec<Value> = runs.iter().map(|r| run_json(repo, r)).collect();
    let (per_page, page) = page_params(query, None);
    let path = match workflow {
        Some(w) => format!("/repos/{}/actions/workflows/{w}/runs", repo.full_name),
        None => format!("/repos/{}/actions/runs", repo.full_name),
    };
    paged(
        &path,
        query,
        list,
        per_page,
        page,
        |items| json!({ "total_count": total, "workflow_runs": items }),
    )
}

fn find_run<'a>(repo: &'a Repo, id: &str) -> Option<&'a crate::state::WorkflowRun> {
    repo.workflow_runs.iter().find(|r| r.id.to_string() == id)
}

fn run_json(repo: &Repo, r: &crate::state::WorkflowRun) -> Value {
    let base = format!(
        "https://api.github.com/repos/{}/actions/runs/{}",
        repo.full_name, r.id
    );
    json!({
        "id": r.id, "name": r.workflow, "display_title": r.display_title, "event": r.event,
        "status": r.status, "conclusion": r.conclusion, "created_at": r.created_at,
        "updated_at": r.updated_at.clone().unwrap_or_else(|| r.created_at.clone()),
        "run_started_at": r.run_started_at.clone().unwrap_or_else(|| r.created_at.clone()),
        "run_attempt": r.run_attempt.unwrap_or(1), "head_sha": r.head_sha, "head_branch": r.head_branch,
        "head_repository": { "full_name": repo.full_name },
        "path": format!(".github/workflows/{}", r.workflow),
        "html_url": format!("https://github.com/{}/actions/runs/{}", repo.full_name, r.id),
        "jobs_url": format!("{base}/jobs"), "artifacts_url": format!("{base}/artifacts"),
    })
}

fn job_json(repo: &Repo, run: &crate::state::WorkflowRun, j: &crate::state::Job) -> Value {
    let steps: Vec<Value> = j
        .steps
        .iter()
        .map(|s| json!({ "name": s.name, "number": s.number, "status": s.status, "conclusion": s.conclusion, "started_at": s.started_at, "completed_at": s.completed_at }))
        .collect();
    json!({
        "id": j.id, "run_id": run.id, "run_attempt": run.run_attempt.unwrap_or(1), "name": j.name,
        "workflow_name": run.workflow, "status": j.status, "conclusion": j.conclusion,
        "created_at": j.created_at, "started_at": j.started_at, "completed_at": j.completed_at,
        "runner_name": j.runner_name, "labels": j.labels, "steps": steps,
        "html_url": format!("https://github.com/{}/actions/runs/{}/job/{}", repo.full_name, run.id, j.id),
    })
}

fn artifact_json(
    repo: &Repo,
    run: &crate::state::WorkflowRun,
    a: &crate::state::Artifact,
) -> Value {
    let size: usize = a.files.values().map(String::len).sum();
    json!({
        "id": a.id, "name": a.name, "size_in_bytes": size, "expired": a.expired,
        "created_at": a.created_at,
        "archive_download_url": format!("https://api.github.com/repos/{}/actions/artifacts/{}/zip", repo.full_name, a.id),
        "workflow_run": { "id": run.id, "head_sha": run.head_sha },
    })
}

fn commit_json(repo: &Repo, sha: &str) -> Value {
    let commit = &repo.commits[sha];
    let person = |date: &Option<String>| json!({ "name": "fixture", "email": "fixture@example.com", "date": date });
    json!({
        "sha": sha,
        "commit": { "message": commit.message, "tree": { "sha": commit.tree }, "author": person(&commit.date), "committer": person(&commit.date) },
        "parents": parents_json(commit),
        "html_url": format!("https://github.com/{}/commit/{sha}", repo.full_name),
    })
}

/// `GET …/commits`: newest first from `sha` (a branch or a commit; the default branch without it),
/// following first parents; `path` keeps the commits that changed that file, `since`/`until` filter on
/// the commit date.
fn list_commits(repo: &Repo, query: &str) -> Response {
    use upm_github::deliveries::parse_rfc3339_utc as parse;
    let start = query_param(query, "sha").unwrap_or_else(|| repo.default_branch.clone());
    let Some(mut current) = repo.resolve(&start) else {
        return not_found();
    };
    let path = query_param(query, "path");
    let since = query_param(query, "since").and_then(|d| parse(&d));
    let until = query_param(query, "until").and_then(|d| parse(&d));
    let mut list = Vec::new();
    loop {
        let commit = &repo.commits[&current];
        let parent = commit.parents.first().cloned();
        let touched = path.as_deref().is_none_or(|p| {
            let before = parent
                .as_ref()
                .and_then(|q| repo.commits.get(q))
                .and_then(|c| c.files.get(p));
            commit.files.get(p) != before
        });
        let date = commit.date.as_deref().and_then(parse);
        let in_window = (since.is_none() && until.is_none())
            || date.is_some_and(|d| since.is_none_or(|s| d >= s) && until.is_none_or(|u| d <= u));
        if touched && in_window {
            list.push(commit_json(repo, &current));
        }
        match parent {
            Some(p) if repo.commits.contains_key(&p) => current = p,
            _ => break,
        }
    }
    let (per_page, page) = page_params(query, None);
    paged(
        &format!("/repos/{}/commits", repo.full_name),
        query,
        list,
        per_page,
        page,
        Value::Array,
    )
}
