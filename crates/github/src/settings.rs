//! settings: what a deployment depends on, read-only — the organization webhook's configuration, Actions
//! variables and secret names (repository, environment, organization), the App's installation, the
//! self-hosted runners and the workflows. `upm doctor` reads them; nothing here writes.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::api::repo_path;
use crate::client::{segment, GitHub};
use crate::error::Result;

/// `GET /orgs/{org}/hooks/{hook_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct OrgHook {
    pub id: u64,
    pub active: bool,
    #[serde(default)]
    pub events: Vec<String>,
    pub config: HookConfig,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct HookConfig {
    #[serde(default)]
    pub url: Option<String>,
    /// `json` or `form`.
    #[serde(default)]
    pub content_type: Option<String>,
    /// GitHub sends `"0"` or `"1"` (a string; older hooks a number).
    #[serde(default)]
    pub insecure_ssl: Option<serde_json::Value>,
}

/// A secret's name (GitHub never returns its value) or a variable, with an organization item's reach.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Item {
    pub name: String,
    /// Organization items only: `all`, `private` or `selected`.
    #[serde(default)]
    pub visibility: Option<String>,
}

/// The App's installation (`GET /orgs/{org}/installation`, `GET /repos/{o}/{r}/installation`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Installation {
    pub id: u64,
    /// `all` or `selected`.
    #[serde(default)]
    pub repository_selection: Option<String>,
    /// Permission name → `read`, `write` or `admin`.
    #[serde(default)]
    pub permissions: std::collections::BTreeMap<String, String>,
}

/// An organization's self-hosted runner group (`GET /orgs/{org}/actions/runner-groups`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct RunnerGroup {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub allows_public_repositories: bool,
    #[serde(default)]
    pub restricted_to_workflows: bool,
    /// `owner/repo/.github/workflows/file.yml@ref`.
    #[serde(default)]
    pub selected_workflows: Vec<String>,
}

#[derive(Deserialize)]
struct Repositories {
    repositories: Vec<Named>,
}

#[derive(Deserialize)]
struct Named {
    full_name: String,
}

impl GitHub {
    pub fn org_hook(&self, org: &str, hook_id: u64) -> Result<Option<OrgHook>> {
        self.get_optional(&format!("/orgs/{}/hooks/{hook_id}", segment(org)))
    }

    /// The repository's Actions variables or secret names (`kind`: `variables` or `secrets`).
    pub fn repo_items(&self, full_name: &str, kind: &str) -> Result<Vec<Item>> {
        self.items(
            &format!("/repos/{}/actions/{kind}", repo_path(full_name)),
            kind,
        )
    }

    /// An environment's variables or secret names; `None` when the environment does not exist.
    pub fn environment_items(
        &self,
        full_name: &str,
        environment: &str,
        kind: &str,
    ) -> Result<Option<Vec<Item>>> {
        let path = format!(
            "/repos/{}/environments/{}/{kind}",
            repo_path(full_name),
            segment(environment)
        );
        match self.items(&path, kind) {
            Ok(items) => Ok(Some(items)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The organization's variables or secret names, with their visibility.
    pub fn org_items(&self, org: &str, kind: &str) -> Result<Vec<Item>> {
        self.items(&format!("/orgs/{}/actions/{kind}", segment(org)), kind)
    }

    /// The repositories an organization item with visibility `selected` reaches.
    pub fn org_item_repositories(&self, org: &str, kind: &str, name: &str) -> Result<Vec<String>> {
        let answer: Repositories = self.get(&format!(
            "/orgs/{}/actions/{kind}/{}/repositories?per_page=100",
            segment(org),
            segment(name)
        ))?;
        Ok(answer
            .repositories
            .into_iter()
            .map(|r| r.full_name)
            .collect())
    }

    /// One repository variable's value; `None` when it is not set.
    pub fn repo_variable(&self, full_name: &str, name: &str) -> Result<Option<String>> {
        #[derive(Deserialize)]
        struct Variable {
            value: String,
        }
        Ok(self
            .get_optional::<Variable>(&format!(
                "/repos/{}/actions/variables/{}",
                repo_path(full_name),
                segment(name)
            ))?
            .map(|v| v.value))
    }

    /// The App's installation for an organization, asked as the App itself (a JWT); `Ok(None)` when
    /// the credentials are not an App's or it is not installed there.
    pub fn org_installation(&self, org: &str) -> Result<Option<Installation>> {
        self.app_get_optional(&format!("/orgs/{}/installation", segment(org)))
    }

    /// The installation that reaches a repository; `Ok(None)` when none does (GitHub answers 404 for a
    /// repository the installation does not include, and for one that does not exist).
    pub fn repo_installation(&self, full_name: &str) -> Result<Option<Installation>> {
        self.app_get_optional(&format!("/repos/{}/installation", repo_path(full_name)))
    }

    /// The organization's runner groups that `repository` (a name in `org`) may use, by GitHub's own
    /// `visible_to_repository` filter (its repository access; public repositories are a separate
    /// switch, `allows_public_repositories`).
    pub fn runner_groups_for(&self, org: &str, repository: &str) -> Result<Vec<RunnerGroup>> {
        self.listing(
            &format!(
                "/orgs/{}/actions/runner-groups?visible_to_repository={}",
                segment(org),
                segment(repository)
            ),
            "runner_groups",
        )
    }

    /// Every item of a `{"total_count", "<field>": [...]}` listing (variables page at most 30).
    pub fn listing<T: DeserializeOwned>(&self, path: &str, field: &str) -> Result<Vec<T>> {
        let per_page = if field == "variables" { 30 } else { 100 };
        let separator = if path.contains('?') { '&' } else { '?' };
        self.get_all(
            &format!("{path}{separator}per_page={per_page}"),
            Some(field),
            10_000,
        )
    }

    fn items(&self, path: &str, kind: &str) -> Result<Vec<Item>> {
        self.listing(path, kind)
    }
}
