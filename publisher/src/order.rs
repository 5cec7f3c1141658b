//! Dependencies first. The packages of one run are published in dependency order, so that when a
//! package appears on the registry, everything it needs is already there. Which dependencies are ours to
//! check is decided here too: a dependency on one of the studio's packages that is neither on the
//! registry nor published by this run would give projects a package nobody can install.

use std::collections::{BTreeMap, BTreeSet};

/// Packages that Unity's own registry serves: projects resolve them there, never from ours. Unity's
/// registry also hosts a few partners' packages under their own prefixes.
const UNITY_REGISTRY_PREFIXES: [&str; 4] =
    ["com.unity.", "com.autodesk.", "com.havok.", "com.ptc."];

pub fn is_unity_registry(name: &str) -> bool {
    UNITY_REGISTRY_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The naming scope a package belongs to (`com.studio` for `com.studio.tools.core`).
pub use upm_unity::search::scope_of as scope;

/// Must `dependency` of `dependent` exist on our registry (or in this run)? Yes for the studio's own
/// packages: those sharing the dependent's naming scope, or published by this run. Unity's registry
/// packages are resolved elsewhere, and other scopes (OpenUPM, a vendor's registry) are configured in
/// projects as other scoped registries, which the publisher cannot see.
pub fn is_ours(dependent: &str, dependency: &str, in_run: &BTreeSet<String>) -> bool {
    !is_unity_registry(dependency)
        && (in_run.contains(dependency) || scope(dependency) == scope(dependent))
}

/// The publishing plan over package names: `levels[0]` depends on no other name of the run, each later
/// level only on earlier ones; names on or behind a dependency cycle are in `cycles`, with the cycle
/// that blocks them, e.g. `com.s.a → com.s.b → com.s.a`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub levels: Vec<Vec<String>>,
    pub cycles: BTreeMap<String, String>,
}

/// `edges`: for each name of the run, the names of the run it depends on (others are ignored).
pub fn plan(edges: &BTreeMap<String, BTreeSet<String>>) -> Plan {
    let deps = |name: &str| -> BTreeSet<&str> {
        edges
            .get(name)
            .into_iter()
            .flatten()
            .filter(|d| edges.contains_key(*d) && d.as_str() != name)
            .map(String::as_str)
            .collect()
    };
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    let mut levels = Vec::new();
    loop {
        let level: Vec<String> = edges
            .keys()
            .filter(|n| !placed.contains(n.as_str()))
            .filter(|n| deps(n).iter().all(|d| placed.contains(d)))
            .cloned()
            .collect();
        if level.is_empty() {
            break;
        }
        placed.extend(
            edges
                .keys()
                .filter(|n| level.contains(n))
                .map(String::as_str),
        );
        levels.push(level);
    }
    // Whatever is left is on a cycle or depends on one: name the cycle it runs into.
    let mut cycles = BTreeMap::new();
    for name in edges.keys().filter(|n| !placed.contains(n.as_str())) {
        cycles.insert(name.clone(), find_cycle(name, &deps, &placed));
    }
    // A self-dependency is a cycle too, but `deps` hides it so the rest of the plan is sound.
    for (name, ds) in edges {
        if ds.contains(name) {
            levels.iter_mut().for_each(|l| l.retain(|n| n != name));
            cycles.insert(name.clone(), format!("{name} → {name}"));
        }
    }
    levels.retain(|l| !l.is_empty());
    Plan { levels, cycles }
}

/// Walks unplaced dependencies from `start` until a name repeats: that loop is the cycle.
fn find_cycle<'a>(
    start: &'a str,
    deps: &impl Fn(&str) -> BTreeSet<&'a str>,
    placed: &BTreeSet<&str>,
) -> String {
    let mut path: Vec<&str> = vec![start];
    loop {
        let current = *path.last().unwrap_or(&start);
        let Some(next) = deps(current).into_iter().find(|d| !placed.contains(d)) else {
            return format!("{start} depends on an unresolvable cycle");
        };
        if let Some(at) = path.iter().position(|p| *p == next) {
            let mut cycle: Vec<&str> = path[at..].to_vec();
            cycle.push(next);
            return cycle.join(" → ");
        }
        path.push(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(pairs: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
        pairs
            .iter()
            .map(|(n, ds)| (n.to_string(), ds.iter().map(|d| d.to_string()).collect()))
            .collect()
    }

    #[test]
    fn scopes_and_ownership() {
        assert_eq!(scope("com.studio.tools.core"), "com.studio");
        assert_eq!(scope("@studio/tool"), "@studio");
        assert_eq!(scope("ab"), "ab");
        let run: BTreeSet<String> = ["com.other.shared".to_string()].into();
        assert!(is_ours("com.studio.a", "com.studio.b", &run));
        assert!(is_ours("com.studio.a", "com.other.shared", &run));
        assert!(!is_ours("com.studio.a", "com.unity.ugui", &run));
        assert!(!is_ours("com.unity.custom", "com.unity.ugui", &run));
        assert!(!is_ours("com.studio.a", "com.cysharp.unitask", &run));
        assert!(!is_ours("com.studio.a", "com.autodesk.fbx", &run));
    }

    #[test]
    fn dependencies_come_first() {
        let p = plan(&graph(&[
            ("com.s.app", &["com.s.ui", "com.s.core", "com.unity.ugui"]),
            ("com.s.ui", &["com.s.core"]),
            ("com.s.core", &[]),
            ("com.s.other", &[]),
        ]));
        assert_eq!(
            p.levels,
            [
                vec!["com.s.core".to_string(), "com.s.other".to_string()],
                vec!["com.s.ui".to_string()],
                vec!["com.s.app".to_string()]
            ]
        );
        assert!(p.cycles.is_empty());
    }

    #[test]
    fn cycles_block_their_members_and_dependents() {
        let p = plan(&graph(&[
            ("com.s.a", &["com.s.b"]),
            ("com.s.b", &["com.s.c"]),
            ("com.s.c", &["com.s.a"]),
            ("com.s.user", &["com.s.a"]),
            ("com.s.free", &[]),
            ("com.s.self", &["com.s.self"]),
        ]));
        assert_eq!(p.levels, [vec!["com.s.free".to_string()]]);
        assert_eq!(p.cycles["com.s.a"], "com.s.a → com.s.b → com.s.c → com.s.a");
        assert_eq!(p.cycles["com.s.c"], "com.s.c → com.s.a → com.s.b → com.s.c");
        assert_eq!(
            p.cycles["com.s.user"],
            "com.s.a → com.s.b → com.s.c → com.s.a"
        );
        assert_eq!(p.cycles["com.s.self"], "com.s.self → com.s.self");
        assert_eq!(p.cycles.len(), 5);
    }
}
