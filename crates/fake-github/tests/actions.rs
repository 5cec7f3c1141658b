//! The Actions endpoints the worker's watchdog uses, with GitHub's documented shapes and refusals
//! (REST "Workflow runs", "Workflow jobs", "Workflows", "Self-hosted runners").

use serde_json::{json, Value};
mod common;

use common::call;
use upm_fake_github::state::{SelfHostedRunner, State, Workflow};

fn world() -> State {
    let mut state = State::default();
    let repo = state.add_repo("Studio/Central", "main");
    repo.workflows = vec![
        Workflow {
            id: 11,
            name: "Reconcile".into(),
            path: ".github/workflows/reconcile.yml".into(),
            state: "disabled_inactivity".into(),
        },
        Workflow {
            id: 12,
            name: "Handle publish request".into(),
            path: ".github/workflows/handle-publish-request.yml".into(),
            state: "active".into(),
        },
    ];
    state.runners = vec![
        SelfHostedRunner {
            id: 1,
            name: "org-1".into(),
            status: "offline".into(),
            labels: vec!["self-hosted".into(), "gpu".into()],
            org: Some("Studio".into()),
            ..Default::default()
        },
        SelfHostedRunner {
            id: 2,
            name: "repo-1".into(),
            status: "online".into(),
            busy: true,
            labels: vec!["self-hosted".into()],
            repo: Some("Studio/Central".into()),
            ..Default::default()
        },
    ];
    state
}

#[test]
fn queued_runs_their_jobs_and_cancelling_them() {
    let mut state = world();
    let (status, created) = call(
        &mut state,
        "POST",
        "/_fake/repos/Studio/Central/runs",
        json!({
        "workflow": "handle-publish-request.yml", "display_title": "publish Studio/game @ abc (delivery d)",
        "event": "repository_dispatch", "labels": ["self-hosted", "linux"], "created_at": "2026-01-01T00:00:00Z" }),
    );
    assert_eq!(status, 201);
    let id = created["id"].as_u64().unwrap();
    let (_, listed) = call(&mut state, "GET", "/repos/Studio/Central/actions/workflows/handle-publish-request.yml/runs?status=queued&per_page=100", Value::Null);
    assert_eq!(listed["workflow_runs"][0]["id"], id);
    assert_eq!(listed["workflow_runs"][0]["status"], "queued");
    let (_, jobs) = call(
        &mut state,
        "GET",
        &format!("/repos/Studio/Central/actions/runs/{id}/jobs"),
        Value::Null,
    );
    assert_eq!(jobs["jobs"][0]["labels"], json!(["self-hosted", "linux"]));
    assert_eq!(jobs["jobs"][0]["runner_name"], Value::Null);
    assert_eq!(
        call(
            &mut state,
            "POST",
            &format!("/repos/Studio/Central/actions/runs/{id}/cancel"),
            Value::Null
        )
        .0,
        202
    );
    let (_, after) = call(
        &mut state,
        "GET",
        "/repos/Studio/Central/actions/workflows/handle-publish-request.yml/runs?status=queued",
        Value::Null,
    );
    assert_eq!(after["total_count"], 0);
    let (_, cancelled) = call(
        &mut state,
        "GET",
        "/repos/Studio/Central/actions/workflows/handle-publish-request.yml/runs?status=cancelled",
        Value::Null,
    );
    assert_eq!(
        cancelled["total_count"], 1,
        "status filters by conclusion too"
    );
    let (status, refused) = call(
        &mut state,
        "POST",
        &format!("/repos/Studio/Central/actions/runs/{id}/cancel"),
        Value::Null,
    );
    assert_eq!(
        (status, refused["message"].as_str()),
        (409, Some("Cannot cancel a workflow run that is completed."))
    );
    // A runner takes a run: the runner side reports it.
    let (_, second) = call(
        &mut state,
        "POST",
        "/_fake/repos/Studio/Central/runs",
        json!({ "workflow": "handle-publish-request.yml", "labels": ["self-hosted"] }),
    );
    let second = second["id"].as_u64().unwrap();
    assert_eq!(
        call(
            &mut state,
            "PATCH",
            &format!("/_fake/repos/Studio/Central/runs/{second}"),
            json!({ "status": "in_progress", "runner_name": "repo-1" })
        )
        .0,
        204
    );
    let (_, jobs) = call(
        &mut state,
        "GET",
        &format!("/repos/Studio/Central/actions/runs/{second}/jobs"),
        Value::Null,
    );
    assert_eq!(
        (
            jobs["jobs"][0]["status"].as_str(),
            jobs["jobs"][0]["runner_name"].as_str()
        ),
        (Some("in_progress"), Some("repo-1"))
    );
    assert_eq!(
        call(
            &mut state,
            "PATCH",
            &format!("/_fake/repos/Studio/Central/runs/{second}"),
            json!({ "id": 3 })
        )
        .0,
        400
    );
}

