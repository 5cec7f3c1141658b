//! slo: the seed's success metrics, measured from records — webhook first-attempt success (> 99 %),
//! push → workflow start (< 10 s), push → published (< 5 min) — and the bumps that are not on the
//! registry 30 minutes after their push. Pure: `cmd_slo` gathers [`PushRecord`]s (and keeps them in a
//! history file, since GitHub's delivery log forgets after 3 days); this module computes the figures,
//! the daily series and its Mermaid chart, and the alert's once-per-breach state.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use upm_github::deliveries::format_rfc3339_utc;

use crate::trace::duration;

/// One push delivery (all attempts of one guid) and what became of its bumps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushRecord {
    pub guid: String,
    pub repository: String,
    pub sha: String,
    /// The first attempt's time: GitHub sends the webhook as the push lands.
    pub pushed_at: i64,
    /// The first attempt got a 2xx answer.
    pub first_ok: bool,
    /// When the central publish run naming this delivery was created ("workflow start": the dispatch
    /// became a run; the wait for a runner counts in push → published).
    #[serde(default)]
    pub run_created_at: Option<i64>,
    /// Versions this push put on the publishing branch that the registry did not have before it.
    #[serde(default)]
    pub bumps: Vec<BumpRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BumpRecord {
    /// `name@version`
    pub package: String,
    /// The registry's publish time, once it has the version.
    pub published_at: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Targets {
    /// First-attempt success must be above this percentage (seed: "> 99 %").
    pub webhook_success_pct: f64,
    /// p95 of push → workflow start must be below this (seed: "< 10 s").
    pub start_secs: i64,
    /// p95 of push → published must be below this (seed: "total publish < 5 min").
    pub published_secs: i64,
    /// A bump not on the registry this long after its push is missed.
    pub missing_after_secs: i64,
}

impl Default for Targets {
    fn default() -> Self {
        Targets {
            webhook_success_pct: 99.0,
            start_secs: 10,
            published_secs: 300,
            missing_after_secs: 30 * 60,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Latency {
    pub count: usize,
    pub p50: Option<i64>,
    pub p95: Option<i64>,
    pub max: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    pub pushes: usize,
    pub first_attempt_ok: usize,
    pub webhook_success_pct: Option<f64>,
    pub push_to_start: Latency,
    pub push_to_published: Latency,
    pub missing: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Missing {
    pub repository: String,
    pub sha: String,
    pub package: String,
    pub pushed_at: String,
    pub age_secs: i64,
}

/// A target missed: `key` identifies it across runs (the alert's state).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Breach {
    pub key: String,
    pub message: String,
    /// The `upm trace` command that explains it, for a missing bump.
    pub trace: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub from: String,
    pub to: String,
    pub targets: Targets,
    pub overall: Figures,
    pub repositories: BTreeMap<String, Figures>,
    /// `YYYY-MM-DD` (UTC) → that day's figures.
    pub daily: BTreeMap<String, Figures>,
    pub missing: Vec<Missing>,
    pub breaches: Vec<Breach>,
}

/// Nearest rank: the smallest value with at least `p` % of the values at or below it.
pub fn percentile(sorted: &[i64], p: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

fn latency(mut values: Vec<i64>) -> Latency {
    values.sort_unstable();
    Latency {
        count: values.len(),
        p50: percentile(&values, 50),
        p95: percentile(&values, 95),
        max: values.last().copied(),
    }
}

fn figures(records: &[&PushRecord], now: i64, targets: &Targets) -> Figures {
    let pushes = records.len();
    let ok = records.iter().filter(|r| r.first_ok).count();
    let start = records
        .iter()
        .filter_map(|r| r.run_created_at.map(|t| t - r.pushed_at))
        .collect();
    let published = records
        .iter()
        .flat_map(|r| {
            r.bumps
                .iter()
                .filter_map(|b| b.published_at.map(|t| t - r.pushed_at))
        })
        .collect();
    let missing = records
        .iter()
        .filter(|r| now - r.pushed_at >= targets.missing_after_secs)
        .flat_map(|r| &r.bumps)
        .filter(|b| b.published_at.is_none())
        .count();
    Figures {
        pushes,
        first_attempt_ok: ok,
        webhook_success_pct: (pushes > 0).then(|| ok as f64 * 100.0 / pushes as f64),
        push_to_start: latency(start),
        push_to_published: latency(published),
        missing,
    }
}

/// The figures of the pushes in `[from, now]`, overall, per repository and per day; the missed bumps;
/// the targets missed.
pub fn compute(records: &[PushRecord], from: i64, now: i64, targets: &Targets) -> Report {
    let window: Vec<&PushRecord> = records
        .iter()
        .filter(|r| r.pushed_at >= from && r.pushed_at <= now)
        .collect();
    let mut by_repo: BTreeMap<String, Vec<&PushRecord>> = BTreeMap::new();
    let mut by_day: BTreeMap<String, Vec<&PushRecord>> = BTreeMap::new();
    for r in &window {
        by_repo.entry(r.repository.clone()).or_default().push(r);
        by_day
            .entry(format_rfc3339_utc(r.pushed_at)[..10].to_string())
            .or_default()
            .push(r);
    }
    let mut missing: Vec<Missing> = window
        .iter()
        .filter(|r| now - r.pushed_at >= targets.missing_after_secs)
        .flat_map(|r| {
            r.bumps
                .iter()
                .filter(|b| b.published_at.is_none())
                .map(move |b| Missing {
                    repository: r.repository.clone(),
                    sha: r.sha.clone(),
                    package: b.package.clone(),
                    pushed_at: format_rfc3339_utc(r.pushed_at),
                    age_secs: now - r.pushed_at,
                })
        })
        .collect();
    missing.sort_by(|a, b| {
        a.pushed_at
            .cmp(&b.pushed_at)
            .then(a.package.cmp(&b.package))
    });
    let overall = figures(&window, now, targets);
    let breaches = breaches(&overall, &missing, targets);
    Report {
        from: format_rfc3339_utc(from),
        to: format_rfc3339_utc(now),
        targets: *targets,
        repositories: by_repo
            .into_iter()
            .map(|(k, v)| (k, figures(&v, now, targets)))
            .collect(),
        daily: by_day
            .into_iter()
            .map(|(k, v)| (k, figures(&v, now, targets)))
            .collect(),
        overall,
        missing,
        breaches,
    }
}

fn breaches(overall: &Figures, missing: &[Missing], targets: &Targets) -> Vec<Breach> {
    let mut out = Vec::new();
    // The seed asks for more than 99 %: exactly 99.0 misses it.
    if let Some(pct) = overall.webhook_success_pct {
        if pct <= targets.webhook_success_pct {
            out.push(Breach {
                key: "webhook_success".into(),
                message: format!(
                    "webhook first-attempt success {pct:.1} % ({} of {}), target > {} %",
                    overall.first_attempt_ok, overall.pushes, targets.webhook_success_pct
                ),
                trace: None,
            });
        }
    }
    if let Some(p95) = overall.push_to_start.p95 {
        if p95 >= targets.start_secs {
            out.push(Breach {
                key: "push_to_start".into(),
                message: format!(
                    "push → workflow start p95 {}, target < {}",
                    duration(p95),
                    duration(targets.start_secs)
                ),
                trace: None,
            });
        }
    }
    if let Some(p95) = overall.push_to_published.p95 {
        if p95 >= targets.published_secs {
            out.push(Breach {
                key: "push_to_published".into(),
                message: format!(
                    "push → published p95 {}, target < {}",
                    duration(p95),
                    duration(targets.published_secs)
                ),
                trace: None,
            });
        }
    }
    for m in missing {
        out.push(Breach {
            key: format!("missing:{}:{}", m.repository, m.package),
            message: format!(
                "{} from {}@{} is not on the registry {} after its push",
                m.package,
                m.repository,
                &m.sha[..m.sha.len().min(12)],
                duration(m.age_secs)
            ),
            trace: Some(format!("upm trace {} {}", m.repository, m.sha)),
        });
    }
    out
}

/// What the alert remembers between hourly runs: the breaches already announced (key → since when).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertState {
    pub open: BTreeMap<String, i64>,
}

/// What changed since the last run: breaches to announce, recoveries to announce, the new state.
#[derive(Debug, Clone, PartialEq)]
pub struct Transitions {
    pub new: Vec<Breach>,
    /// Keys of breaches that are over.
    pub recovered: Vec<String>,
    pub state: AlertState,
}

/// Once per breach, once on recovery: a breach still open is not announced again.
pub fn transitions(previous: &AlertState, current: &[Breach], now: i64) -> Transitions {
    let keys: BTreeSet<&str> = current.iter().map(|b| b.key.as_str()).collect();
    let new = current
        .iter()
        .filter(|b| !previous.open.contains_key(&b.key))
        .cloned()
        .collect();
    let recovered = previous
        .open
        .keys()
        .filter(|k| !keys.contains(k.as_str()))
        .cloned()
        .collect();
    let state = AlertState {
        open: current
            .iter()
            .map(|b| {
                (
                    b.key.clone(),
                    previous.open.get(&b.key).copied().unwrap_or(now),
                )
            })
            .collect(),
    };
    Transitions {
        new,
        recovered,
        state,
    }
}

/// The Discord message for one run's transitions (`None` when nothing changed).
pub fn alert_message(t: &Transitions, window: &str) -> Option<serde_json::Value> {
    if t.new.is_empty() && t.recovered.is_empty() {
        return None;
    }
    let mut lines = Vec::new();
    for b in &t.new {
        let trace = b
            .trace
            .as_ref()
            .map(|c| format!(" — `{c}`"))
            .unwrap_or_default();
        lines.push(format!("🔴 {}{trace}", b.message));
    }
    for key in &t.recovered {
        lines.push(format!("🟢 recovered: {}", recovered_text(key)));
    }
    let title = if t.new.is_empty() {
        "UPM publishing: back within targets".to_string()
    } else {
        format!(
            "UPM publishing: {} target(s) missed (last {window})",
            t.new.len()
        )
    };
    Some(serde_json::json!({
        "allowed_mentions": { "parse": [] },
        "embeds": [{
            "title": title,
            "color": if t.new.is_empty() { 5_763_719 } else { 15_548_997 },
            "description": lines.join("\n"),
        }]
    }))
}

fn recovered_text(key: &str) -> String {
    match key {
        "webhook_success" => "webhook first-attempt success".into(),
        "push_to_start" => "push → workflow start".into(),
        "push_to_published" => "push → published".into(),
        other => match other.strip_prefix("missing:") {
            Some(rest) => {
                let (repo, package) = rest.rsplit_once(':').unwrap_or((rest, ""));
                format!("{package} from {repo} is on the registry")
            }
            None => other.to_string(),
        },
    }
}

/// Merges fresh records into the history (a fresh record replaces the stored one of its guid) and
/// drops records older than `keep_from`. Newest first.
pub fn merge_history(
    history: Vec<PushRecord>,
    fresh: Vec<PushRecord>,
    keep_from: i64,
) -> Vec<PushRecord> {
    let mut by_guid: BTreeMap<String, PushRecord> = BTreeMap::new();
    for r in history.into_iter().chain(fresh) {
        by_guid.insert(r.guid.clone(), r);
    }
    let mut out: Vec<PushRecord> = by_guid
        .into_values()
        .filter(|r| r.pushed_at >= keep_from)
        .collect();
    out.sort_by_key(|r| std::cmp::Reverse((r.pushed_at, r.guid.clone())));
    out
}

fn pct(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.1} %"))
}

fn secs(v: Option<i64>) -> String {
    v.map_or("n/a".into(), duration)
}

fn latency_text(l: &Latency) -> String {
    format!("{} / {} / {}", secs(l.p50), secs(l.p95), secs(l.max))
}

/// The report as a table.
pub fn render(report: &Report) -> String {
    let mut out = format!("SLO from {} to {}\n", report.from, report.to);
    let t = &report.targets;
    let mut rows = vec![row("overall", &report.overall)];
    rows.extend(report.repositories.iter().map(|(k, f)| row(k, f)));
    out.push_str(&crate::table::render(
        &[
            "REPOSITORY",
            "PUSHES",
            "WEBHOOK 1ST OK",
            "PUSH→START p50/p95/max",
            "PUSH→PUBLISHED p50/p95/max",
            "MISSING",
        ],
        &rows,
    ));
    out.push_str(&format!(
        "targets: webhook > {} %, push→start < {}, push→published < {}, bumps published within {}\n",
        t.webhook_success_pct,
        duration(t.start_secs),
        duration(t.published_secs),
        duration(t.missing_after_secs)
    ));
    if !report.missing.is_empty() {
        out.push_str("\nbumps not on the registry 30 minutes after their push\n");
        let rows: Vec<Vec<String>> = report
            .missing
            .iter()
            .map(|m| {
                vec![
                    m.package.clone(),
                    m.repository.clone(),
                    m.sha[..m.sha.len().min(12)].to_string(),
                    m.pushed_at.clone(),
                    format!("upm trace {} {}", m.repository, m.sha),
                ]
            })
            .collect();
        out.push_str(&crate::table::render(
            &["PACKAGE", "REPOSITORY", "COMMIT", "PUSHED", "TRACE"],
            &rows,
        ));
    }
    if report.breaches.is_empty() {
        out.push_str("\nall targets met\n");
    } else {
        out.push_str("\nmissed:\n");
        for b in &report.breaches {
            out.push_str(&format!("  - {}\n", b.message));
        }
    }
    out
}

fn row(name: &str, f: &Figures) -> Vec<String> {
    vec![
        name.to_string(),
        f.pushes.to_string(),
        pct(f.webhook_success_pct),
        latency_text(&f.push_to_start),
        latency_text(&f.push_to_published),
        f.missing.to_string(),
    ]
}

/// The daily figures as Mermaid charts for a job summary (GitHub renders ```mermaid blocks): success
/// per day against its target, and the p95 latencies per day against theirs.
pub fn mermaid(report: &Report) -> String {
    let days: Vec<&String> = report.daily.keys().collect();
    if days.is_empty() {
        return "No push in the window: nothing to chart.\n".into();
    }
    let axis = days
        .iter()
        .map(|d| format!("\"{}\"", &d[5..]))
        .collect::<Vec<_>>()
        .join(", ");
    let series = |f: &dyn Fn(&Figures) -> f64| {
        report
            .daily
            .values()
            .map(|v| {
                let x = f(v);
                if x.fract() == 0.0 {
                    format!("{x:.0}")
                } else {
                    format!("{x:.1}")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let flat = |v: f64| vec![format!("{v}"); days.len()].join(", ");
    let t = &report.targets;
    let success = series(&|f| f.webhook_success_pct.unwrap_or(0.0));
    let published = series(&|f| f.push_to_published.p95.unwrap_or(0) as f64);
    let start = series(&|f| f.push_to_start.p95.unwrap_or(0) as f64);
    let top = report
        .daily
        .values()
        .filter_map(|f| f.push_to_published.p95)
        .max()
        .unwrap_or(0)
        .max(t.published_secs)
        * 6
        / 5;
    format!(
        "```mermaid\nxychart-beta\n  title \"Webhook first-attempt success per day (%), target > {}\"\n  x-axis [{axis}]\n  y-axis \"%\" 0 --> 100\n  bar [{success}]\n  line [{}]\n```\n\n\
         ```mermaid\nxychart-beta\n  title \"p95 per day (s): push → published (bars), push → start (lower line), target {} s (upper line)\"\n  x-axis [{axis}]\n  y-axis \"seconds\" 0 --> {top}\n  bar [{published}]\n  line [{start}]\n  line [{}]\n```\n",
        t.webhook_success_pct,
        flat(t.webhook_success_pct),
        t.published_secs,
        flat(t.published_secs as f64),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    /// 2026-11-23T00:00:00Z, a Monday.
    const MONDAY: i64 = 1_795_392_000;

    fn push(
        guid: &str,
        repo: &str,
        at: i64,
        ok: bool,
        start: Option<i64>,
        bumps: &[(&str, Option<i64>)],
    ) -> PushRecord {
        PushRecord {
            guid: guid.into(),
            repository: repo.into(),
            sha: format!("{guid:0<40}"),
            pushed_at: at,
            first_ok: ok,
            run_created_at: start.map(|s| at + s),
            bumps: bumps
                .iter()
                .map(|(p, published)| BumpRecord {
                    package: p.to_string(),
                    published_at: published.map(|s| at + s),
                })
                .collect(),
        }
    }

    /// A scripted week: 2 repositories, 10 pushes; figures worked out by hand below.
    fn week() -> Vec<PushRecord> {
        vec![
            push(
                "a1",
                "Studio/A",
                MONDAY + 3600,
                true,
                Some(3),
                &[("a@1.0.0", Some(40))],
            ),
            push(
                "a2",
                "Studio/A",
                MONDAY + DAY + 3600,
                true,
                Some(5),
                &[("a@1.1.0", Some(60))],
            ),
            push(
                "a3",
                "Studio/A",
                MONDAY + 2 * DAY,
                false,
                Some(400),
                &[("a@1.2.0", Some(700))],
            ),
            push("a4", "Studio/A", MONDAY + 3 * DAY, true, Some(4), &[]),
            push(
                "a5",
                "Studio/A",
                MONDAY + 4 * DAY,
                true,
                None,
                &[("a@1.3.0", None)],
            ),
            push(
                "b1",
                "Studio/B",
                MONDAY + 3600,
                true,
                Some(2),
                &[("b@2.0.0", Some(30)), ("c@1.0.0", Some(31))],
            ),
            push(
                "b2",
                "Studio/B",
                MONDAY + 2 * DAY + 60,
                true,
                Some(8),
                &[("b@2.1.0", Some(90))],
            ),
            push(
                "b3",
                "Studio/B",
                MONDAY + 5 * DAY,
                true,
                Some(12),
                &[("b@2.2.0", Some(200))],
            ),
            push("b4", "Studio/B", MONDAY + 6 * DAY, true, Some(6), &[]),
            // Ten minutes before "now": its bump is pending, not missed.
            push(
                "b5",
                "Studio/B",
                MONDAY + 7 * DAY - 600,
                true,
                None,
                &[("b@2.3.0", None)],
            ),
            // Before the window.
            push(
                "old",
                "Studio/A",
                MONDAY - 3600,
                false,
                None,
                &[("a@0.9.0", None)],
            ),
        ]
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        assert_eq!(percentile(&[], 95), None);
        assert_eq!(percentile(&[7], 95), Some(7));
        let v: Vec<i64> = (1..=20).collect();
        assert_eq!(percentile(&v, 50), Some(10));
        assert_eq!(percentile(&v, 95), Some(19));
        assert_eq!(percentile(&v, 100), Some(20));
    }

    #[test]
    fn a_scripted_week_gives_the_hand_computed_figures() {
        let now = MONDAY + 7 * DAY;
        let r = compute(&week(), MONDAY, now, &Targets::default());
        let o = &r.overall;
        // 10 pushes in the window, 9 answered 2xx the first time.
        assert_eq!((o.pushes, o.first_attempt_ok), (10, 9));
        assert_eq!(o.webhook_success_pct, Some(90.0));
        // Start: 3, 5, 400, 4, 2, 8, 12, 6 → sorted 2 3 4 5 6 8 12 400; p50 = 4th = 5; p95 = 8th.
        assert_eq!(
            o.push_to_start,
            Latency {
                count: 8,
                p50: Some(5),
                p95: Some(400),
                max: Some(400)
            }
        );
        // Published: 40, 60, 700, 30, 31, 90, 200 → 30 31 40 60 90 200 700; p50 = 4th = 60.
        assert_eq!(
            o.push_to_published,
            Latency {
                count: 7,
                p50: Some(60),
                p95: Some(700),
                max: Some(700)
            }
        );
        // a@1.3.0 (3 days old) is missed; b@2.3.0 (10 minutes) is not yet.
        assert_eq!(o.missing, 1);
        assert_eq!(r.missing.len(), 1);
        assert_eq!(r.missing[0].package, "a@1.3.0");
        assert_eq!(r.missing[0].age_secs, 3 * DAY);
        let a = &r.repositories["Studio/A"];
        assert_eq!((a.pushes, a.webhook_success_pct), (5, Some(80.0)));
        assert_eq!(a.push_to_published.p50, Some(60));
        let b = &r.repositories["Studio/B"];
        assert_eq!((b.pushes, b.webhook_success_pct), (5, Some(100.0)));
        // 2 6 8 12 → p50 = 2nd = 6, p95 = 4th = 12.
        assert_eq!(
            (b.push_to_start.p50, b.push_to_start.p95),
            (Some(6), Some(12))
        );
        // Seven days; Wednesday has a3 (failed first attempt) and b2.
        assert_eq!(r.daily.len(), 7);
        let wednesday = &r.daily["2026-11-25"];
        assert_eq!(
            (wednesday.pushes, wednesday.webhook_success_pct),
            (2, Some(50.0))
        );
        assert_eq!(wednesday.push_to_published.max, Some(700));
        let keys: Vec<&str> = r.breaches.iter().map(|b| b.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "webhook_success",
                "push_to_start",
                "push_to_published",
                "missing:Studio/A:a@1.3.0"
            ]
        );
        assert_eq!(
            r.breaches[3].trace,
            Some(format!("upm trace Studio/A a5{}", "0".repeat(38)))
        );
    }

    #[test]
    fn targets_are_configurable_and_exactly_99_percent_misses() {
        let records: Vec<PushRecord> = (0..100)
            .map(|i| {
                push(
                    &format!("g{i}"),
                    "Studio/A",
                    MONDAY + i,
                    i != 0,
                    Some(2),
                    &[],
                )
            })
            .collect();
        let r = compute(&records, MONDAY, MONDAY + DAY, &Targets::default());
        assert_eq!(r.overall.webhook_success_pct, Some(99.0));
        assert_eq!(r.breaches[0].key, "webhook_success");
        let lenient = Targets {
            webhook_success_pct: 98.0,
            ..Targets::default()
        };
        assert!(compute(&records, MONDAY, MONDAY + DAY, &lenient)
            .breaches
            .is_empty());
    }

    #[test]
    fn an_alert_is_sent_once_per_breach_and_once_on_recovery() {
        let b = |key: &str| Breach {
            key: key.into(),
            message: key.into(),
            trace: None,
        };
        let first = transitions(
            &AlertState::default(),
            &[b("webhook_success"), b("missing:A:x@1")],
            100,
        );
        assert_eq!(first.new.len(), 2);
        assert!(first.recovered.is_empty());
        assert!(alert_message(&first, "24h").is_some());
        // An hour later, the same breaches: nothing to say, the state keeps when they began.
        let second = transitions(
            &first.state,
            &[b("webhook_success"), b("missing:A:x@1")],
            3700,
        );
        assert!(second.new.is_empty() && second.recovered.is_empty());
        assert_eq!(alert_message(&second, "24h"), None);
        assert_eq!(second.state.open["webhook_success"], 100);
        // The bump got published: one recovery.
        let third = transitions(&second.state, &[b("webhook_success")], 7300);
        assert_eq!(third.recovered, ["missing:A:x@1"]);
        let text = alert_message(&third, "24h").unwrap().to_string();
        assert!(text.contains("x@1 from A is on the registry"), "{text}");
        // And a breach that comes back is announced again.
        let fourth = transitions(
            &third.state,
            &[b("webhook_success"), b("missing:A:x@1")],
            10_900,
        );
        assert_eq!(fourth.new.len(), 1);
    }

    #[test]
    fn history_keeps_the_newest_record_of_each_delivery_within_its_horizon() {
        let old = push("g", "Studio/A", MONDAY, true, None, &[("a@1", None)]);
        let fresh = push("g", "Studio/A", MONDAY, true, Some(3), &[("a@1", Some(50))]);
        let gone = push("x", "Studio/A", MONDAY - 40 * DAY, true, None, &[]);
        let merged = merge_history(vec![old, gone], vec![fresh.clone()], MONDAY - 35 * DAY);
        assert_eq!(merged, vec![fresh]);
    }

    #[test]
    fn the_chart_has_one_point_per_day_and_the_targets() {
        let r = compute(&week(), MONDAY, MONDAY + 7 * DAY, &Targets::default());
        let chart = mermaid(&r);
        assert_eq!(chart.matches("```mermaid").count(), 2);
        assert!(chart.contains("x-axis [\"11-23\", \"11-24\", \"11-25\", \"11-26\", \"11-27\", \"11-28\", \"11-29\"]"), "{chart}");
        assert!(
            chart.contains("bar [100, 100, 50, 100, 100, 100, 100]"),
            "{chart}"
        );
        assert!(
            chart.contains("line [300, 300, 300, 300, 300, 300, 300]"),
            "{chart}"
        );
        // p95 published on Wednesday is a3's 700 s; the axis makes room for it.
        assert!(chart.contains("y-axis \"seconds\" 0 --> 840"), "{chart}");
    }
}
