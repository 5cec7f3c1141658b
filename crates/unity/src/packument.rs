//! What Unity's Package Manager reads from a version in the packument (`GET /<name>`): the fields of
//! its package manifest (Unity manual, "Package manifest": `name`, `version`, `displayName`,
//! `description`, `unity`, `unityRelease`, `dependencies`, `samples`, `keywords`, `author`,
//! `documentationUrl`, `changelogUrl`, `licensesUrl`, `hideInEditor`, `type`), plus `dist.tarball`
//! for the download. A registry that drops or rewrites one of them shows a different package than the
//! one published (no samples, a wrong minimum editor, a lost dependency).

use serde_json::{Map, Value};

/// The manifest fields Unity reads, compared between what was published and what the registry serves.
pub const UNITY_FIELDS: [&str; 15] = [
    "name",
    "version",
    "displayName",
    "description",
    "unity",
    "unityRelease",
    "dependencies",
    "samples",
    "keywords",
    "author",
    "documentationUrl",
    "changelogUrl",
    "licensesUrl",
    "hideInEditor",
    "type",
];

/// Checks that the packument lists `version` with every Unity field of `manifest` intact; the reason
/// names the URL and the field otherwise.
pub fn judge_version(
    url: &str,
    packument: &Value,
    version: &str,
    manifest: &Map<String, Value>,
) -> Result<(), String> {
    let Some(served) = packument
        .get("versions")
        .and_then(|v| v.get(version))
        .and_then(Value::as_object)
    else {
        return Err(format!("{url} does not list version {version}"));
    };
    for field in UNITY_FIELDS {
        let sent = manifest.get(field);
        let got = served.get(field);
        if sent.is_some() && sent != got {
            return Err(format!(
                "{url} serves {version} with `{field}` {} instead of {}",
                got.map_or("missing".to_string(), |v| v.to_string()),
                sent.map_or("missing".to_string(), |v| v.to_string())
            ));
        }
    }
    match served
        .get("dist")
        .and_then(|d| d.get("tarball"))
        .and_then(Value::as_str)
    {
        Some(t) if !t.is_empty() => Ok(()),
        _ => Err(format!("{url} serves {version} without `dist.tarball`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn unity_fields_must_be_intact() {
        let manifest = map(json!({"name":"com.s.a","version":"1.0.0","unity":"2022.3",
            "samples":[{"displayName":"D","path":"Samples~/D"}],"custom":1}));
        let mut version = manifest.clone();
        version.insert(
            "dist".into(),
            json!({"tarball":"http://r/com.s.a/-/com.s.a-1.0.0.tgz"}),
        );
        version.remove("custom"); // fields Unity does not read may differ
        let packument = json!({"versions":{"1.0.0": version}});
        assert!(judge_version("u", &packument, "1.0.0", &manifest).is_ok());
        assert_eq!(
            judge_version("u", &packument, "1.1.0", &manifest).unwrap_err(),
            "u does not list version 1.1.0"
        );
        let mut stripped = packument.clone();
        stripped["versions"]["1.0.0"]
            .as_object_mut()
            .unwrap()
            .remove("samples");
        let e = judge_version("u", &stripped, "1.0.0", &manifest).unwrap_err();
        assert!(
            e.starts_with("u serves 1.0.0 with `samples` missing instead of [{"),
            "{e}"
        );
        let mut rewritten = packument.clone();
        rewritten["versions"]["1.0.0"]["unity"] = json!("2021.3");
        let e = judge_version("u", &rewritten, "1.0.0", &manifest).unwrap_err();
        assert_eq!(
            e,
            "u serves 1.0.0 with `unity` \"2021.3\" instead of \"2022.3\""
        );
        let mut no_dist = packument;
        no_dist["versions"]["1.0.0"]
            .as_object_mut()
            .unwrap()
            .remove("dist");
        assert!(judge_version("u", &no_dist, "1.0.0", &manifest)
            .unwrap_err()
            .contains("without `dist.tarball`"));
    }
}
