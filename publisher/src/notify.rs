//! The Discord message: one embed for what was published, one for what failed, always within Discord's
//! limits (https://discord.com/developers/docs/resources/message#embed-object-embed-limits): a message
//! over them is rejected whole, so every part is truncated with a visible note instead.

use std::time::Duration;

use serde::Serialize;

use crate::changelog;
use crate::model::{registry_page, Published, Report};
use crate::registry::{backoff, is_transient, RetryPolicy};

pub const MAX_EMBEDS: usize = 10;
pub const MAX_FIELDS: usize = 25;
pub const MAX_FIELD_NAME: usize = 256;
pub const MAX_FIELD_VALUE: usize = 1024;
pub const MAX_TITLE: usize = 256;
pub const MAX_DESCRIPTION: usize = 4096;
pub const MAX_FOOTER: usize = 2048;
/// Across all embeds of one message: titles, descriptions, field names and values, footers.
pub const MAX_TOTAL: usize = 6000;

const GREEN: u32 = 0x2e_cc_71;
const RED: u32 = 0xe7_4c_3c;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Message {
    pub username: String,
    pub embeds: Vec<Embed>,
    /// Commit messages and changelogs are untrusted text: never let them ping @everyone or a role.
    pub allowed_mentions: AllowedMentions,
}

