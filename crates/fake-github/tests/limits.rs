//! GitHub's documented limits the fake holds, so a client that ignores them fails a test.

mod common;

use common::{call, call_with_headers, next_link};
use serde_json::{json, Value};
use upm_fake_github::state::{Delivery, Pull, State};

#[test]
fn pulls_are_paged_with_a_link_to_the_next_page() {
    let mut state = State::default();
    let repo = state.add_repo("Studio/A", "main");
    for number in 1..=35 {
        repo.pulls.push(Pull {
            number,
            state: "open".into(),
            head: format!("b{number}"),
            base: "main".into(),
            ..Pull::default()
        });
    }
    // GitHub: "per_page … (max 100)", default 30.
    let (status, headers, first) =
        call_with_headers(&mut state, "GET", "/repos/Studio/A/pulls", Value::Null);
    assert_eq!((status, first.as_array().map(Vec::len)), (200, Some(30)));
    let next = next_link(&headers).expect("a Link to the second page");
    let (_, headers, second) = call_with_headers(&mut state, "GET", &next, Value::Null);
    assert_eq!(second.as_array().map(Vec::len), Some(5));
    assert_eq!(next_link(&headers), None, "the last page links nowhere");
    let (_, _, big) = call_with_headers(
        &mut state,
        "GET",
        "/repos/Studio/A/pulls?per_page=500",
        Value::Null,
    );
    assert_eq!(
        big.as_array().map(Vec::len),
        Some(35),
        "per_page is capped at 100"
    );
}

#[test]
fn a_redelivery_is_accepted_before_its_attempt_is_listed() {
    let mut state = State::default();
    state.hook_mut("Studio", 42).deliveries.push(Delivery {
        id: 7,
        guid: "guid-7".into(),
        status_code: 502,
        event: "push".into(),
        ..Delivery::default()
    });
    let listing = "/orgs/Studio/hooks/42/deliveries?per_page=100";
    let (status, _) = call(
        &mut state,
        "POST",
        "/orgs/Studio/hooks/42/deliveries/7/attempts",
        json!({}),
    );
    assert_eq!(status, 202);
    let ids = |listed: Value| -> Vec<u64> {
        listed
            .as_array()
            .expect("a listing")
            .iter()
            .filter_map(|d| d["id"].as_u64())
            .collect()
    };
    let (_, right_after) = call(&mut state, "GET", listing, Value::Null);
    assert_eq!(ids(right_after), [7], "the new attempt is not listed yet");
    let (_, later) = call(&mut state, "GET", listing, Value::Null);
    let later = ids(later);
    assert_eq!(
        later.len(),
        2,
        "a later listing shows the attempt: {later:?}"
    );
    assert_eq!(state.redeliveries.len(), 1);
}

#[test]
fn variables_page_at_most_30_and_secrets_never_show_a_value() {
    let mut state = State::default();
    let repo = state.add_repo("Studio/Central", "main");
    for i in 0..40 {
        repo.variables
            .insert(format!("V{i:02}"), format!("value {i}"));
    }
    repo.secrets = vec!["NPM_TOKEN".into()];
    // GitHub, "List repository variables": "per_page … (max 30)".
    let (status, headers, page) = call_with_headers(
        &mut state,
        "GET",
        "/repos/Studio/Central/actions/variables?per_page=100",
        Value::Null,
    );
    assert_eq!(status, 200);
    assert_eq!(page["total_count"], 40);
    assert_eq!(page["variables"].as_array().map(Vec::len), Some(30));
    assert!(next_link(&headers).is_some());
    let (_, secrets) = call(
        &mut state,
        "GET",
        "/repos/Studio/Central/actions/secrets",
        Value::Null,
    );
    assert_eq!(secrets["secrets"][0]["name"], "NPM_TOKEN");
    assert!(secrets["secrets"][0].get("value").is_none());
    let (missing, _) = call(
        &mut state,
        "GET",
        "/repos/Studio/Central/environments/nope/secrets",
        Value::Null,
    );
    assert_eq!(missing, 404, "an environment that does not exist");
}
