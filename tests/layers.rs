//! The worker's modules are layered: the list at the top of `src/lib.rs` names them bottom to top, and
//! a module names (`crate::…`, `super::…`) only modules of earlier lines, so none names a module that
//! names it back. Test code is exempt: `#[cfg(test)]` items, and the files that only they include
//! (`*_tests.rs`, `fake_world.rs`, `fixtures.rs`), may name anything.
//!
//! The sources are read as tokens (comments, strings and character literals dropped), not parsed as
//! Rust: enough to find module declarations, `#[cfg(test)]` items and paths, small enough to read.
//! A file under `src/` that no module declaration reaches fails the check rather than going unread.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

#[test]
fn no_module_names_one_that_names_it_back() {
    let krate = analyse(&read_src()).unwrap_or_else(|why| panic!("{why}"));
    if let Some(cycle) = find_cycle(&krate.names) {
        panic!(
            "modules of src/ name each other in a circle: {}\n\nthe graph (module → modules it names):\n{}",
            cycle.join(" → "),
            describe(&krate.names)
        );
    }
    // Shown with `--nocapture`: the graph the check saw.
    println!("{}", describe(&krate.names));
}

#[test]
fn modules_name_only_modules_of_lower_layers() {
    let files = read_src();
    let krate = analyse(&files).unwrap_or_else(|why| panic!("{why}"));
    let layers = layer_list(&files["lib.rs"]).unwrap_or_else(|why| panic!("{why}"));
    let problems = check_layers(&krate, &layers);
    assert!(
        problems.is_empty(),
        "the layer order at the top of src/lib.rs does not hold:\n{}",
        problems.join("\n")
    );
}

/// The check itself, on a small crate that breaks every rule once and hides names where they do not
/// count (a comment, a string, a test module, a test-only file).
#[test]
fn the_check_finds_a_planted_circle_and_ignores_what_is_not_a_name() {
    let files: BTreeMap<String, String> = [
        (
            "lib.rs",
            "//! # Layers, bottom to top\n//!\n//! - `c`: the bottom\n//! - `a`, `b`: one layer\n\
             pub mod a;\npub mod b;\npub mod c;\n#[cfg(test)]\nmod support;\n",
        ),
        (
            "a.rs",
            "use crate::{b::{X, Y}, c};\n// crate::d is only a comment\nconst S: &str = \"crate::d\";\n\
             fn f<'a>(x: &'a str) -> char { 'c' }\n\
             #[cfg(test)]\n#[path = \"a_tests.rs\"]\nmod tests;\n\
             #[cfg(test)]\nmod inline { use crate::d; }\n",
        ),
        ("a_tests.rs", "use crate::support::*;\n"),
        ("b.rs", "pub(crate) fn g() { super::a::f(\"\") }\n"),
        ("c.rs", "/* crate::a in /* a nested */ comment */\n"),
        ("support.rs", "use crate::a;\n"),
    ]
    .into_iter()
    .map(|(path, text)| (path.to_string(), text.to_string()))
    .collect();
    let krate = analyse(&files).unwrap();
    assert_eq!(krate.modules, set(&["a", "b", "c"]));
    assert_eq!(krate.test_only, set(&["a_tests.rs", "support.rs"]));
    assert_eq!(krate.names["a"], set(&["b", "c"]));
    assert_eq!(krate.names["b"], set(&["a"]));
    assert!(krate.names["c"].is_empty());
    assert_eq!(find_cycle(&krate.names).unwrap(), ["a", "b", "a"]);
    let layers = layer_list(&files["lib.rs"]).unwrap();
    assert_eq!(
        layers,
        [vec!["c".to_string()], vec!["a".into(), "b".into()]]
    );
    let problems = check_layers(&krate, &layers);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].contains("`a` names `b`"), "{problems:?}");
    assert!(problems[1].contains("`b` names `a`"), "{problems:?}");

    let mut stray = files.clone();
    stray.insert("d.rs".into(), String::new());
    assert!(analyse(&stray).unwrap_err().contains("d.rs"));
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Every `.rs` file under `src/`, by its path relative to `src/` with `/` separators.
fn read_src() -> BTreeMap<String, String> {
    fn visit(dir: &Path, prefix: &str, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if path.is_dir() {
                visit(&path, &format!("{prefix}{name}/"), out);
            } else if name.ends_with(".rs") {
                out.insert(
                    format!("{prefix}{name}"),
                    std::fs::read_to_string(&path).unwrap(),
                );
            }
        }
    }
    let mut files = BTreeMap::new();
    visit(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        "",
        &mut files,
    );
    files
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    /// `::`
    PathSep,
    Punct(char),
}