impl Message {
    /// The publisher's message of `embeds` (cut to Discord's limits by [`fit`]), pinging nobody.
    pub fn of(embeds: Vec<Embed>) -> Message {
        Message {
            username: "UPM Publisher".to_string(),
            embeds: fit(embeds),
            allowed_mentions: AllowedMentions { parse: Vec::new() },
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AllowedMentions {
    pub parse: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Embed {
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    pub description: String,
    pub color: u32,
    pub fields: Vec<Field>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub footer: Option<Footer>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Field {
    pub name: String,
    pub value: String,
    pub inline: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Footer {
    pub text: String,
}

/// Cuts `text` to at most `max` characters (Discord counts characters, not bytes), marking the cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

impl Embed {
    fn size(&self) -> usize {
        chars(&self.title)
            + chars(&self.description)
            + self.footer.as_ref().map_or(0, |f| chars(&f.text))
            + self
                .fields
                .iter()
                .map(|f| chars(&f.name) + chars(&f.value))
                .sum::<usize>()
    }
}

#[cfg(test)]
pub fn total_size(embeds: &[Embed]) -> usize {
    embeds.iter().map(Embed::size).sum()
}

/// An embed before fitting: its fields, and how many were left out already.
struct Draft {
    embed: Embed,
    omitted: usize,
}

fn more_field(omitted: usize) -> Field {
    Field {
        name: format!("…and {omitted} more"),
        value: "Listed in the job summary and the audit file.".to_string(),
        inline: false,
    }
}

impl Draft {
    fn finish(mut self) -> Embed {
        if self.omitted > 0 {
            self.embed.fields.push(more_field(self.omitted));
        }
        self.embed
    }

    fn size_with_note(&self) -> usize {
        self.embed.size()
            + if self.omitted > 0 {
                let f = more_field(self.omitted);
                chars(&f.name) + chars(&f.value)
            } else {
                0
            }
    }
}

/// Applies every Discord limit: per-part lengths, 25 fields per embed (24 and a "…and N more" field),
/// 10 embeds, and 6000 characters in total — first by shortening the longest field values, then by
/// moving fields into the "more" count.
pub fn fit(embeds: Vec<Embed>) -> Vec<Embed> {
    const SHORTEST_VALUE: usize = 80;
    let mut drafts: Vec<Draft> = embeds
        .into_iter()
        .take(MAX_EMBEDS)
        .map(|mut embed| {
            embed.title = truncate(&embed.title, MAX_TITLE);
            embed.description = truncate(&embed.description, MAX_DESCRIPTION);
            if let Some(f) = &mut embed.footer {
                f.text = truncate(&f.text, MAX_FOOTER);
            }
            for field in &mut embed.fields {
                field.name = truncate(&field.name, MAX_FIELD_NAME);
                field.value = truncate(&field.value, MAX_FIELD_VALUE);
            }
            let mut omitted = 0;
            if embed.fields.len() > MAX_FIELDS {
                omitted = embed.fields.len() - (MAX_FIELDS - 1);
                embed.fields.truncate(MAX_FIELDS - 1);
            }
            Draft { embed, omitted }
        })
        .collect();

    loop {
        let total: usize = drafts.iter().map(Draft::size_with_note).sum();
        if total <= MAX_TOTAL {
            break;
        }
        let excess = total - MAX_TOTAL;
        // Shorten the longest field value, but not below a readable length.
        let longest = drafts
            .iter()
            .enumerate()
            .flat_map(|(d, draft)| {
                draft
                    .embed
                    .fields
                    .iter()
                    .enumerate()
                    .map(move |(f, field)| (d, f, chars(&field.value)))
            })
            .filter(|&(_, _, len)| len > SHORTEST_VALUE)
            .max_by_key(|&(_, _, len)| len);
        if let Some((d, f, len)) = longest {
            let target = len.saturating_sub(excess).max(len / 2).max(SHORTEST_VALUE);
            let field = &mut drafts[d].embed.fields[f];
            field.value = truncate(&field.value, target);
            continue;
        }
        // Then drop fields from the fullest embed.
        if let Some(draft) = drafts
            .iter_mut()
            .filter(|d| !d.embed.fields.is_empty())
            .max_by_key(|d| d.embed.fields.len())
        {
            draft.embed.fields.pop();
            draft.omitted += 1;
            continue;
        }
        // Only titles and descriptions left (cannot happen with our sizes): cut descriptions.
        for draft in &mut drafts {
            draft.embed.description = truncate(&draft.embed.description, 200);
        }
        break;
    }
    drafts.into_iter().map(Draft::finish).collect()
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `com.studio.a 1.1.0 → 1.2.0 · minor · latest`: what changed, in one line.
pub fn published_title(p: &Published) -> String {
    let versions = match &p.previous {
        Some(previous) => format!("{previous} → {}", p.version),
        None => p.version.clone(),
    };
    let mut title = format!("{} {versions} · {}", p.name, p.change);
    if let Some(tag) = &p.dist_tag {
        title.push_str(&format!(" · {tag}"));
    }
    if p.signed {
        title.push_str(" · signed");
    }
    title
}

/// The message for a run, or `None` when there is nothing to tell (everything was already published).
pub fn build(report: &Report) -> Option<Message> {
    let published: Vec<_> = report.published().collect();
    let failed: Vec<_> = report.failed().collect();
    let skipped = report.skipped().count();
    if published.is_empty() && failed.is_empty() {
        return None;
    }
    let source = &report.source;
    let origin = match (&source.repository, source.short_sha()) {
        (Some(repo), Some(sha)) => format!("{repo}@{sha}"),
        (Some(repo), None) => repo.clone(),
        _ => "a local workspace".to_string(),
    };
    let branch = source
        .branch
        .as_deref()
        .map(|b| format!(" on `{b}`"))
        .unwrap_or_default();
    let footer = Footer {
        text: truncate(
            &[
                source.commit_author.clone().map(|a| format!("by {a}")),
                source
                    .commit_message
                    .as_deref()
                    .and_then(|m| m.lines().next())
                    .map(str::to_string),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" — "),
            MAX_FOOTER,
        ),
    };
    let footer = (!footer.text.is_empty()).then_some(footer);
    // Links shared by every package of the run go in the description once; each field holds its own.
    let run_links = [
        source.commit_url().map(|u| format!("[Commit]({u})")),
        source
            .run_url
            .as_ref()
            .map(|u| format!("[Workflow run]({u})")),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" · ");
    let mut embeds = Vec::new();
    if !published.is_empty() {
        let mut description = format!("From {origin}{branch}.");
        if !run_links.is_empty() {
            description.push_str(&format!(" {run_links}"));
        }
        if skipped > 0 {
            description.push_str(&format!(
                " {} skipped (already published or not publishable).",
                skipped
            ));
        }
        embeds.push(Embed {
            title: format!(
                "Published {}",
                plural(published.len(), "package", "packages")
            ),
            url: source.commit_url(),
            description,
            color: GREEN,
            fields: published
                .iter()
                .map(|p| Field {
                    name: published_title(p),
                    value: {
                        let body = match changelog::body(&p.changelog) {
                            "" => "No changelog.",
                            body => body,
                        };
                        let mut links = vec![format!(
                            "[Registry]({})",
                            registry_page(&report.registry, &p.name)
                        )];
                        links.extend(
                            source
                                .changelog_url(&p.path)
                                .map(|u| format!("[CHANGELOG]({u})")),
                        );
                        let links = links.join(" · ");
                        match &p.display_name {
                            Some(display) => format!("**{display}** · {links}\n{body}"),
                            None => format!("{links}\n{body}"),
                        }
                    },
                    inline: false,
                })
                .collect(),
            footer: footer.clone(),
        });
    }
    if !failed.is_empty() {
        let mut description = format!("From {origin}{branch}.");
        if let Some(run) = &source.run_url {
            description.push_str(&format!(" [Workflow run]({run})"));
        }
        embeds.push(Embed {
            title: format!(
                "Failed to publish {}",
                plural(failed.len(), "package", "packages")
            ),
            url: source.run_url.clone().or_else(|| source.commit_url()),
            description,
            color: RED,
            fields: failed
                .iter()
                .map(|f| Field {
                    name: match (&f.name, &f.version) {
                        (Some(n), Some(v)) => format!("{n} {v}"),
                        _ if !f.file.is_empty() => f.file.clone(),
                        _ => "(run)".to_string(),
                    },
                    value: format!("**{}** — {}\n`{}`", f.stage, f.reason, f.file),
                    inline: false,
                })
                .collect(),
            footer,
        });
    }
    Some(Message::of(embeds))
}

/// The URL to POST to: `?wait=true` makes Discord report errors in the body, `thread_id` posts into a
/// forum/channel thread.
pub fn webhook_url(base: &str, thread_id: Option<&str>) -> Result<String, String> {
    if !(base.starts_with("https://") || base.starts_with("http://")) {
        return Err("DISCORD_WEBHOOK_URL must be an http(s) URL".to_string());
    }
    let mut url = base.trim().to_string();
    url.push(if url.contains('?') { '&' } else { '?' });
    url.push_str("wait=true");
    if let Some(thread) = thread_id.map(str::trim).filter(|t| !t.is_empty()) {
        if !thread.chars().all(|c| c.is_ascii_digit()) {
            return Err("DISCORD_THREAD_ID must be a numeric Discord id".to_string());
        }
        url.push_str("&thread_id=");
        url.push_str(thread);
    }
    Ok(url)
}

/// Posts the message, retrying rate limits and server errors a bounded number of times. The webhook URL
/// is a credential: errors never include it.
pub fn post(
    agent: &ureq::Agent,
    url: &str,
    message: &Message,
    policy: &RetryPolicy,
) -> Result<(), String> {
    let body = serde_json::to_vec(message).map_err(|e| e.to_string())?;
    let mut attempt = 1;
    loop {
        let result = agent
            .post(url)
            .header("Content-Type", "application/json")
            .send(body.as_slice());
        let retry_after = match result {
            Ok(mut response) => {
                let status = response.status().as_u16();
                if (200..300).contains(&status) {
                    return Ok(());
                }
                let header = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<f64>().ok());
                let text = response.body_mut().read_to_string().unwrap_or_default();
                // Discord puts the precise wait in the body as seconds (a float).
                let in_body = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v.get("retry_after")?.as_f64());
                if !is_transient(status) || attempt >= policy.attempts {
                    let detail = serde_json::from_str::<serde_json::Value>(&text)
                        .ok()
                        .and_then(|v| v.get("message")?.as_str().map(|s| truncate(s, 200)))
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default();
                    return Err(format!("the Discord webhook answered {status}{detail}"));
                }
                let wait = in_body.or(header).filter(|s| s.is_finite() && *s >= 0.0);
                wait.map(Duration::from_secs_f64)
            }
            Err(e) => {
                if attempt >= policy.attempts {
                    // ureq's error may quote the URL, which holds the webhook token.
                    let kind = match e {
                        ureq::Error::Timeout(_) => "timed out",
                        ureq::Error::HostNotFound => "host not found",
                        ureq::Error::ConnectionFailed => "connection failed",
                        _ => "request failed",
                    };
                    return Err(format!("the Discord webhook could not be reached ({kind})"));
                }
                None
            }
        };
        std::thread::sleep(backoff(policy, attempt, retry_after));
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    fn field(name: &str, len: usize) -> Field {
        Field {
            name: name.to_string(),
            value: "x".repeat(len),
            inline: false,
        }
    }

    fn embed(fields: Vec<Field>) -> Embed {
        Embed {
            title: "t".into(),
            url: None,
            description: "d".into(),
            color: 0,
            fields,
            footer: None,
        }
    }

    fn assert_within_limits(embeds: &[Embed]) {
        assert!(embeds.len() <= MAX_EMBEDS);
        assert!(total_size(embeds) <= MAX_TOTAL, "{}", total_size(embeds));
        for e in embeds {
            assert!(e.fields.len() <= MAX_FIELDS);
            assert!(chars(&e.title) <= MAX_TITLE && chars(&e.description) <= MAX_DESCRIPTION);
            for f in &e.fields {
                assert!(chars(&f.value) <= MAX_FIELD_VALUE && chars(&f.name) <= MAX_FIELD_NAME);
            }
        }
    }

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate("héllo", 5), "héllo");
        assert_eq!(truncate("héllo", 4), "hél…");
        assert_eq!(
            chars(&truncate(&"é".repeat(2000), MAX_FIELD_VALUE)),
            MAX_FIELD_VALUE
        );
    }

    #[test]
    fn small_messages_are_untouched() {
        let embeds = vec![embed(vec![field("a", 10)])];
        assert_eq!(fit(embeds.clone()), embeds);
    }

    #[test]
    fn too_many_fields_become_a_note() {
        let fields = (0..30).map(|i| field(&format!("f{i}"), 5)).collect();
        let out = fit(vec![embed(fields)]);
        assert_within_limits(&out);
        assert_eq!(out[0].fields.len(), 25);
        assert_eq!(out[0].fields[24].name, "…and 6 more");
    }

    #[test]
    fn the_total_is_kept_under_6000() {
        // Two embeds of 25 long fields each: about 51 000 characters before fitting.
        let many = |p: &str| {
            (0..25)
                .map(|i| field(&format!("{p}{i}"), 2000))
                .collect::<Vec<_>>()
        };
        let out = fit(vec![embed(many("ok")), embed(many("bad"))]);
        assert_within_limits(&out);
        // Values were shortened before any field was dropped, so both embeds still list packages.
        assert!(out.iter().all(|e| e.fields.len() > 5));
        let omitted: usize = out
            .iter()
            .flat_map(|e| &e.fields)
            .filter_map(|f| {
                f.name
                    .strip_prefix("…and ")?
                    .strip_suffix(" more")?
                    .parse::<usize>()
                    .ok()
            })
            .sum();
        let shown = out
            .iter()
            .flat_map(|e| &e.fields)
            .filter(|f| !f.name.starts_with('…'))
            .count();
        assert_eq!(shown + omitted, 50);
    }

    fn report(published: usize, failed: usize) -> Report {
        let mut outcomes = Vec::new();
        for i in 0..published {
            outcomes.push(Outcome::Published(Box::new(Published {
                path: PackagePath::new(format!("p{i}")),
                name: PackageName::new_unchecked(format!("com.s.p{i}")),
                version: "1.0.0".into(),
                previous: Some("0.9.1".into()),
                change: ChangeKind::Major,
                dist_tag: Some("latest".into()),
                shasum: "s".into(),
                integrity: "i".into(),
                display_name: None,
                files: 1,
                size: 1,
                unpacked_size: 1,
                note: None,
                warnings: vec![],
                changelog: "## [1.0.0] - d\n\n- @everyone look (abc1234)\n".into(),
                signed: false,
            })));
        }
        for i in 0..failed {
            outcomes.push(Outcome::Failed(Failed {
                path: PackagePath::new(format!("bad{i}")),
                file: format!("bad{i}/package.json"),
                name: None,
                version: None,
                stage: Stage::Validate,
                problems: vec![],
                reason: "`version` is missing".into(),
            }));
        }
        outcomes.push(Outcome::Skipped(Skipped {
            path: PackagePath::new("old"),
            name: None,
            version: None,
            reason: "already published".into(),
        }));
        Report::fixture(outcomes)
    }

    #[test]
    fn one_embed_for_successes_and_one_for_failures() {
        let msg = build(&report(2, 1)).unwrap();
        assert_eq!(msg.embeds.len(), 2);
        assert_eq!(msg.embeds[0].title, "Published 2 packages");
        assert_eq!(
            msg.embeds[0].fields[0].name,
            "com.s.p0 0.9.1 → 1.0.0 · major · latest"
        );
        assert_eq!(
            msg.embeds[0].fields[0].value,
            "[Registry](http://r/-/web/detail/com.s.p0) · \
             [CHANGELOG](https://github.com/studio/game/blob/0123456789abcdef0123456789abcdef01234567/p0/CHANGELOG.md)\n\
             - @everyone look (abc1234)"
        );
        assert!(msg.embeds[0].description.contains(
            "[Commit](https://github.com/studio/game/commit/0123456789abcdef0123456789abcdef01234567) · \
             [Workflow run](https://github.com/studio/game/actions/runs/77)"
        ));
        assert!(msg.embeds[1]
            .description
            .contains("[Workflow run](https://github.com/studio/game/actions/runs/77)"));
        assert_eq!(
            msg.embeds[1].url.as_deref(),
            Some("https://github.com/studio/game/actions/runs/77")
        );
        assert!(
            msg.embeds[0].description.contains("studio/game@0123456")
                && msg.embeds[0].description.contains("1 skipped")
        );
        assert_eq!(
            msg.embeds[0].url.as_deref(),
            Some("https://github.com/studio/game/commit/0123456789abcdef0123456789abcdef01234567")
        );
        assert_eq!(msg.embeds[1].title, "Failed to publish 1 package");
        assert!(msg.embeds[1].fields[0]
            .value
            .contains("**validate** — `version` is missing"));
        let json = serde_json::to_value(&msg).unwrap();
        assert_eq!(json["allowed_mentions"]["parse"], serde_json::json!([]));
        assert!(build(&report(0, 0)).is_none());
        assert_eq!(build(&report(0, 1)).unwrap().embeds.len(), 1);
    }

    #[test]
    fn thirty_packages_fit() {
        let msg = build(&report(30, 3)).unwrap();
        assert_within_limits(&msg.embeds);
        assert_eq!(msg.embeds[0].fields.last().unwrap().name, "…and 6 more");
    }

    #[test]
    fn webhook_urls() {
        assert_eq!(
            webhook_url("https://d/api/webhooks/1/t", None).unwrap(),
            "https://d/api/webhooks/1/t?wait=true"
        );
        assert_eq!(
            webhook_url("https://d/w?x=1", Some("123")).unwrap(),
            "https://d/w?x=1&wait=true&thread_id=123"
        );
        assert!(webhook_url("https://d/w", Some("12&x=1")).is_err());
        assert!(webhook_url("ftp://d", None).is_err());
    }
}
