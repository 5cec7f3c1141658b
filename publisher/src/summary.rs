//! What a run leaves behind for people and machines: the Markdown job summary (appended to
//! `$GITHUB_STEP_SUMMARY`) and the JSON audit file (published / skipped / failed, with reasons).

use serde::Serialize;

use crate::changelog;
use crate::model::{registry_page, Failed, Published, Report, Skipped, Source};

/// A table cell: no line breaks, no pipes, no raw HTML (commit text is untrusted).
pub fn cell(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "\\|")
}

pub fn markdown(report: &Report) -> String {
    let source = &report.source;
    let mut out = String::from("## UPM publish");
    if let Some(repo) = &source.repository {
        out.push_str(&format!(" — {}", cell(repo)));
    }
    out.push_str("\n\n");
    let mut facts = Vec::new();
    if let Some(sha) = &source.commit_sha {
        match source.commit_url() {
            Some(url) => facts.push(format!("commit [`{}`]({url})", &sha[..sha.len().min(12)])),
            None => facts.push(format!("commit `{}`", cell(sha))),
        }
    }
    if let Some(branch) = &source.branch {
        facts.push(format!("branch `{}`", cell(branch)));
    }
    facts.push(format!("registry `{}`", cell(&report.registry)));
    if let Some(run) = &source.run_url {
        facts.push(format!("[workflow run]({run})"));
    }
    facts.push(format!("at {}", report.finished_at));
    if report.dry_run {
        facts.push("**dry run**: nothing uploaded".to_string());
    }
    out.push_str(&facts.join(" · "));
    out.push_str("\n\n");

    let published: Vec<&Published> = report.published().collect();
    let skipped: Vec<&Skipped> = report.skipped().collect();
    let failed: Vec<&Failed> = report.failed().collect();
    out.push_str(&format!(
        "**{}** published · **{}** skipped · **{}** failed\n\n",
        published.len(),
        skipped.len(),
        failed.len()
    ));
    if report.outcomes.is_empty() {
        out.push_str("No UPM package found.\n");
        return out;
    }
    out.push_str("| Result | Package | Version | Path | Details |\n|---|---|---|---|---|\n");
    for f in &failed {
        out.push_str(&format!(
            "| ❌ failed | {} | {} | `{}` | {}: {} |\n",
            cell(f.name.as_deref().unwrap_or("")),
            cell(f.version.as_deref().unwrap_or("")),
            cell(&f.file),
            f.stage,
            cell(&f.reason)
        ));
    }
    for p in &published {
        let mut details = format!("**{}**, ", p.change);
        details.push_str(&match &p.dist_tag {
            Some(tag) => format!("dist-tag `{tag}`"),
            None => "no dist-tag (older than every tagged version)".to_string(),
        });
        details.push_str(&format!(", {} files, shasum `{}`", p.files, p.shasum));
        if p.signed {
            details.push_str(", signed");
        }
        if let Some(note) = &p.note {
            details.push_str(&format!(", {}", cell(note)));
        }
        details.push_str(&format!(
            " · [registry]({})",
            registry_page(&report.registry, &p.name)
        ));
        if let Some(url) = source.changelog_url(&p.path) {
            details.push_str(&format!(" · [CHANGELOG]({url})"));
        }
        for w in &p.warnings {
            details.push_str(&format!(" · ⚠️ `{}` {}", cell(&w.field), cell(&w.reason)));
        }
        let versions = match &p.previous {
            Some(previous) => format!("{} → {}", cell(previous), cell(&p.version)),
            None => cell(&p.version),
        };
        out.push_str(&format!(
            "| ✅ published | {} | {} | `{}` | {} |\n",
            cell(p.name.as_str()),
            versions,
            cell(&p.path.to_string()),
            details
        ));
    }
    for s in &skipped {
        out.push_str(&format!(
            "| ⏭️ skipped | {} | {} | `{}` | {} |\n",
            cell(s.name.as_deref().unwrap_or("")),
            cell(s.version.as_deref().unwrap_or("")),
            cell(&s.path.to_string()),
            cell(&s.reason)
        ));
    }
    for p in &published {
        let body = changelog::body(&p.changelog);
        if body.is_empty() {
            continue;
        }
        // Changelog lines come from commit messages: fenced-off HTML is escaped, Markdown is kept.
        let body = body.replace('<', "&lt;").replace('>', "&gt;");
        out.push_str(&format!(
            "\n<details><summary>Changelog of {} {}</summary>\n\n{body}\n\n</details>\n",
            cell(p.name.as_str()),
            cell(&p.version)
        ));
    }
    out
}

