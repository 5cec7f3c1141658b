//! The settings a deployment depends on, read-only, as GitHub's REST API answers them: the organization
//! webhook's configuration ("Get an organization webhook"), Actions variables and secret names of a
//! repository, its environments and its organization ("Actions / Variables", "Actions / Secrets").
//! Secrets are names only: GitHub never returns a secret's value.

use serde_json::{json, Value};

use crate::routes::{
    not_found, org_runners, page_params, paged, query_param, runners_json, Response,
};
use crate::state::{OrgItem, Repo, RunnerGroup, SelfHostedRunner, State};

/// Whether `segs` is one of the endpoints this module answers (GET only).
pub fn serves(segs: &[&str]) -> bool {
    matches!(
        segs,
        ["orgs", _, "hooks", _]
            | ["orgs", _, "actions", "secrets" | "variables"]
            | [
                "orgs",
                _,
                "actions",
                "secrets" | "variables",
                _,
                "repositories"
            ]
            | ["orgs", _, "actions", "runner-groups"]
            | ["orgs", _, "actions", "runner-groups", _, "runners"]
            | ["repos", _, _, "actions", "secrets" | "variables"]
            | ["repos", _, _, "actions", "variables", _]
            | ["repos", _, _, "environments", _, "secrets" | "variables"]
    )
}

/// GitHub: "per_page: The number of results per page (max 30)" for variables, max 100 for secrets.
const VARIABLES_PAGE_MAX: usize = 30;

pub fn route(state: &State, segs: &[&str], query: &str) -> Response {
    let path = format!("/{}", segs.join("/"));
    match segs {
        ["orgs", org, "hooks", id] => {
            let Some(hook) = state
                .hooks
                .iter()
                .find(|h| h.org.eq_ignore_ascii_case(org) && h.id.to_string() == *id)
            else {
                return not_found();
            };
            let c = &hook.config;
            Response::json(
                200,
                json!({ "type": "Organization", "id": hook.id, "name": "web", "active": c.active,
                    "events": c.events,
                    "config": { "url": c.url, "content_type": c.content_type, "insecure_ssl": c.insecure_ssl },
                    "deliveries_url": format!("https://api.github.com/orgs/{org}/hooks/{id}/deliveries") }),
            )
        }
        ["orgs", org, "actions", kind @ ("secrets" | "variables")] => {
            let Some(found) = state
                .orgs
                .iter()
                .find(|o| o.login.eq_ignore_ascii_case(org))
            else {
                return listing(kind, &path, query, Vec::new());
            };
            let items = if *kind == "secrets" {
                &found.secrets
            } else {
                &found.variables
            };
            let list = items
                .iter()
                .map(|item| org_item_json(org, kind, item))
                .collect();
            listing(kind, &path, query, list)
        }
        ["orgs", org, "actions", kind @ ("secrets" | "variables"), name, "repositories"] => {
            let item = state
                .orgs
                .iter()
                .find(|o| o.login.eq_ignore_ascii_case(org))
                .and_then(|o| {
                    let items = if *kind == "secrets" {
                        &o.secrets
                    } else {
                        &o.variables
                    };
                    items.iter().find(|i| i.name == *name)
                });
            match item {
                // GitHub: 409 when the item's visibility is not `selected`.
                Some(item) if item.visibility != "selected" => {
                    Response::error(409, "Secret/variable visibility is not set to selected")
                }
                Some(item) => {
                    let repositories: Vec<Value> = item
                        .selected
                        .iter()
                        .filter_map(|full| state.repo(full))
                        .map(|r| json!({ "id": r.id, "full_name": r.full_name, "private": r.private }))
                        .collect();
                    Response::json(
                        200,
                        json!({ "total_count": repositories.len(), "repositories": repositories }),
                    )
                }
                None => not_found(),
            }
        }
        ["repos", owner, name, "actions", kind @ ("secrets" | "variables")] => {
            let Some(repo) = state.repo(&format!("{owner}/{name}")) else {
                return not_found();
            };
            listing(kind, &path, query, repo_items(repo, kind, None))
        }
        ["repos", owner, name, "actions", "variables", variable] => {
            let Some(repo) = state.repo(&format!("{owner}/{name}")) else {
                return not_found();
            };
            match repo.variables.get(*variable) {
                Some(value) => Response::json(200, variable_json(variable, value)),
                None => not_found(),
            }
        }
        ["repos", owner, name, "environments", environment, kind @ ("secrets" | "variables")] => {
            let Some(repo) = state.repo(&format!("{owner}/{name}")) else {
                return not_found();
            };
            if !repo.environments.contains_key(*environment) {
                return not_found();
            }
            listing(
                kind,
                &path,
                query,
                repo_items(repo, kind, Some(environment)),
            )
        }
        ["orgs", org, "actions", "runner-groups"] => {
            // "visible_to_repository: Only return runner groups that are allowed to be used by this
            // repository" (a repository name of the organization).
            let visible_to = query_param(query, "visible_to_repository");
            let list: Vec<Value> = runner_groups(state, org)
                .into_iter()
                .filter(|g| match &visible_to {
                    None => true,
                    Some(name) => state
                        .repo(&format!("{org}/{name}"))
                        .is_some_and(|repo| group_serves(g, &repo.full_name, repo.private)),
                })
                .map(|g| runner_group_json(org, &g))
                .collect();
            Response::json(
                200,
                json!({ "total_count": list.len(), "runner_groups": list }),
            )
        }
        ["orgs", org, "actions", "runner-groups", id, "runners"] => {
            let groups = runner_groups(state, org);
            let Some(group) = groups.iter().find(|g| g.id.to_string() == *id) else {
                return not_found();
            };
            let default_id = groups.iter().find(|g| g.default).map(|g| g.id);
            let runners: Vec<&SelfHostedRunner> = org_runners(state, org)
                .into_iter()
                .filter(|r| r.runner_group_id.or(default_id) == Some(group.id))
                .collect();
            runners_json(&runners)
        }
        _ => not_found(),
    }
}

