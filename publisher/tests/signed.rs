//! Signed packages: a tarball signed by Unity's CLI (`upm pack --organization-id`) is published byte for
//! byte, checked against what the commit would pack; `require_signed` refuses an unsigned publish. Unity's
//! CLI cannot run here, so the tests build the signed tarballs themselves: the publisher's own packing of
//! the directory, with the signature files added and everything re-packed in another order and
//! compression, as another packer would.

mod support;

use std::io::{Read, Write};
use std::path::Path;

use serde_json::{json, Value};
use support::{tarball_paths, Cli, Repo, Verdaccio};

fn sha512(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha512::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The publisher's own tarball of `dir` (`upm-publisher pack --out`), as (path, bytes) entries.
fn own_entries(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("own.tgz");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_upm-publisher"))
        .args([
            "pack",
            dir.to_str().unwrap(),
            "--out",
            file.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let bytes = std::fs::read(file).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let mut content = Vec::new();
            e.read_to_end(&mut content).unwrap();
            (path, content)
        })
        .collect()
}

/// A .tgz of `entries` in reverse order, gzip level 1: other bytes than the publisher would pack.
fn repack(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in entries.iter().rev() {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        header.set_cksum();
        builder
            .append_data(&mut header, path, content.as_slice())
            .unwrap();
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(1));
    gz.write_all(&builder.into_inner().unwrap()).unwrap();
    gz.finish().unwrap()
}

fn signature_files() -> Vec<(String, Vec<u8>)> {
    vec![
        (
            "package/.attestation.p7m".into(),
            b"0\x82\x05\x1f\x06\x09*\x86H\x86\xf7\r\x01\x07\x02 (a PKCS#7 blob)".to_vec(),
        ),
        ("package/.signature".into(), b"{\"sig\":\"test\"}".to_vec()),
    ]
}

fn failed<'a>(run: &'a support::Run, name: &str) -> &'a Value {
    run.audit["failed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("{name} did not fail: {}", run.audit))
}

#[test]
fn a_signed_tarball_is_published_byte_for_byte() {
    let registry = Verdaccio::shared();
    let repo = Repo::new();
    repo.fixture(
        "unity/complete",
        "Packages/signed",
        "com.test.signed",
        "1.0.0",
        json!({}),
    );
    let sha = repo.commit("feat: a signed package");
    let mut entries = own_entries(&repo.path().join("Packages/signed"));
    entries.extend(signature_files());
    let tarballs = tempfile::tempdir().unwrap();
    let signed = repack(&entries);
    std::fs::write(tarballs.path().join("com.test.signed-1.0.0.tgz"), &signed).unwrap();
    let discord = support::FakeServer::discord();

    let run = Cli::publish(registry, &repo, &sha)
        .discord(&discord)
        .args(&["--prebuilt-tarballs", tarballs.path().to_str().unwrap()])
        .run();

    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.names("published"), ["com.test.signed@1.0.0"]);
    assert_eq!(run.audit["published"][0]["signed"], true);
    let (_, stored) = registry.stored("com.test.signed", "1.0.0");
    assert_eq!(
        sha512(&stored),
        sha512(&signed),
        "the stored bytes are the file's"
    );
    assert!(tarball_paths(&stored)
        .iter()
        .any(|p| p == "package/.attestation.p7m"));
    assert!(run.summary.contains(", signed"), "{}", run.summary);
    let posted: String = discord
        .requests()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert!(posted.contains("· latest · signed"), "{posted}");
}

#[test]
fn a_signed_tarball_that_is_not_the_commit_is_refused() {
    let registry = Verdaccio::shared();
    let repo = Repo::new();
    repo.fixture(
        "unity/complete",
        "Packages/tampered",
        "com.test.signed-tampered",
        "1.0.0",
        json!({}),
    );
    let sha = repo.commit("feat: a package");
    let mut entries = own_entries(&repo.path().join("Packages/tampered"));
    for (path, content) in entries.iter_mut() {
        if path == "package/Runtime/Spinner.cs" {
            content.extend_from_slice(b"// not in the commit\n");
        }
    }
    entries.push((
        "package/Runtime/Extra.cs".into(),
        b"class Extra {}".to_vec(),
    ));
    entries.extend(signature_files());
    let tarballs = tempfile::tempdir().unwrap();
    std::fs::write(
        tarballs.path().join("com.test.signed-tampered-1.0.0.tgz"),
        repack(&entries),
    )
    .unwrap();

    let run = Cli::publish(registry, &repo, &sha)
        .args(&["--prebuilt-tarballs", tarballs.path().to_str().unwrap()])
        .run();

    assert_eq!(run.code, 1, "{}", run.stderr);
    let f = failed(&run, "com.test.signed-tampered");
    assert_eq!(f["stage"], "validate");
    let reason = f["reason"].as_str().unwrap();
    for needle in [
        "`Runtime/Spinner.cs` differs between the prebuilt tarball and the package directory",
        "`Runtime/Extra.cs` is in the prebuilt tarball but would not be packed",
        // And it is judged as Unity would: the extra file has no .meta.
        "`Runtime/Extra.cs` has no Runtime/Extra.cs.meta",
    ] {
        assert!(reason.contains(needle), "{needle} in {reason}");
    }
    assert_eq!(
        registry.version_status("com.test.signed-tampered", "1.0.0"),
        404
    );
}

#[test]
fn require_signed_refuses_an_unsigned_publish() {
    let registry = Verdaccio::shared();
    let repo = Repo::new();
    repo.fixture(
        "unity/complete",
        "Packages/unsigned",
        "com.test.signed-required",
        "1.0.0",
        json!({}),
    );
    let sha = repo.commit("feat: unsigned");
    let config = tempfile::tempdir().unwrap();
    let registry_file = config.path().join("repositories.json");
    std::fs::write(
        &registry_file,
        json!({"repositories": [
            {"url": "https://github.com/studio/signed-only", "status": "active", "require_signed": true}
        ]})
        .to_string(),
    )
    .unwrap();

    let run = Cli::publish(registry, &repo, &sha)
        .args(&[
            "--repository",
            "studio/signed-only",
            "--registry-file",
            registry_file.to_str().unwrap(),
        ])
        .run();

    assert_eq!(run.code, 1, "{}", run.stderr);
    let f = failed(&run, "com.test.signed-required");
    assert!(
        f["reason"]
            .as_str()
            .unwrap()
            .contains("publishes signed packages only"),
        "{f}"
    );
    assert_eq!(
        registry.version_status("com.test.signed-required", "1.0.0"),
        404
    );
}
