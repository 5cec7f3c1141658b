//! The files of an npm tarball as Unity unpacks it: every entry lies under `package/`, and the
//! package's files are what is below it. Bad input is an error naming the entry, never a panic.

use std::collections::BTreeMap;
use std::io::Read;

/// Refuse to unpack more than this: a tarball that inflates beyond it is not a Unity package.
const MAX_UNPACKED: u64 = 2 * 1024 * 1024 * 1024;

/// The regular files of a `.tgz`, by path below `package/`, with their bytes. Directories are
/// implied; links and other entry kinds are refused (npm packs none).
pub fn files(tgz: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tgz));
    let mut out = BTreeMap::new();
    let mut total = 0u64;
    for entry in archive.entries().map_err(|e| format!("not a .tgz: {e}"))? {
        let mut entry = entry.map_err(|e| format!("a broken entry: {e}"))?;
        let path = entry
            .path()
            .map_err(|e| format!("an entry with an unreadable path: {e}"))?
            .to_string_lossy()
            .into_owned();
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            continue;
        }
        if !kind.is_file() {
            return Err(format!("{path}: not a regular file ({kind:?})"));
        }
        let Some(rel) = path.strip_prefix("package/") else {
            return Err(format!("{path}: outside `package/`"));
        };
        if rel.is_empty()
            || rel
                .split('/')
                .any(|p| p.is_empty() || p == "." || p == "..")
        {
            return Err(format!("{path}: not a plain relative path"));
        }
        total += entry.header().size().unwrap_or(0);
        if total > MAX_UNPACKED {
            return Err(format!("unpacks to more than {MAX_UNPACKED} bytes"));
        }
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| format!("{path}: {e}"))?;
        if out.insert(rel.to_string(), bytes).is_some() {
            return Err(format!("{path}: twice in the tarball"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tgz(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, bytes) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, path, *bytes).unwrap();
        }
        let tar = builder.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn files_below_package() {
        let files = files(&tgz(&[
            ("package/package.json", b"{}"),
            ("package/Runtime/A.cs", b"class A {}"),
        ]))
        .unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files["Runtime/A.cs"], b"class A {}");
    }

    #[test]
    fn bad_tarballs_are_errors_naming_the_entry() {
        assert!(files(b"not gzip").is_err());
        assert_eq!(
            files(&tgz(&[("other/x", b"")])).unwrap_err(),
            "other/x: outside `package/`"
        );
        assert_eq!(
            files(&tgz(&[("package/a", b"1"), ("package/a", b"2")])).unwrap_err(),
            "package/a: twice in the tarball"
        );
    }
}
