//! The settings a deployment depends on, read-only, as GitHub's REST API answers them: the organization
//! webhook's configuration ("Get an organization webhook"), Actions variables and secret names of a
//! repository, its environments and its organization ("Actions / Variables", "Actions / Secrets").
//! Secrets are names only: GitHub never returns a secret's value.

use serde_json::{json, Value};

use crate::routes::{not_found, page_params, paged, Response};
use crate::state::{OrgItem, Repo, State};

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
        _ => not_found(),
    }
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