/// Rust source as tokens, without comments (nested block comments too), character literals,
/// lifetimes and numbers; a string (raw or not) is one token with its text, for `#[path = "…"]`.
fn tokenize(src: &str) -> Vec<Tok> {
    let c: Vec<char> = src.chars().collect();
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if ch == '"' {
            let mut text = String::new();
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    i += 1;
                }
                text.push(at(i));
                i += 1;
            }
            out.push(Tok::Str(text));
            i += 1;
        } else if ch == '\'' {
            // A character literal ('x', '\n', '\u{…}', '\'') is skipped; a lifetime leaves its name,
            // which is read as an identifier and names nothing.
            if at(i + 1) == '\\' {
                i += 3;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1;
            }
        } else if ch.is_alphabetic() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            if matches!(word.as_str(), "r" | "br") && matches!(at(i), '#' | '"') {
                let hashes = c[i..].iter().take_while(|&&h| h == '#').count();
                if at(i + hashes) == '"' {
                    // A raw string: it ends at a quote followed by as many hashes.
                    let body = i + hashes + 1;
                    let mut end = body;
                    while end < c.len()
                        && !(c[end] == '"' && c[end + 1..].iter().take(hashes).all(|&h| h == '#'))
                    {
                        end += 1;
                    }
                    out.push(Tok::Str(c[body..end].iter().collect()));
                    i = end + 1 + hashes;
                    continue;
                }
                // A raw identifier (`r#type`): the name follows the hash.
                i += 1;
                continue;
            }
            if word != "b" || !matches!(at(i), '"' | '\'') {
                out.push(Tok::Ident(word));
            }
        } else if ch.is_ascii_digit() {
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
        } else if ch == ':' && at(i + 1) == ':' {
            out.push(Tok::PathSep);
            i += 2;
        } else {
            out.push(Tok::Punct(ch));
            i += 1;
        }
    }
    out
}

fn is_ident(tok: Option<&Tok>, word: &str) -> bool {
    matches!(tok, Some(Tok::Ident(w)) if w == word)
}

/// The index after an attribute (`#[…]` or `#![…]`) starting at `i`, if one does.
fn attribute_end(toks: &[Tok], i: usize) -> Option<usize> {
    if toks.get(i) != Some(&Tok::Punct('#')) {
        return None;
    }
    let open = if toks.get(i + 1) == Some(&Tok::Punct('!')) {
        i + 2
    } else {
        i + 1
    };
    if toks.get(open) != Some(&Tok::Punct('[')) {
        return None;
    }
    let mut depth = 0;
    for (j, tok) in toks.iter().enumerate().skip(open) {
        match tok {
            Tok::Punct('[') => depth += 1,
            Tok::Punct(']') => {
                depth -= 1;
                if depth == 0 {
                    return Some(j + 1);
                }
            }
            _ => {}
        }
    }
    Some(toks.len())
}

/// The index after the item that starts at `i` (its attributes first): its `;`, or the `}` closing
/// its body.
fn item_end(toks: &[Tok], mut i: usize) -> usize {
    while let Some(end) = attribute_end(toks, i) {
        i = end;
    }
    let mut depth = 0i32;
    while i < toks.len() {
        match toks[i] {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']') => depth -= 1,
            Tok::Punct('}') => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            Tok::Punct(';') if depth == 0 => return i + 1,
            _ => {}
        }
        i += 1;
    }
    toks.len()
}

/// A `mod name;` declaration, with its `#[path = "…"]` if it has one.
#[derive(Debug)]
struct ModDecl {
    name: String,
    path: Option<String>,
}

/// The `mod name;` declarations among `toks` (inline `mod name { … }` blocks are part of their file).
fn mod_decls(toks: &[Tok]) -> Vec<ModDecl> {
    let mut decls = Vec::new();
    let mut path = None;
    let mut i = 0;
    while i < toks.len() {
        if let Some(end) = attribute_end(toks, i) {
            if let [Tok::Ident(name), Tok::Punct('='), Tok::Str(value), ..] = &toks[i + 2..] {
                if name == "path" {
                    path = Some(value.clone());
                }
            }
            i = end;
        } else if is_ident(toks.get(i), "pub") {
            i += 1;
            if toks.get(i) == Some(&Tok::Punct('(')) {
                while i < toks.len() && toks[i] != Tok::Punct(')') {
                    i += 1;
                }
                i += 1;
            }
        } else if let (true, Some(Tok::Ident(name)), Some(Tok::Punct(';'))) = (
            is_ident(toks.get(i), "mod"),
            toks.get(i + 1),
            toks.get(i + 2),
        ) {
            decls.push(ModDecl {
                name: name.clone(),
                path: path.take(),
            });
            i += 3;
        } else {
            path = None;
            i += 1;
        }
    }
    decls
}

