//! registry_file: reads `config/repositories.json` in file order and edits it in place.
//!
//! Edits are textual and targeted: a status value is replaced where it stands, a new entry copies the
//! layout of the last one, and every other byte of the file (order, indentation, notes, the `$schema`
//! line) is kept, so a pull request for the change shows exactly the line that changed. After every
//! edit the result is validated with the worker's own parser (`upm_relay::registry`), the one schema
//! the worker enforces.

use upm_relay::model::RepoName;
use upm_relay::registry::{Lookup, Registry, Status};

/// One entry, as listed in the file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Listed {
    pub repository: String,
    pub status: &'static str,
    pub branch: Option<String>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
}

struct Member {
    key: String,
    key_start: usize,
    value: Span,
}

/// The registry file's text and where its entries are.
pub struct RegistryFile {
    text: String,
    registry: Registry,
}

impl RegistryFile {
    pub fn parse(text: &str) -> Result<RegistryFile, String> {
        let registry = Registry::parse(text)?;
        let file = RegistryFile {
            text: text.to_string(),
            registry,
        };
        // The layout must be readable too (it is, for anything the parser accepted).
        file.entries_spans()?;
        Ok(file)
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The entries in file order, with their status as the worker reads it.
    pub fn list(&self) -> Vec<Listed> {
        let mut listed = Vec::new();
        for span in self.entries_spans().unwrap_or_default() {
            let members = members(&self.text, span).unwrap_or_default();
            let field = |name: &str| {
                members.iter().find(|m| m.key == name).and_then(|m| {
                    serde_json::from_str::<String>(&self.text[m.value.start..m.value.end]).ok()
                })
            };
            let Some(name) = field("url").and_then(|u| RepoName::parse(&u)) else {
                continue;
            };
            let (status, branch) = match self.registry.lookup(&name) {
                Lookup::Active(entry) => (Status::Active, entry.branch.clone()),
                Lookup::Inactive(status) => (status, field("branch")),
                Lookup::NotRegistered => continue,
            };
            listed.push(Listed {
                repository: name.to_string(),
                status: status.as_str(),
                branch,
                note: field("note"),
            });
        }
        listed
    }

    pub fn find(&self, repository: &RepoName) -> Option<Listed> {
        self.list()
            .into_iter()
            .find(|l| RepoName::parse(&l.repository).as_ref() == Some(repository))
    }

    /// Adds an entry at the end, in the layout of the last one. Adding a repository that is already
    /// listed is an error naming its current status (re-running `add` changes nothing).
    pub fn add(
        &self,
        repository: &RepoName,
        status: Status,
        branch: Option<&str>,
        note: Option<&str>,
    ) -> Result<String, String> {
        if let Some(existing) = self.find(repository) {
            return Err(format!(
                "{} is already registered ({})",
                existing.repository, existing.status
            ));
        }
        let mut fields = vec![
            ("url", format!("https://github.com/{repository}")),
            ("status", status.as_str().to_string()),
        ];
        if let Some(branch) = branch {
            fields.push(("branch", branch.to_string()));
        }
        if let Some(note) = note {
            fields.push(("note", note.to_string()));
        }
        let array = self.array_span()?;
        let items = items(&self.text, array)?;
        let text = &self.text;
        let edited = match items.last() {
            Some(last) => {
                let layout = Layout::of(text, *last)?;
                // The separator the file uses between entries (`,\n    ` or `, `).
                let separator = if items.len() >= 2 {
                    let previous = items[items.len() - 2];
                    text[previous.end..last.start].to_string()
                } else {
                    format!(",{}", layout.before_item(text, *last))
                };
                let entry = layout.render(&fields);
                format!(
                    "{}{separator}{entry}{}",
                    &text[..last.end],
                    &text[last.end..]
                )
            }
            None => {
                let indent = line_indent(text, array.start);
                let item_indent = format!("{indent}  ");
                let layout = Layout {
                    multi_line: true,
                    member_indent: format!("{item_indent}  "),
                    item_indent: item_indent.clone(),
                    colon: ": ".into(),
                };
                let entry = layout.render(&fields);
                format!(
                    "{}[\n{item_indent}{entry}\n{indent}]{}",
                    &text[..array.start],
                    &text[array.end..]
                )
            }
        };
        validated(edited)
    }

    /// Sets an entry's status. Setting the status it already has returns the text unchanged.
    pub fn set_status(&self, repository: &RepoName, status: Status) -> Result<String, String> {
        self.set_field(repository, "status", status.as_str())
    }

    /// Sets (or adds) an entry's free-text note.
    pub fn set_note(&self, repository: &RepoName, note: &str) -> Result<String, String> {
        self.set_field(repository, "note", note)
    }

    fn set_field(&self, repository: &RepoName, key: &str, value: &str) -> Result<String, String> {
        let span = self.entry_span(repository)?;
        let members = members(&self.text, span)?;
        let encoded = serde_json::to_string(value).expect("a string serialises");
        let text = &self.text;
        let edited = match members.iter().find(|m| m.key == key) {
            Some(member) => format!(
                "{}{encoded}{}",
                &text[..member.value.start],
                &text[member.value.end..]
            ),
            None => {
                let last = members.last().ok_or("an entry without fields")?;
                let layout = Layout::of(text, span)?;
                let insertion = if layout.multi_line {
                    format!(
                        ",\n{}\"{key}\"{}{encoded}",
                        layout.member_indent, layout.colon
                    )
                } else {
                    format!(", \"{key}\"{}{encoded}", layout.colon)
                };
                format!(
                    "{}{insertion}{}",
                    &text[..last.value.end],
                    &text[last.value.end..]
                )
            }
        };
        validated(edited)
    }

    fn entry_span(&self, repository: &RepoName) -> Result<Span, String> {
        for span in self.entries_spans()? {
            let members = members(&self.text, span)?;
            let url = members.iter().find(|m| m.key == "url").and_then(|m| {
                serde_json::from_str::<String>(&self.text[m.value.start..m.value.end]).ok()
            });
            if url.and_then(|u| RepoName::parse(&u)).as_ref() == Some(repository) {
                return Ok(span);
            }
        }
        Err(format!("{repository} is not registered"))
    }

    fn array_span(&self) -> Result<Span, String> {
        let root = Span {
            start: skip_ws(self.text.as_bytes(), 0),
            end: self.text.len(),
        };
        let member = members(&self.text, root)?
            .into_iter()
            .find(|m| m.key == "repositories")
            .ok_or("no \"repositories\" array")?;
        let _ = member.key_start;
        Ok(member.value)
    }

    fn entries_spans(&self) -> Result<Vec<Span>, String> {
        items(&self.text, self.array_span()?)
    }
}

fn validated(text: String) -> Result<String, String> {
    Registry::parse(&text).map_err(|e| format!("the edit would make the registry invalid: {e}"))?;
    Ok(text)
}

/// How an entry is laid out, copied for new entries and fields.
struct Layout {
    multi_line: bool,
    item_indent: String,
    member_indent: String,
    colon: String,
}

impl Layout {
    fn of(text: &str, item: Span) -> Result<Layout, String> {
        let members = members(text, item)?;
        let first = members.first().ok_or("an entry without fields")?;
        let inside = &text[item.start..item.end];
        let key_end = text[first.key_start..]
            .find(':')
            .map(|i| first.key_start + i)
            .ok_or("no colon")?;
        let colon = if text[key_end + 1..].starts_with(' ') {
            ": "
        } else {
            ":"
        };
        Ok(Layout {
            multi_line: inside.contains('\n'),
            item_indent: line_indent(text, item.start),
            member_indent: line_indent(text, first.key_start),
            colon: colon.to_string(),
        })
    }

