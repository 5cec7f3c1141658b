//! The `fake-github` binary as Node and shell tests use it: it prints its URL, serves a state file,
//! records requests, dumps its state on exit, and stops by itself.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn start(args: &[&str]) -> (std::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fake-github"))
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("FAKE_GITHUB_URL=")
        .expect("the URL line")
        .to_string();
    (child, url)
}

fn wait_for_exit(child: &mut std::process::Child, within: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < within {
        if child.try_wait().unwrap().is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    false
}

#[test]
fn serves_a_state_file_records_and_dumps_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let dump = dir.path().join("dump.json");
    let mut seed = upm_fake_github::State::default();
    seed.add_repo("Studio/Core", "main");
    std::fs::write(&state, serde_json::to_string(&seed).unwrap()).unwrap();
    let (mut child, url) = start(&[
        "--state",
        state.to_str().unwrap(),
        "--dump",
        dump.to_str().unwrap(),
    ]);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let text = agent
        .get(format!("{url}/repos/studio/core"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let repo: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(repo["default_branch"], "main");
    let status = agent
        .post(format!("{url}/repos/Studio/Core/dispatches"))
        .send(r#"{"event_type":"package_publish","client_payload":{"package_path":""}}"#)
        .unwrap()
        .status();
    assert_eq!(status, 204);
    let fault = agent
        .post(format!("{url}/_fake/faults"))
        .send(r#"{"status": 503, "times": 1}"#)
        .unwrap();
    assert_eq!(fault.status(), 204);
    assert_eq!(
        agent
            .get(format!("{url}/repos/Studio/Core"))
            .call()
            .unwrap()
            .status(),
        503
    );
    agent
        .post(format!("{url}/_fake/shutdown"))
        .send("")
        .unwrap();
    assert!(wait_for_exit(&mut child, Duration::from_secs(5)));
    let dumped: upm_fake_github::State =
        serde_json::from_str(&std::fs::read_to_string(&dump).unwrap()).unwrap();
    assert_eq!(dumped.dispatches.len(), 1);
    assert_eq!(dumped.dispatches[0].client_payload["package_path"], "");
    let statuses: Vec<u16> = dumped.requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 204, 503]);
}

#[test]
fn stops_by_itself_when_idle() {
    let (mut child, _url) = start(&["--idle-timeout", "1"]);
    assert!(
        wait_for_exit(&mut child, Duration::from_secs(5)),
        "still running after the idle timeout"
    );
}

#[test]
fn stops_when_its_parent_dies() {
    // A shell starts the fake in the background and exits at once: the fake is orphaned and must go.
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "\"{}\" --idle-timeout 600 >/dev/null & echo $! > \"{}\"; sleep 0.3",
            env!("CARGO_BIN_EXE_fake-github"),
            pid_file.display()
        ))
        .status()
        .unwrap();
    assert!(status.success());
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .to_string();
    let started = Instant::now();
    while std::path::Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
    {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the orphaned fake {pid} is still running"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
