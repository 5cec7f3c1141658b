//! Parity with npm: for every package tree in tests/fixtures/pack, the files `upm-publisher pack` puts in
//! the tarball equal those of `npm pack --dry-run --json` from the system npm, except for the deliberate
//! differences listed, tree by tree, in tests/fixtures/pack/DIFFERENCES.json (each must show up exactly:
//! a listed difference that disappears fails the test too). Our tarball may not be more than 1 % larger
//! than npm's, on the fixtures and on a larger generated tree (entries go in npm's order; zlib-rs at
//! level 9 sometimes compresses a little better than node's zlib, which is fine); the numbers are printed
//! (`cargo test -p upm-publisher --test parity -- --nocapture`).
//!
//! Skipped, with a message, when no `npm` is on PATH (set UPM_PARITY_NPM to use another one).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pack")
}

/// The system npm, or `None` (with the reason printed) when there is none.
fn npm() -> Option<PathBuf> {
    let candidate = std::env::var_os("UPM_PARITY_NPM")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::split_paths(&std::env::var_os("PATH")?)
                .map(|dir| dir.join("npm"))
                .find(|p| p.is_file())
        });
    let Some(npm) = candidate else {
        eprintln!("SKIPPED parity with npm: no `npm` on PATH (install Node.js/npm, or set UPM_PARITY_NPM)");
        return None;
    };
    let version = Command::new(&npm).arg("--version").output().ok()?;
    if !version.status.success() {
        eprintln!(
            "SKIPPED parity with npm: `{} --version` failed",
            npm.display()
        );
        return None;
    }
    eprintln!(
        "parity: npm {} at {}",
        String::from_utf8_lossy(&version.stdout).trim(),
        npm.display()
    );
    Some(npm)
}