/// The audit file's shape.
#[derive(Serialize)]
pub struct Audit<'a> {
    /// When the run finished (RFC 3339, UTC).
    pub timestamp: &'a str,
    /// The workflow run, when running in GitHub Actions (also under `source`; here for readers who look
    /// for it first).
    pub run_url: Option<&'a str>,
    pub source: &'a Source,
    pub registry: &'a str,
    pub dry_run: bool,
    pub ok: bool,
    pub published: Vec<&'a Published>,
    pub skipped: Vec<&'a Skipped>,
    pub failed: Vec<&'a Failed>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notification: Option<&'a str>,
    /// The delivery that caused the run (also under `source`): what `upm trace` matches runs by.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<&'a str>,
    /// When each stage of the run happened, so `upm trace` reads times rather than guessing them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timings: Option<&'a Timings>,
}

/// The times of a run's stages (RFC 3339, UTC, seconds).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    /// The publisher started (the job's earlier steps, checkout and download, came before).
    pub started_at: String,
    /// `name@version` → when its upload was verified on the registry.
    pub published_at: std::collections::BTreeMap<String, String>,
    /// When the Discord post was answered (absent when nothing was posted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notified_at: Option<String>,
    pub finished_at: String,
}

/// The job summary's timeline line: the delivery and the time of each stage.
pub fn timeline(delivery: Option<&str>, timings: &Timings) -> String {
    let time = |t: &str| t.get(11..19).unwrap_or(t).to_string();
    let mut parts = vec![format!("delivery `{}`", cell(delivery.unwrap_or("manual")))];
    parts.push(format!("started {}", time(&timings.started_at)));
    for (id, at) in &timings.published_at {
        parts.push(format!("{} published {}", cell(id), time(at)));
    }
    if let Some(at) = &timings.notified_at {
        parts.push(format!("Discord {}", time(at)));
    }
    parts.push(format!("finished {} (UTC)", time(&timings.finished_at)));
    format!("\n**Timeline:** {}\n", parts.join(" · "))
}

