//! zip: reads the files of an Actions artifact. GitHub serves artifacts only as zip archives;
//! `actions/upload-artifact` v4 deflates each file and may write sizes only in the central directory
//! (data descriptors), so entries are found through the central directory, not the local headers.

use std::collections::BTreeMap;
use std::io::Read;

/// The most one artifact file may expand to (an audit file is a few KB).
const MAX_FILE: u64 = 16 * 1024 * 1024;

fn u16_at(bytes: &[u8], at: usize) -> Result<u16, String> {
    bytes
        .get(at..at + 2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .ok_or_else(|| "zip: truncated".to_string())
}

fn u32_at(bytes: &[u8], at: usize) -> Result<u32, String> {
    bytes
        .get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| "zip: truncated".to_string())
}

/// Every file of the archive: name → bytes. Stored and deflated entries; the CRC is checked.
pub fn read(bytes: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, String> {
    // The end-of-central-directory record is the last thing in the file (before a comment of at most
    // 65,535 bytes).
    let end = (0..=bytes.len().saturating_sub(22))
        .rev()
        .take(22 + 65_535)
        .find(|&i| u32_at(bytes, i) == Ok(0x0605_4b50))
        .ok_or("zip: no end of central directory (not a zip archive)")?;
    let count = u16_at(bytes, end + 10)? as usize;
    let mut at = u32_at(bytes, end + 16)? as usize;
    let mut files = BTreeMap::new();
    for _ in 0..count {
        if u32_at(bytes, at)? != 0x0201_4b50 {
            return Err("zip: bad central directory entry".into());
        }
        let method = u16_at(bytes, at + 10)?;
        let crc = u32_at(bytes, at + 16)?;
        let compressed = u32_at(bytes, at + 20)? as usize;
        let size = u32_at(bytes, at + 24)? as u64;
        let name_len = u16_at(bytes, at + 28)? as usize;
        let extra_len = u16_at(bytes, at + 30)? as usize;
        let comment_len = u16_at(bytes, at + 32)? as usize;
        let local = u32_at(bytes, at + 42)? as usize;
        let name = bytes
            .get(at + 46..at + 46 + name_len)
            .ok_or("zip: truncated")?;
        let name = String::from_utf8_lossy(name).into_owned();
        at += 46 + name_len + extra_len + comment_len;
        if u32_at(bytes, local)? != 0x0403_4b50 {
            return Err(format!("zip: {name}: bad local header"));
        }
        let start =
            local + 30 + u16_at(bytes, local + 26)? as usize + u16_at(bytes, local + 28)? as usize;
        let data = bytes
            .get(start..start + compressed)
            .ok_or_else(|| format!("zip: {name}: truncated"))?;
        if size > MAX_FILE {
            return Err(format!(
                "zip: {name}: {size} bytes is more than an audit file"
            ));
        }
        let content = match method {
            0 => data.to_vec(),
            8 => {
                let mut out = Vec::new();
                flate2::read::DeflateDecoder::new(data)
                    .take(MAX_FILE)
                    .read_to_end(&mut out)
                    .map_err(|e| format!("zip: {name}: {e}"))?;
                out
            }
            other => {
                return Err(format!(
                    "zip: {name}: compression method {other} is not supported"
                ))
            }
        };
        let mut check = flate2::Crc::new();
        check.update(&content);
        if check.sum() != crc {
            return Err(format!("zip: {name}: CRC mismatch"));
        }
        files.insert(name, content);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    #[test]
    fn reads_what_the_fake_github_serves_and_refuses_damage() {
        let files: BTreeMap<String, String> = [
            (
                "upm-publish-audit.json".to_string(),
                "{\"ok\":true}".repeat(50),
            ),
            ("b.txt".to_string(), String::new()),
        ]
        .into_iter()
        .collect();
        let zip = upm_fake_github::zip::write(&files);
        let read = super::read(&zip).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(
            read["upm-publish-audit.json"],
            files["upm-publish-audit.json"].as_bytes()
        );
        assert!(super::read(b"not a zip").is_err());
        let mut damaged = zip.clone();
        damaged[40] ^= 0xff; // inside the first entry's deflated data
        assert!(super::read(&damaged).is_err());
    }
}