/// Copies a fixture tree into a fresh directory. Names holding `__STAR__` get a real `*`: such a name
/// cannot be committed (Windows checkouts would break), but npm must be shown one.
fn materialise(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for entry in fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().replace("__STAR__", "*");
        let target = dst.join(name);
        if entry.file_type().unwrap().is_dir() {
            materialise(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

struct Packed {
    files: BTreeSet<String>,
    size: u64,
}

fn parse(json: &[u8], who: &str) -> Packed {
    let value: Value = serde_json::from_slice(json)
        .unwrap_or_else(|e| panic!("{who}: {e}: {}", String::from_utf8_lossy(json)));
    let first = &value[0];
    Packed {
        files: first["files"]
            .as_array()
            .unwrap_or_else(|| panic!("{who}: no files in {first}"))
            .iter()
            .map(|f| f["path"].as_str().unwrap().to_string())
            .collect(),
        size: first["size"].as_u64().unwrap(),
    }
}

fn npm_pack(npm: &Path, dir: &Path) -> Packed {
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new(npm)
        .args(["pack", "--dry-run", "--json", "--ignore-scripts"])
        .current_dir(dir)
        // Nothing from the developer's npm setup: an own cache, no update check, no user .npmrc.
        .env("npm_config_cache", cache.path())
        .env("npm_config_userconfig", cache.path().join("npmrc"))
        .env("npm_config_update_notifier", "false")
        .env("npm_config_loglevel", "error")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "npm pack in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    parse(&out.stdout, "npm")
}

fn our_pack(dir: &Path) -> Packed {
    let out = Command::new(env!("CARGO_BIN_EXE_upm-publisher"))
        .arg("pack")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "upm-publisher pack {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    parse(&out.stdout, "upm-publisher")
}

/// tree → (files only npm packs, files only we pack), from DIFFERENCES.json.
fn deliberate() -> BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> {
    let text = fs::read_to_string(fixtures().join("DIFFERENCES.json")).unwrap();
    let value: Value = serde_json::from_str(&text).unwrap();
    let list = |v: &Value| -> BTreeSet<String> {
        v.as_array()
            .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    value["trees"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(tree, d)| {
            assert!(
                d["why"].as_str().is_some_and(|w| !w.is_empty()),
                "{tree}: say why"
            );
            (tree.clone(), (list(&d["npm_only"]), list(&d["ours_only"])))
        })
        .collect()
}

/// How much larger than npm's our tarball may be.
const MAX_SIZE_EXCESS: f64 = 0.01;

#[test]
fn the_tarball_holds_exactly_what_npm_packs() {
    let Some(npm) = npm() else { return };
    let expected = deliberate();
    let mut trees: Vec<PathBuf> = fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    trees.sort();
    assert!(trees.len() >= 7, "fixture trees missing: {trees:?}");
    for tree in expected.keys() {
        assert!(
            fixtures().join(tree).is_dir(),
            "DIFFERENCES.json names {tree}, which is not a fixture tree"
        );
    }

    let mut compared = 0;
    let mut failures = Vec::new();
    eprintln!(
        "{:<26} {:>6} {:>6} {:>9} {:>9} {:>7}",
        "tree", "npm", "ours", "npm B", "ours B", "ratio"
    );
    for tree in &trees {
        let name = tree.file_name().unwrap().to_string_lossy().into_owned();
        let work = tempfile::tempdir().unwrap();
        let dir = work.path().join("package");
        materialise(tree, &dir);
        let theirs = npm_pack(&npm, &dir);
        let ours = our_pack(&dir);
        compared += theirs.files.len().max(ours.files.len());
        let npm_only: BTreeSet<String> = theirs.files.difference(&ours.files).cloned().collect();
        let ours_only: BTreeSet<String> = ours.files.difference(&theirs.files).cloned().collect();
        let (want_npm_only, want_ours_only) = expected.get(&name).cloned().unwrap_or_default();
        if npm_only != want_npm_only || ours_only != want_ours_only {
            failures.push(format!(
                "{name}: only npm packs {npm_only:?} (documented: {want_npm_only:?}); \
                 only we pack {ours_only:?} (documented: {want_ours_only:?})"
            ));
        }
        let ratio = ours.size as f64 / theirs.size as f64;
        eprintln!(
            "{name:<26} {:>6} {:>6} {:>9} {:>9} {:>7.4}",
            theirs.files.len(),
            ours.files.len(),
            theirs.size,
            ours.size,
            ratio
        );
        // Sizes are comparable only when the contents are the same.
        if npm_only.is_empty() && ours_only.is_empty() && ratio > 1.0 + MAX_SIZE_EXCESS {
            failures.push(format!(
                "{name}: our tarball is {ours} bytes, npm's {theirs} ({ratio:.4})",
                ours = ours.size,
                theirs = theirs.size
            ));
        }
    }
    eprintln!("parity: {} trees, {compared} files compared", trees.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A bigger, realistic package: 60 folders of scripts, prefabs and their .meta files, where the entry
/// order decides how much gzip can share between similar files.
fn generate_large_tree(dir: &Path) -> usize {
    let write = |rel: &str, text: &str| {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    };
    write(
        "package.json",
        r#"{"name":"com.fixture.large","version":"1.0.0","displayName":"Large","unity":"2022.3"}"#,
    );
    let mut files = 1;
    for folder in 0..60 {
        let area = ["Runtime", "Editor", "Tests"][folder % 3];
        let dir_rel = format!("{area}/Feature{folder:02}");
        write(
            &format!("{dir_rel}.meta"),
            &format!(
                "fileFormatVersion: 2\nguid: {:032x}\nfolderAsset: yes\n",
                folder * 7919
            ),
        );
        files += 1;
        for item in 0..6 {
            let guid = format!("{:032x}", (folder * 100 + item) * 104_729);
            let class = format!("Feature{folder:02}Item{item}");
            write(
                &format!("{dir_rel}/{class}.cs"),
                &format!(
                    "using UnityEngine;\n\nnamespace Studio.Feature{folder:02}\n{{\n    public sealed class {class} : MonoBehaviour\n    {{\n        [SerializeField] private int count = {item};\n        private void Awake() => Debug.Log(\"{class} \" + count);\n    }}\n}}\n"
                ),
            );
            write(
                &format!("{dir_rel}/{class}.cs.meta"),
                &format!("fileFormatVersion: 2\nguid: {guid}\nMonoImporter:\n  externalObjects: {{}}\n  serializedVersion: 2\n  defaultReferences: []\n  executionOrder: 0\n  icon: {{instanceID: 0}}\n  userData: \n  assetBundleName: \n  assetBundleVariant: \n"),
            );
            write(
                &format!("{dir_rel}/{class}.prefab"),
                &format!("%YAML 1.1\n%TAG !u! tag:unity3d.com,2011:\n--- !u!1 &{item}{folder}\nGameObject:\n  m_Name: {class}\n  m_IsActive: 1\n"),
            );
            write(
                &format!("{dir_rel}/{class}.prefab.meta"),
                &format!("fileFormatVersion: 2\nguid: {guid}0\nPrefabImporter:\n  externalObjects: {{}}\n  userData: \n  assetBundleName: \n  assetBundleVariant: \n"),
            );
            files += 4;
        }
    }
    files
}

#[test]
fn a_large_package_compresses_like_npms() {
    let Some(npm) = npm() else { return };
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("package");
    let generated = generate_large_tree(&dir);
    let theirs = npm_pack(&npm, &dir);
    let ours = our_pack(&dir);
    assert_eq!(theirs.files, ours.files);
    assert_eq!(ours.files.len(), generated);
    let ratio = ours.size as f64 / theirs.size as f64;
    eprintln!(
        "parity: generated tree of {generated} files: npm {} B, ours {} B, ratio {ratio:.4}",
        theirs.size, ours.size
    );
    assert!(
        ratio <= 1.0 + MAX_SIZE_EXCESS,
        "our tarball is {} bytes, npm's {} ({ratio:.4})",
        ours.size,
        theirs.size
    );
}

/// A small deterministic generator (xorshift64*), so a failing random tree can be rebuilt from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    /// `k` distinct items of `items`.
    fn pick<'a>(&mut self, items: &[&'a str], k: usize) -> Vec<&'a str> {
        let mut pool = items.to_vec();
        let mut out = Vec::new();
        while out.len() < k && !pool.is_empty() {
            out.push(pool.remove(self.below(pool.len())));
        }
        out
    }
}

const DIRS: [&str; 8] = [
    "Runtime", "Editor", "Tests", "Docs~", "Samples~", "Sub", "lib", "Plugins",
];
const FILES: [&str; 14] = [
    "A.cs",
    "b.CS",
    "readme.md",
    "README.txt",
    "LICENSE",
    "notes.txt",
    "x.js",
    "Data.json",
    ".hidden",
    "Thing.asmdef",
    "CHANGELOG.md",
    "license.md.meta",
    "x.orig",
    "y.tmp",
];
/// Ignore lines and `files` entries, mixing case, globs, anchors, blanks and comments. No line
/// re-includes something inside an excluded directory (a documented difference).
const IGNORE_LINES: [&str; 25] = [
    "*.cs",
    "!A.cs",
    "!*.meta",
    "Editor/*.cs",
    "**/Sub",
    "*~",
    "Samples~/**/*.cs",
    "Tests/",
    "tests",
    "*.txt",
    "*.TXT",
    "  Docs~/ ",
    "/lib",
    "Sub/",
    "*.md",
    "!README.txt",
    "x.js",
    "*.meta",
    "Runtime/b.cs",
    "**/*.json",
    "Editor",
    "#c",
    "/A.cs",
    "Plugins/*",
    "",
];
const FILES_ENTRIES: [&str; 19] = [
    "**/*.cs",
    "Editor/**/*.meta",
    "*.json",
    "Runtime/Sub",
    "LICENSE",
    "!*.txt",
    "Runtime",
    "runtime",
    "Runtime/",
    "Editor/*",
    "*.md",
    "lib/x.js",
    "Samples~",
    "Tests/A.cs",
    "!Runtime/b.CS",
    "Sub/**",
    "README.txt",
    "docs~",
    "*.meta",
];

/// One random package tree from `seed`: a few folders of files (some with .meta), maybe nested, with
/// `files`, a root `.npmignore` or `.gitignore`, and sometimes a nested `.npmignore`.
fn random_tree(seed: u64, dir: &Path) -> String {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let write = |rel: &str| {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, rel).unwrap();
    };
    for file in rng.pick(&FILES, 6) {
        write(file);
    }
    for folder in rng.pick(&DIRS, 4) {
        for file in rng.pick(&FILES, 4) {
            write(&format!("{folder}/{file}"));
            if rng.chance(50) {
                write(&format!("{folder}/{file}.meta"));
            }
        }
        if rng.chance(40) {
            write(&format!("{folder}.meta"));
        }
        if rng.chance(30) {
            let inner = DIRS[rng.below(DIRS.len())];
            for file in rng.pick(&FILES, 2) {
                write(&format!("{folder}/{inner}/{file}"));
            }
        }
    }
    let mut manifest = serde_json::json!({"name": "x", "version": "1.0.0"});
    let mode = ["npmignore", "files", "gitignore", "none"][rng.below(4)];
    if mode == "files" {
        manifest["files"] = serde_json::json!(rng.pick(&FILES_ENTRIES, 4));
    }
    let ignore = rng.pick(&IGNORE_LINES, 5).join("\n") + "\n";
    match mode {
        "npmignore" | "files" => fs::write(dir.join(".npmignore"), &ignore).unwrap(),
        "gitignore" => fs::write(dir.join(".gitignore"), &ignore).unwrap(),
        _ => {}
    }
    if rng.chance(30) {
        let folder = dir.join(DIRS[rng.below(DIRS.len())]);
        if folder.is_dir() {
            let line = ["*.meta", "*.txt", "A.cs"][rng.below(3)];
            fs::write(folder.join(".npmignore"), format!("{line}\n")).unwrap();
        }
    }
    fs::write(dir.join("package.json"), manifest.to_string()).unwrap();
    format!("{mode}, files {}, ignore {ignore:?}", manifest["files"])
}

/// Random trees, differential against npm. The test command runs a short smoke
/// (UPM_PARITY_RANDOM_TREES, 12 by default); a longer campaign is the same test with a larger count,
/// e.g. `UPM_PARITY_RANDOM_TREES=300 cargo test -p upm-publisher --test parity random -- --nocapture`.
#[test]
fn random_trees_pack_like_npm() {
    let Some(npm) = npm() else { return };
    let count: u64 = std::env::var("UPM_PARITY_RANDOM_TREES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let first: u64 = std::env::var("UPM_PARITY_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let mut failures = Vec::new();
    let mut compared = 0;
    for seed in first..first + count {
        let work = tempfile::tempdir().unwrap();
        let dir = work.path().join("package");
        fs::create_dir_all(&dir).unwrap();
        let shape = random_tree(seed, &dir);
        let theirs = npm_pack(&npm, &dir);
        let ours = our_pack(&dir);
        compared += theirs.files.len();
        if theirs.files != ours.files {
            failures.push(format!(
                "seed {seed} ({shape}): only npm {:?}, only ours {:?}",
                theirs.files.difference(&ours.files).collect::<Vec<_>>(),
                ours.files.difference(&theirs.files).collect::<Vec<_>>()
            ));
        }
    }
    eprintln!(
        "parity: {count} random trees (seeds {first}..{}), {compared} npm files compared, {} differ",
        first + count,
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
