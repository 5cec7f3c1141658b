//! What the fake's endpoint tests share: one request through the router, as the server would route it.
//! Each test crate uses a part of it.
#![allow(dead_code)]

use serde_json::Value;
use upm_fake_github::routes::{handle, Request, Response};
use upm_fake_github::state::State;

pub const NOW: i64 = 1_800_000_000;

/// `path_and_query` as a client sends it; the answer's status and JSON body (`Null` when not JSON).
pub fn call(state: &mut State, method: &str, path_and_query: &str, body: Value) -> (u16, Value) {
    let (status, _, body) = call_with_headers(state, method, path_and_query, body);
    (status, body)
}

/// [`call`], with the answer's headers.
pub fn call_with_headers(
    state: &mut State,
    method: &str,
    path_and_query: &str,
    body: Value,
) -> (u16, Vec<(String, String)>, Value) {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let request = Request {
        method: method.into(),
        path: path.into(),
        query: query.into(),
        authorization: None,
        if_none_match: None,
        accept: None,
        body: if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        },
    };
    let Response {
        status,
        headers,
        body,
        ..
    } = handle(state, &request, NOW);
    (
        status,
        headers,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

/// The `Link` header's `rel="next"` target, if any.
pub fn next_link(headers: &[(String, String)]) -> Option<String> {
    let link = headers.iter().find(|(name, _)| name == "link")?.1.clone();
    let start = link.find('<')? + 1;
    let end = link.find('>')?;
    link.contains("rel=\"next\"")
        .then(|| link[start..end].to_string())
}