#[test]
fn runners_are_listed_where_they_are_registered_labels_as_objects() {
    let mut state = world();
    let (_, repo) = call(
        &mut state,
        "GET",
        "/repos/Studio/Central/actions/runners?per_page=100",
        Value::Null,
    );
    assert_eq!(repo["total_count"], 1);
    assert_eq!(repo["runners"][0]["status"], "online");
    assert_eq!(repo["runners"][0]["busy"], true);
    assert_eq!(
        repo["runners"][0]["labels"][0],
        json!({ "id": 1, "name": "self-hosted", "type": "read-only" })
    );
    let (_, org) = call(
        &mut state,
        "GET",
        "/orgs/studio/actions/runners",
        Value::Null,
    );
    assert_eq!(org["runners"][0]["name"], "org-1");
    assert_eq!(org["runners"][0]["labels"][1]["type"], "custom");
    assert_eq!(
        call(
            &mut state,
            "GET",
            "/repos/Studio/Nope/actions/runners",
            Value::Null
        )
        .0,
        404
    );
}

#[test]
fn workflows_are_listed_enabled_and_dispatched_like_github() {
    let mut state = world();
    let (_, listed) = call(
        &mut state,
        "GET",
        "/repos/Studio/Central/actions/workflows?per_page=100",
        Value::Null,
    );
    assert_eq!(listed["workflows"][0]["state"], "disabled_inactivity");
    // A disabled workflow cannot be dispatched; `ref` is required and must exist.
    let dispatch = "/repos/Studio/Central/actions/workflows/reconcile.yml/dispatches";
    assert_eq!(
        call(&mut state, "POST", dispatch, json!({ "ref": "main" })).0,
        422
    );
    assert_eq!(
        call(
            &mut state,
            "PUT",
            "/repos/Studio/Central/actions/workflows/11/enable",
            Value::Null
        )
        .0,
        204
    );
    assert_eq!(call(&mut state, "POST", dispatch, json!({})).0, 422);
    assert_eq!(
        call(&mut state, "POST", dispatch, json!({ "ref": "nope" })).0,
        422
    );
    assert_eq!(
        call(&mut state, "POST", dispatch, json!({ "ref": "main" })).0,
        204
    );
    assert_eq!(
        call(
            &mut state,
            "POST",
            "/repos/Studio/Central/actions/workflows/missing.yml/dispatches",
            json!({ "ref": "main" })
        )
        .0,
        404
    );
    assert_eq!(state.workflow_dispatches.len(), 1);
    assert_eq!(state.workflow_dispatches[0].workflow, "reconcile.yml");
    // The dispatch created the run GitHub would: the newest reconcile run, queued.
    let (_, latest) = call(
        &mut state,
        "GET",
        "/repos/Studio/Central/actions/workflows/reconcile.yml/runs?per_page=1",
        Value::Null,
    );
    assert_eq!(latest["workflow_runs"][0]["event"], "workflow_dispatch");
    assert_eq!(
        latest["workflow_runs"][0]["id"],
        state.workflow_dispatches[0].run_id
    );
    // A git snapshot of the repository keeps its Actions side.
    let snapshot =
        json!({ "full_name": "Studio/Central", "default_branch": "main", "branches": {} });
    assert_eq!(call(&mut state, "PUT", "/_fake/repos", snapshot).0, 204);
    let repo = state.repo("Studio/Central").unwrap();
    assert_eq!((repo.workflows.len(), repo.workflow_runs.len()), (2, 1));
}