/// Splits `toks` into what is compiled outside tests and the items behind `#[cfg(test)]`.
fn split_test_items(toks: &[Tok]) -> (Vec<Tok>, Vec<Tok>) {
    let cfg_test = [
        Tok::Ident("cfg".into()),
        Tok::Punct('('),
        Tok::Ident("test".into()),
        Tok::Punct(')'),
    ];
    let (mut kept, mut test) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < toks.len() {
        match attribute_end(toks, i) {
            Some(end) if toks[i + 2..end - 1] == cfg_test => {
                let end = item_end(toks, end);
                test.extend_from_slice(&toks[i..end]);
                i = end;
            }
            _ => {
                kept.push(toks[i].clone());
                i += 1;
            }
        }
    }
    (kept, test)
}

/// The file a module declaration in `parent` includes, as rustc finds it.
fn mod_file(files: &BTreeMap<String, String>, parent: &str, decl: &ModDecl) -> String {
    let (dir, file) = match parent.rsplit_once('/') {
        Some((dir, file)) => (format!("{dir}/"), file),
        None => (String::new(), parent),
    };
    if let Some(path) = &decl.path {
        return format!("{dir}{path}");
    }
    let stem = file.trim_end_matches(".rs");
    let base = if matches!(stem, "lib" | "main" | "mod") {
        dir
    } else {
        format!("{dir}{stem}/")
    };
    let flat = format!("{base}{}.rs", decl.name);
    if files.contains_key(&flat) {
        flat
    } else {
        format!("{base}{}/mod.rs", decl.name)
    }
}

/// The first segment of each path of a `use` group (`{a::{X, Y}, b}` → a, b) starting at `i`, or the
/// one segment there.
fn first_segments(toks: &[Tok], i: usize) -> Vec<String> {
    match toks.get(i) {
        Some(Tok::Ident(name)) => vec![name.clone()],
        Some(Tok::Punct('{')) => {
            let mut names = Vec::new();
            let mut depth = 0;
            let mut at_start = true;
            for tok in &toks[i..] {
                match tok {
                    Tok::Punct('{') => {
                        depth += 1;
                        at_start = depth == 1;
                    }
                    Tok::Punct('}') => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    Tok::Punct(',') if depth == 1 => at_start = true,
                    Tok::Ident(name) if at_start && depth == 1 => {
                        if name != "self" {
                            names.push(name.clone());
                        }
                        at_start = false;
                    }
                    _ => at_start = false,
                }
            }
            names
        }
        _ => Vec::new(),
    }
}

/// The crate's top-level modules that `toks` (code of the module at `module_path`) names.
fn named_modules(toks: &[Tok], module_path: &[String]) -> Vec<String> {
    let mut names = Vec::new();
    for i in 0..toks.len() {
        let starts_path = i == 0 || !matches!(toks[i - 1], Tok::PathSep | Tok::Punct('$'));
        if !starts_path || toks.get(i + 1) != Some(&Tok::PathSep) {
            continue;
        }
        if is_ident(toks.get(i), "crate") {
            names.extend(first_segments(toks, i + 2));
        } else if is_ident(toks.get(i), "super") {
            let mut j = i;
            let mut up = 0;
            while is_ident(toks.get(j), "super") && toks.get(j + 1) == Some(&Tok::PathSep) {
                up += 1;
                j += 2;
            }
            match module_path.len().checked_sub(up) {
                Some(0) => names.extend(first_segments(toks, j)),
                Some(_) => names.push(module_path[0].clone()),
                None => names.push(format!(
                    "(super:: beyond the crate root in {module_path:?})"
                )),
            }
        }
    }
    names
}

#[derive(Debug, Default)]
struct Crate {
    /// The top-level modules `lib.rs` declares outside test code.
    modules: BTreeSet<String>,
    /// Each module with the modules it names outside test code (not itself).
    names: BTreeMap<String, BTreeSet<String>>,
    /// Files that only test code includes.
    test_only: BTreeSet<String>,
}

fn analyse(files: &BTreeMap<String, String>) -> Result<Crate, String> {
    let mut krate = Crate::default();
    let mut seen = BTreeSet::new();
    let mut unplaced = Vec::new();
    walk(
        files,
        "lib.rs",
        &[],
        false,
        &mut krate,
        &mut seen,
        &mut unplaced,
    )?;
    let unread: Vec<&String> = files.keys().filter(|f| !seen.contains(*f)).collect();
    if !unread.is_empty() {
        return Err(format!(
            "no module declaration reaches {unread:?}: declare them (with #[path] if need be) so the check can read them"
        ));
    }
    for (from, name) in unplaced {
        if !krate.modules.contains(&name) {
            return Err(format!(
                "`{from}` names `{name}`, which is not a module declared in src/lib.rs"
            ));
        }
        if name != from {
            krate.names.get_mut(&from).unwrap().insert(name);
        }
    }
    Ok(krate)
}

