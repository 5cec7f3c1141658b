//! npm: the registry's own record of a version — whether it is there and when it was published (the
//! packument's `time[version]`, which Verdaccio and npm write at publish time).

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

/// The part of a packument we read.
#[derive(Debug, Clone, Deserialize)]
pub struct Packument {
    #[serde(default)]
    pub versions: serde_json::Map<String, serde_json::Value>,
    /// `version` → RFC 3339 publish time (plus `created` and `modified`).
    #[serde(default)]
    pub time: BTreeMap<String, String>,
    #[serde(default, rename = "dist-tags")]
    pub dist_tags: BTreeMap<String, String>,
}

impl Packument {
    /// The `latest` dist-tag, `-` without one.
    pub fn latest(&self) -> String {
        self.dist_tags
            .get("latest")
            .cloned()
            .unwrap_or_else(|| "-".into())
    }
}

/// What the registry says about one version.
#[derive(Debug, Clone, PartialEq)]
pub enum Version {
    /// Published; `at` is its publish time (Unix seconds) when the packument records one.
    Published {
        at: Option<i64>,
    },
    Missing,
    Unknown(String),
}

/// Registry reads, one per package name per process; after the registry fails to answer once, every
/// later read reports that one failure instead of waiting for it again (offline: one message).
pub struct Registry {
    base: String,
    agent: ureq::Agent,
    token: Option<String>,
    packuments: HashMap<String, Result<Option<Packument>, String>>,
    down: Option<String>,
    /// Requests sent (for the cost report).
    pub requests: u64,
}

impl Registry {
    pub fn new(base: &str) -> Registry {
        Registry {
            base: base.trim().trim_end_matches('/').to_string(),
            agent: crate::http_agent(20),
            token: std::env::var("NPM_TOKEN").ok().filter(|t| !t.is_empty()),
            packuments: HashMap::new(),
            down: None,
            requests: 0,
        }
    }

    pub fn packument(&mut self, name: &str) -> Result<Option<Packument>, String> {
        if let Some(found) = self.packuments.get(name) {
            return found.clone();
        }
        if let Some(down) = &self.down {
            return Err(down.clone());
        }
        let found = self.fetch(name);
        if let Err(e) = &found {
            if e.starts_with("no answer") {
                self.down = Some(e.clone());
            }
        }
        self.packuments.insert(name.to_string(), found.clone());
        found
    }

    pub fn version(&mut self, name: &str, version: &str) -> Version {
        match self.packument(name) {
            Ok(Some(p)) if p.versions.contains_key(version) => Version::Published {
                at: p.time.get(version).and_then(|t| parse_time(t)),
            },
            Ok(_) => Version::Missing,
            Err(e) => Version::Unknown(e),
        }
    }

    fn fetch(&mut self, name: &str) -> Result<Option<Packument>, String> {
        // Scoped names keep the `@` and encode the `/`, as npm does.
        let url = format!("{}/{}", self.base, name.replace('/', "%2f"));
        let mut request = self.agent.get(&url);
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        self.requests += 1;
        let mut response = request
            .call()
            .map_err(|e| format!("no answer from the registry {}: {e}", self.base))?;
        match response.status().as_u16() {
            200 => {
                let text = response
                    .body_mut()
                    .with_config()
                    .limit(64 * 1024 * 1024)
                    .read_to_string()
                    .map_err(|e| format!("the registry's answer for {name}: {e}"))?;
                serde_json::from_str(&text)
                    .map(Some)
                    .map_err(|e| format!("the registry's packument of {name}: {e}"))
            }
            404 => Ok(None),
            status => Err(format!("the registry answered {status} for {name}")),
        }
    }
}

/// RFC 3339 with optional fractional seconds (`2026-11-27T10:00:00.123Z`, as npm and Verdaccio
/// write) → Unix seconds.
pub fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    let whole = match text.find('.') {
        Some(dot) if text.ends_with('Z') => format!("{}Z", &text[..dot]),
        _ => text.to_string(),
    };
    upm_github::deliveries::parse_rfc3339_utc(&whole)
}

#[cfg(test)]
mod tests {
    #[test]
    fn registry_times_with_milliseconds() {
        assert_eq!(
            super::parse_time("2026-11-27T10:00:00.123Z"),
            super::parse_time("2026-11-27T10:00:00Z")
        );
        assert!(super::parse_time("2026-11-27T10:00:00Z").is_some());
        assert_eq!(super::parse_time("yesterday"), None);
    }
}
