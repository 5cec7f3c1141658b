//! `GET /health`, answered from the isolate's memory (no KV read, no GitHub request), because monitors
//! poll it. Anyone learns `status` and `version`; the details need `Authorization: Bearer
//! <HEALTH_TOKEN>`.

use serde_json::json;

use crate::config::Config;
use crate::isolate::IsolateMemory;
use crate::model::RepoName;
use crate::respond::Reply;

/// The answer to `GET /health` at `now_ms`, for a request with this `Authorization` header.
pub fn reply(
    config: &Config,
    memory: &IsolateMemory,
    now_ms: u64,
    authorization: Option<&str>,
) -> Reply {
    let copy = memory.registry.borrow().clone();
    let failure = memory.registry_failure.borrow().clone();
    let stale = copy
        .as_ref()
        .is_some_and(|c| c.age_ms(now_ms) > config.registry_max_stale_ms);
    let status = if !config.problems.is_empty() {
        "misconfigured"
    } else if stale {
        "stale"
    } else {
        "ok"
    };
    let body = if health_authorized(config.health_token.as_deref(), authorization) {
        json!({
            "status": status,
            "service": "upm-relay",
            "version": env!("CARGO_PKG_VERSION"),
            "dispatch_repo": config.dispatch_repo.as_ref().map(RepoName::as_str),
            "dry_run": config.dry_run,
            "registry": copy.map(|copy| json!({
                "entries": copy.registry.len(),
                "age_seconds": copy.age_ms(now_ms) / 1000,
                "tier": "memory",
            })),
            "registry_error": failure.map(|f| f.public),
            "problems": config.problems,
        })
    } else {
        json!({ "status": status, "version": env!("CARGO_PKG_VERSION") })
    };
    Reply {
        status: 200,
        // Monitors and proxies must not serve an old answer.
        headers: vec![("Cache-Control", "no-store".to_string())],
        body: body.to_string(),
        log: None,
        after_response: Vec::new(),
    }
}

/// `Authorization: Bearer <token>` against HEALTH_TOKEN, compared in constant time.
fn health_authorized(token: Option<&str>, authorization: Option<&str>) -> bool {
    let (Some(token), Some(presented)) = (token, authorization) else {
        return false;
    };
    let Some(presented) = presented.trim().strip_prefix("Bearer ") else {
        return false;
    };
    let (a, b) = (token.as_bytes(), presented.trim().as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