fn walk(
    files: &BTreeMap<String, String>,
    file: &str,
    module_path: &[String],
    test_only: bool,
    krate: &mut Crate,
    seen: &mut BTreeSet<String>,
    names: &mut Vec<(String, String)>,
) -> Result<(), String> {
    let source = files
        .get(file)
        .ok_or_else(|| format!("{file} is declared as a module, but there is no such file"))?;
    if !seen.insert(file.to_string()) {
        return Err(format!("{file} is included twice"));
    }
    let (kept, test) = split_test_items(&tokenize(source));
    let children = mod_decls(&kept)
        .into_iter()
        .map(|decl| (decl, test_only))
        .chain(mod_decls(&test).into_iter().map(|decl| (decl, true)));
    for (decl, child_test_only) in children {
        if module_path.is_empty() && !child_test_only {
            krate.modules.insert(decl.name.clone());
            krate.names.entry(decl.name.clone()).or_default();
        }
        let mut child_path = module_path.to_vec();
        child_path.push(decl.name.clone());
        let child = mod_file(files, file, &decl);
        walk(
            files,
            &child,
            &child_path,
            child_test_only,
            krate,
            seen,
            names,
        )?;
    }
    if test_only {
        krate.test_only.insert(file.to_string());
    } else if let Some(module) = module_path.first() {
        for name in named_modules(&kept, module_path) {
            names.push((module.clone(), name));
        }
    }
    Ok(())
}

/// A circle in the graph, as the path that closes it (`a → b → a`), if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit<'g>(
        node: &'g str,
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<&'g str>,
        done: &mut BTreeSet<&'g str>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| *n == node) {
            let mut cycle: Vec<String> = stack[at..].iter().map(|n| n.to_string()).collect();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node);
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node);
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

/// The layers listed at the top of `lib.rs`, bottom first: the bullet lines after the
/// `# Layers, bottom to top` heading, each naming its modules in backticks before its first colon.
fn layer_list(lib_rs: &str) -> Result<Vec<Vec<String>>, String> {
    let doc: Vec<&str> = lib_rs
        .lines()
        .map_while(|line| line.strip_prefix("//!"))
        .collect();
    let heading = doc
        .iter()
        .position(|line| line.trim() == "# Layers, bottom to top")
        .ok_or(
            "src/lib.rs has no `//! # Layers, bottom to top` section in its opening doc comment",
        )?;
    let mut layers = Vec::new();
    for line in &doc[heading + 1..] {
        if let Some(item) = line.strip_prefix(" - ") {
            let mut head = String::new();
            let mut quoted = false;
            for ch in item.chars() {
                match ch {
                    '`' => quoted = !quoted,
                    ':' if !quoted => break,
                    _ => {}
                }
                head.push(ch);
            }
            let modules: Vec<String> = head
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect();
            if modules.is_empty() {
                return Err(format!(
                    "a layer line names no module in backticks: `{line}`"
                ));
            }
            layers.push(modules);
        } else if !(layers.is_empty() || line.starts_with("   ")) {
            // The list ends at the first line that is neither an item nor an item's continuation.
            break;
        }
    }
    Ok(layers)
}

/// What breaks the layer order: a module missing from the list or listed twice, a listed module
/// that does not exist, and a module that names one of its own layer or a later one.
fn check_layers(krate: &Crate, layers: &[Vec<String>]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut layer_of = BTreeMap::new();
    for (layer, modules) in layers.iter().enumerate() {
        for module in modules {
            if layer_of.insert(module.clone(), layer).is_some() {
                problems.push(format!("`{module}` is listed twice"));
            }
            if !krate.modules.contains(module) {
                problems.push(format!(
                    "`{module}` is listed but src/lib.rs declares no such module"
                ));
            }
        }
    }
    for module in &krate.modules {
        if !layer_of.contains_key(module) {
            problems.push(format!("`{module}` is missing from the layer list"));
        }
    }
    for (from, names) in &krate.names {
        for to in names {
            if let (Some(a), Some(b)) = (layer_of.get(from), layer_of.get(to)) {
                if b >= a {
                    problems.push(format!(
                        "`{from}` names `{to}`, which is not below it (line {} of the list names line {})",
                        a + 1,
                        b + 1
                    ));
                }
            }
        }
    }
    problems
}

/// The graph, one module per line.
fn describe(graph: &BTreeMap<String, BTreeSet<String>>) -> String {
    let mut text = String::new();
    for (module, names) in graph {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let _ = writeln!(text, "  {module} → {}", names.join(", "));
    }
    text
}
