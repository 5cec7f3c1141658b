//! Signed packages (Unity 6.3+): Unity checks a signature on every registry tarball, and newer editors
//! can refuse unsigned ones. Unity's CLI signs while it packs (`upm pack <dir> --organization-id <id>`,
//! Unity manual "Pack and sign a package with Unity Package Manager CLI"), so a signed package must be
//! published as THAT tarball, byte for byte: repacking would drop or break the signature. The
//! workflow runs `upm pack` and gives the publisher the tarballs; here is what makes one acceptable.
//!
//! A signed tarball holds `package/.attestation.p7m` (the Validation Suite's PVP-28-3 also requires a
//! `.signature`, `Lib/PvpXray/PathVerifier.cs`), and otherwise exactly the files the publisher would
//! pack from the directory, with the same bytes: what Unity verifies is then what the commit holds.

use std::collections::BTreeMap;

use crate::assets::PackageFiles;
use crate::model::Problem;

/// The files signing adds at the package root.
pub const SIGNATURE_FILES: [&str; 2] = [".attestation.p7m", ".signature"];
/// Without it a tarball is not signed (Unity 6.3's check reads it).
const ATTESTATION: &str = ".attestation.p7m";

/// The file `upm pack` writes for a package: `<name>-<version>.tgz`.
pub fn tarball_file_name(name: &str, version: &str) -> String {
    format!(
        "{}-{version}.tgz",
        name.replace('/', "-").trim_start_matches('@')
    )
}

/// Compares a prebuilt tarball's files (`tarball`, paths below `package/`) with the directory's packed
/// `files`, read through `dir`: the same list plus the signature files, the same bytes. Every
/// difference is a problem naming its path.
pub fn check_prebuilt(
    files: &[String],
    dir: &impl PackageFiles,
    tarball: &BTreeMap<String, Vec<u8>>,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let problem = |field: &str, reason: &str| Problem {
        field: field.to_string(),
        reason: reason.to_string(),
    };
    if !tarball.contains_key(ATTESTATION) {
        problems.push(problem(
            ATTESTATION,
            "is not in the prebuilt tarball: it is not signed (sign it with `upm pack \
             --organization-id`)",
        ));
    }
    for file in files {
        match tarball.get(file) {
            None => problems.push(problem(
                file,
                "is packed from the package directory but missing from the prebuilt tarball",
            )),
            Some(bytes) => match dir.read(file) {
                Ok(own) if own == *bytes => {}
                Ok(_) => problems.push(problem(
                    file,
                    "differs between the prebuilt tarball and the package directory at this commit",
                )),
                Err(e) => problems.push(problem(file, &format!("cannot be read: {e}"))),
            },
        }
    }
    for extra in tarball.keys() {
        if !SIGNATURE_FILES.contains(&extra.as_str()) && !files.contains(extra) {
            problems.push(problem(
                extra,
                "is in the prebuilt tarball but would not be packed from the package directory",
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    fn fields(problems: &[Problem]) -> Vec<&str> {
        problems.iter().map(|p| p.field.as_str()).collect()
    }

    #[test]
    fn a_signed_tarball_of_the_same_files_is_accepted() {
        let dir = map(&[("package.json", "{}"), ("Runtime/A.cs", "a")]);
        let files: Vec<String> = dir.keys().cloned().collect();
        let tarball = map(&[
            ("package.json", "{}"),
            ("Runtime/A.cs", "a"),
            (".attestation.p7m", "sig"),
            (".signature", "sig"),
        ]);
        assert!(check_prebuilt(&files, &dir, &tarball).is_empty());
    }

    #[test]
    fn every_difference_is_named() {
        let dir = map(&[
            ("package.json", "{}"),
            ("Runtime/A.cs", "a"),
            ("Runtime/B.cs", "b"),
        ]);
        let files: Vec<String> = dir.keys().cloned().collect();
        let tarball = map(&[
            ("package.json", "{}"),
            ("Runtime/A.cs", "changed"),
            ("Runtime/Extra.cs", "x"),
        ]);
        let problems = check_prebuilt(&files, &dir, &tarball);
        assert_eq!(
            fields(&problems),
            [
                ".attestation.p7m",
                "Runtime/A.cs",
                "Runtime/B.cs",
                "Runtime/Extra.cs"
            ]
        );
        assert!(problems[1].reason.contains("differs"));
        assert!(problems[2]
            .reason
            .contains("missing from the prebuilt tarball"));
    }

    #[test]
    fn tarball_file_names() {
        assert_eq!(tarball_file_name("com.s.a", "1.0.0"), "com.s.a-1.0.0.tgz");
        assert_eq!(tarball_file_name("@s/a", "1.0.0"), "s-a-1.0.0.tgz");
    }
}