/// The organization's groups. Every organization has a default group ("Default", id 1, every
/// repository, public ones not allowed) unless the state sets its own default.
fn runner_groups(state: &State, org: &str) -> Vec<RunnerGroup> {
    let mut groups: Vec<RunnerGroup> = state
        .runner_groups
        .iter()
        .filter(|g| g.org.eq_ignore_ascii_case(org))
        .cloned()
        .collect();
    if !groups.iter().any(|g| g.default) {
        groups.insert(
            0,
            RunnerGroup {
                id: 1,
                org: org.to_string(),
                name: "Default".into(),
                default: true,
                visibility: "all".into(),
                ..RunnerGroup::default()
            },
        );
    }
    groups
}

/// Whether a group's repository access lets `full_name` use it (visibility only; whether a public
/// repository may is `allows_public_repositories`, which GitHub reports beside it).
fn group_serves(group: &RunnerGroup, full_name: &str, private: bool) -> bool {
    match group.visibility.as_str() {
        "all" => true,
        "private" => private,
        "selected" => group
            .selected
            .iter()
            .any(|r| r.eq_ignore_ascii_case(full_name)),
        _ => false,
    }
}

fn runner_group_json(org: &str, g: &RunnerGroup) -> Value {
    json!({ "id": g.id, "name": g.name, "visibility": g.visibility, "default": g.default,
        "runners_url": format!("https://api.github.com/orgs/{org}/actions/runner-groups/{}/runners", g.id),
        "inherited": false, "allows_public_repositories": g.allows_public_repositories,
        "restricted_to_workflows": g.restricted_to_workflows, "selected_workflows": g.selected_workflows,
        "workflow_restrictions_read_only": false })
}

fn repo_items(repo: &Repo, kind: &str, environment: Option<&str>) -> Vec<Value> {
    let (secrets, variables) = match environment {
        Some(name) => {
            let environment = &repo.environments[name];
            (&environment.secrets, &environment.variables)
        }
        None => (&repo.secrets, &repo.variables),
    };
    if kind == "secrets" {
        secrets.iter().map(|name| secret_json(name)).collect()
    } else {
        variables
            .iter()
            .map(|(name, value)| variable_json(name, value))
            .collect()
    }
}

/// `{"total_count": N, "secrets"|"variables": [page]}`, paged like GitHub.
fn listing(kind: &str, path: &str, query: &str, items: Vec<Value>) -> Response {
    let cap = (kind == "variables").then_some(VARIABLES_PAGE_MAX);
    let (per_page, page) = page_params(query, cap);
    let total = items.len();
    let kind = kind.to_string();
    paged(
        path,
        query,
        items,
        per_page,
        page,
        move |page| json!({ "total_count": total, kind: page }),
    )
}

const STAMP: &str = "2026-01-01T00:00:00Z";

fn secret_json(name: &str) -> Value {
    json!({ "name": name, "created_at": STAMP, "updated_at": STAMP })
}

fn variable_json(name: &str, value: &str) -> Value {
    json!({ "name": name, "value": value, "created_at": STAMP, "updated_at": STAMP })
}

fn org_item_json(org: &str, kind: &str, item: &OrgItem) -> Value {
    let mut value = if kind == "secrets" {
        secret_json(&item.name)
    } else {
        variable_json(&item.name, &item.value)
    };
    value["visibility"] = json!(item.visibility);
    if item.visibility == "selected" {
        value["selected_repositories_url"] = json!(format!(
            "https://api.github.com/orgs/{org}/actions/{kind}/{}/repositories",
            item.name
        ));
    }
    value
}