pub fn audit<'a>(report: &'a Report, notification: Option<&'a str>) -> Audit<'a> {
    Audit {
        timestamp: &report.finished_at,
        run_url: report.source.run_url.as_deref(),
        source: &report.source,
        registry: &report.registry,
        dry_run: report.dry_run,
        ok: !report.has_failures(),
        published: report.published().collect(),
        skipped: report.skipped().collect(),
        failed: report.failed().collect(),
        notification,
        delivery: report.source.delivery.as_deref(),
        timings: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    #[test]
    fn cells_are_safe() {
        assert_eq!(cell("a|b\nc <script>"), "a\\|b c &lt;script&gt;");
    }

    #[test]
    fn markdown_and_audit() {
        let report = Report::fixture(vec![
            Outcome::Published(Box::new(Published {
                path: PackagePath::new("Packages/a"),
                name: PackageName::new_unchecked("com.s.a".into()),
                version: "1.1.0".into(),
                previous: Some("1.0.3".into()),
                change: ChangeKind::Minor,
                dist_tag: Some("latest".into()),
                shasum: "abc".into(),
                integrity: "sha512-x".into(),
                display_name: Some("A".into()),
                files: 3,
                size: 100,
                unpacked_size: 300,
                note: None,
                warnings: vec![Problem {
                    field: "Runtime/Old.cs.meta".into(),
                    reason: "an orphan .meta".into(),
                }],
                changelog: "## [1.1.0] - d\n\n- feat <b> (1234567)\n".into(),
                signed: true,
            })),
            Outcome::Skipped(Skipped {
                path: PackagePath::new("Packages/b"),
                name: Some("com.s.b".into()),
                version: Some("1.0.0".into()),
                reason: "already published".into(),
            }),
            Outcome::Failed(Failed {
                path: PackagePath::new("Packages/c"),
                file: "Packages/c/package.json".into(),
                name: None,
                version: None,
                stage: Stage::Validate,
                problems: vec![Problem {
                    field: "version".into(),
                    reason: "is missing".into(),
                }],
                reason: "`version` is missing".into(),
            }),
        ]);
        let md = markdown(&report);
        assert!(
            md.contains("**1** published · **1** skipped · **1** failed"),
            "{md}"
        );
        assert!(
            md.contains(
                "| ❌ failed |  |  | `Packages/c/package.json` | validate: `version` is missing |"
            ),
            "{md}"
        );
        assert!(
            md.contains(
                "| ✅ published | com.s.a | 1.0.3 → 1.1.0 | `Packages/a` | **minor**, dist-tag `latest`, 3 files"
            ),
            "{md}"
        );
        assert!(
            md.contains(" · [registry](http://r/-/web/detail/com.s.a) · [CHANGELOG](https://github.com/studio/game/blob/0123456789abcdef0123456789abcdef01234567/Packages/a/CHANGELOG.md) · ⚠️ `Runtime/Old.cs.meta` an orphan .meta |"),
            "{md}"
        );
        assert!(
            md.contains("[workflow run](https://github.com/studio/game/actions/runs/77) · at 2026-11-27T10:00:00Z"),
            "{md}"
        );
        assert!(md.contains("- feat &lt;b&gt; (1234567)"), "{md}");
        let json = serde_json::to_value(audit(&report, Some("sent"))).unwrap();
        assert_eq!(json["ok"], false);
        assert_eq!(json["published"][0]["name"], "com.s.a");
        assert_eq!(json["skipped"][0]["reason"], "already published");
        assert_eq!(json["failed"][0]["problems"][0]["field"], "version");
        assert_eq!(json["failed"][0]["stage"], "validate");
        assert_eq!(json["source"]["repository"], "studio/game");
        assert_eq!(json["timestamp"], "2026-11-27T10:00:00Z");
        assert_eq!(
            json["run_url"],
            "https://github.com/studio/game/actions/runs/77"
        );
        assert_eq!(json["published"][0]["previous"], "1.0.3");
        assert_eq!(json["published"][0]["change"], "minor");
        assert_eq!(json["published"][0]["dist_tag"], "latest");
        assert_eq!(json["published"][0]["signed"], true);
    }

    #[test]
    fn the_audit_carries_the_delivery_and_the_times_of_each_stage() {
        let mut report = Report::fixture(Vec::new());
        report.source.delivery = Some("72d3162e-1".into());
        let timings = Timings {
            started_at: "2026-11-27T10:00:01Z".into(),
            published_at: [(
                "com.s.a@1.1.0".to_string(),
                "2026-11-27T10:00:09Z".to_string(),
            )]
            .into_iter()
            .collect(),
            notified_at: Some("2026-11-27T10:00:10Z".into()),
            finished_at: "2026-11-27T10:00:11Z".into(),
        };
        let mut audit = audit(&report, Some("sent"));
        audit.timings = Some(&timings);
        let json = serde_json::to_value(&audit).unwrap();
        assert_eq!(json["delivery"], "72d3162e-1");
        assert_eq!(json["timings"]["started_at"], "2026-11-27T10:00:01Z");
        assert_eq!(
            json["timings"]["published_at"]["com.s.a@1.1.0"],
            "2026-11-27T10:00:09Z"
        );
        assert_eq!(json["timings"]["notified_at"], "2026-11-27T10:00:10Z");
        // The keys `upm trace` reads (ops/src/cmd_trace.rs `AuditFile`) are all there.
        for key in [
            "ok",
            "published",
            "failed",
            "skipped",
            "notification",
            "delivery",
            "timings",
        ] {
            assert!(json.get(key).is_some(), "{key} missing from {json}");
        }
        assert_eq!(
            timeline(Some("72d3162e-1"), &timings),
            "\n**Timeline:** delivery `72d3162e-1` · started 10:00:01 · com.s.a@1.1.0 published 10:00:09 · Discord 10:00:10 · finished 10:00:11 (UTC)\n"
        );
    }
}