    /// The whitespace before an item on its line (for the separator after a lone first entry).
    fn before_item(&self, text: &str, item: Span) -> String {
        let line_start = text[..item.start].rfind('\n').map_or(0, |i| i + 1);
        if text[line_start..item.start].trim().is_empty() && line_start > 0 {
            format!("\n{}", self.item_indent)
        } else {
            " ".to_string()
        }
    }

    fn render(&self, fields: &[(&str, String)]) -> String {
        let rendered: Vec<String> = fields
            .iter()
            .map(|(k, v)| {
                format!(
                    "\"{k}\"{}{}",
                    self.colon,
                    serde_json::to_string(v).expect("a string serialises")
                )
            })
            .collect();
        if self.multi_line {
            let sep = format!(",\n{}", self.member_indent);
            format!(
                "{{\n{}{}\n{}}}",
                self.member_indent,
                rendered.join(&sep),
                self.item_indent
            )
        } else {
            format!("{{{}}}", rendered.join(", "))
        }
    }
}

fn line_indent(text: &str, at: usize) -> String {
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    text[line_start..at]
        .chars()
        .take_while(|c| *c == ' ' || *c == '\t')
        .collect()
}

// ---- a span-reporting JSON scanner (the text was validated by serde already) -----------------

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

fn scan_string(b: &[u8], mut i: usize) -> Result<usize, String> {
    if b.get(i) != Some(&b'"') {
        return Err(format!("expected a string at byte {i}"));
    }
    i += 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err("unterminated string".into())
}

fn scan_value(b: &[u8], i: usize) -> Result<usize, String> {
    match b.get(i) {
        Some(b'"') => scan_string(b, i),
        Some(open @ (b'{' | b'[')) => {
            let close = if *open == b'{' { b'}' } else { b']' };
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = scan_string(b, j)?;
                        continue;
                    }
                    c if c == *open => depth += 1,
                    c if c == close => {
                        depth -= 1;
                        if depth == 0 {
                            return Ok(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            Err("unbalanced brackets".into())
        }
        Some(_) => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t')
            {
                j += 1;
            }
            Ok(j)
        }
        None => Err("unexpected end".into()),
    }
}

fn members(text: &str, object: Span) -> Result<Vec<Member>, String> {
    let b = text.as_bytes();
    if b.get(object.start) != Some(&b'{') {
        return Err(format!("expected an object at byte {}", object.start));
    }
    let mut out = Vec::new();
    let mut i = skip_ws(b, object.start + 1);
    while i < b.len() && b[i] != b'}' {
        let key_start = i;
        let key_end = scan_string(b, i)?;
        let key: String =
            serde_json::from_str(&text[key_start..key_end]).map_err(|e| e.to_string())?;
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return Err(format!("expected ':' at byte {i}"));
        }
        let value_start = skip_ws(b, i + 1);
        let value_end = scan_value(b, value_start)?;
        out.push(Member {
            key,
            key_start,
            value: Span {
                start: value_start,
                end: value_end,
            },
        });
        i = skip_ws(b, value_end);
        if b.get(i) == Some(&b',') {
            i = skip_ws(b, i + 1);
        }
    }
    Ok(out)
}

fn items(text: &str, array: Span) -> Result<Vec<Span>, String> {
    let b = text.as_bytes();
    if b.get(array.start) != Some(&b'[') {
        return Err("\"repositories\" is not an array".into());
    }
    let mut out = Vec::new();
    let mut i = skip_ws(b, array.start + 1);
    while i < b.len() && b[i] != b']' {
        let end = scan_value(b, i)?;
        out.push(Span { start: i, end });
        i = skip_ws(b, end);
        if b.get(i) == Some(&b',') {
            i = skip_ws(b, i + 1);
        }
    }
    Ok(out)
}

/// Lines removed (`-`) and added (`+`) between two texts, with one unchanged line of context on each
/// side, for the plan printout.
pub fn line_diff(before: &str, after: &str) -> Vec<String> {
    let b: Vec<&str> = before.lines().collect();
    let a: Vec<&str> = after.lines().collect();
    let prefix = b.iter().zip(&a).take_while(|(x, y)| x == y).count();
    let suffix = b[prefix..]
        .iter()
        .rev()
        .zip(a[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    if prefix == b.len() && prefix == a.len() {
        return Vec::new();
    }
    let context_before = prefix.checked_sub(1).map(|i| format!(" {}", b[i]));
    let context_after = b.get(b.len() - suffix).map(|l| format!(" {l}"));
    context_before
        .into_iter()
        .chain(b[prefix..b.len() - suffix].iter().map(|l| format!("-{l}")))
        .chain(a[prefix..a.len() - suffix].iter().map(|l| format!("+{l}")))
        .chain(context_after)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The production layout: one key per line, 6-space members, 4-space entries.
    const MULTI: &str = include_str!("../tests/fixtures/registry-multi-line.json");
    /// A compact layout: one entry per line.
    const COMPACT: &str = include_str!("../tests/fixtures/registry-compact.json");

    fn name(s: &str) -> RepoName {
        RepoName::parse(s).unwrap()
    }

    /// Lines that differ between two texts: (removed, added), without the diff's context lines.
    fn changed_lines(before: &str, after: &str) -> (Vec<String>, Vec<String>) {
        let diff = line_diff(before, after);
        let marked = |mark: char| -> Vec<String> {
            diff.iter()
                .filter_map(|line| line.strip_prefix(mark))
                .map(str::to_string)
                .collect()
        };
        (marked('-'), marked('+'))
    }

    #[test]
    fn lists_in_file_order_with_the_workers_reading() {
        let file = RegistryFile::parse(MULTI).unwrap();
        let list = file.list();
        let names: Vec<&str> = list.iter().map(|l| l.repository.as_str()).collect();
        assert_eq!(names, ["Studio/Zeta", "Studio/Alpha", "Studio/Legacy"]);
        assert_eq!(list[1].branch.as_deref(), Some("release"));
        assert_eq!(list[2].status, "disabled");
        assert_eq!(list[2].note.as_deref(), Some("archived in 2025"));
    }

    #[test]
    fn a_status_change_touches_one_line() {
        let file = RegistryFile::parse(MULTI).unwrap();
        let edited = file
            .set_status(&name("studio/legacy"), Status::Active)
            .unwrap();
        let (removed, added) = changed_lines(MULTI, &edited);
        assert_eq!(removed, ["      \"status\": \"disabled\","]);
        assert_eq!(added, ["      \"status\": \"active\","]);
        // And back again: byte for byte the original.
        let back = RegistryFile::parse(&edited)
            .unwrap()
            .set_status(&name("Studio/Legacy"), Status::Disabled)
            .unwrap();
        assert_eq!(back, MULTI);
        // Setting the status it has changes nothing.
        assert_eq!(
            file.set_status(&name("Studio/Zeta"), Status::Active)
                .unwrap(),
            MULTI
        );
    }

    #[test]
    fn add_copies_the_layout_of_the_last_entry() {
        for fixture in [MULTI, COMPACT] {
            let file = RegistryFile::parse(fixture).unwrap();
            let edited = file
                .add(
                    &name("https://github.com/Studio/New.git"),
                    Status::Active,
                    Some("dev"),
                    Some("added by upm"),
                )
                .unwrap();
            assert!(edited.starts_with(&fixture[..fixture.rfind('}').unwrap() - 10]));
            let reparsed = RegistryFile::parse(&edited).unwrap();
            let last = reparsed.list().pop().unwrap();
            assert_eq!(last.repository, "Studio/New");
            assert_eq!(last.branch.as_deref(), Some("dev"));
            assert_eq!(last.note.as_deref(), Some("added by upm"));
            let (removed, added) = changed_lines(fixture, &edited);
            assert!(removed.len() <= 1, "{removed:?}");
            if fixture == MULTI {
                assert_eq!(
                    added,
                    [
                        "    },",
                        "    {",
                        "      \"url\": \"https://github.com/Studio/New\",",
                        "      \"status\": \"active\",",
                        "      \"branch\": \"dev\",",
                        "      \"note\": \"added by upm\"",
                    ]
                );
            } else {
                assert_eq!(added.len(), 2, "{added:?}");
                assert_eq!(
                    added[1],
                    r#"    {"url": "https://github.com/Studio/New", "status": "active", "branch": "dev", "note": "added by upm"}"#
                );
            }
        }
    }

    #[test]
    fn add_to_an_empty_registry_and_twice() {
        let empty = "{\n  \"$schema\": \"./schema.json\",\n  \"repositories\": []\n}\n";
        let edited = RegistryFile::parse(empty)
            .unwrap()
            .add(&name("Studio/A"), Status::Pending, None, None)
            .unwrap();
        assert_eq!(
            edited,
            "{\n  \"$schema\": \"./schema.json\",\n  \"repositories\": [\n    {\n      \"url\": \"https://github.com/Studio/A\",\n      \"status\": \"pending\"\n    }\n  ]\n}\n"
        );
        let err = RegistryFile::parse(&edited)
            .unwrap()
            .add(&name("studio/a"), Status::Active, None, None)
            .unwrap_err();
        assert!(err.contains("already registered (pending)"), "{err}");
    }

    #[test]
    fn notes_are_replaced_or_added_in_place() {
        let file = RegistryFile::parse(MULTI).unwrap();
        let edited = file
            .set_note(&name("Studio/Zeta"), "dispatcher removed: PR #4")
            .unwrap();
        let (removed, added) = changed_lines(MULTI, &edited);
        assert_eq!(removed, ["      \"status\": \"active\""]);
        assert_eq!(
            added,
            [
                "      \"status\": \"active\",",
                "      \"note\": \"dispatcher removed: PR #4\""
            ]
        );
        let edited = file
            .set_note(&name("Studio/Legacy"), "quote \" and \\ kept")
            .unwrap();
        let list = RegistryFile::parse(&edited).unwrap().list();
        assert_eq!(list[2].note.as_deref(), Some("quote \" and \\ kept"));
        let compact = RegistryFile::parse(COMPACT)
            .unwrap()
            .set_note(&name("Studio/Two"), "n")
            .unwrap();
        let (_, added) = changed_lines(COMPACT, &compact);
        assert_eq!(
            added,
            [r#"    {"url": "Studio/Two", "status": "disabled", "note": "n"},"#]
        );
    }

    #[test]
    fn unknown_repositories_and_invalid_edits_are_named() {
        let file = RegistryFile::parse(MULTI).unwrap();
        assert!(file
            .set_status(&name("Studio/Nope"), Status::Active)
            .unwrap_err()
            .contains("not registered"));
        // The worker's parser is the judge: a branch of spaces is refused, the file is not changed.
        let err = file
            .add(&name("Studio/B"), Status::Active, Some("  "), None)
            .unwrap_err();
        assert!(err.contains("would make the registry invalid"), "{err}");
    }
}
