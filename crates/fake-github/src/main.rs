//! `fake-github`: the fake GitHub REST API as a process, for Node and shell tests.
//!
//! ```text
//! fake-github [--state FILE] [--dump FILE] [--port N] [--idle-timeout SECS]
//! ```
//! Prints `FAKE_GITHUB_URL=http://127.0.0.1:PORT` as its first stdout line once it accepts requests.
//! Stops on `POST /_fake/shutdown`, after `--idle-timeout` seconds without a request (default 300), or
//! when its parent process exits; then writes the final state to `--dump` if given.

use std::io::Write;
use std::time::Duration;

use upm_fake_github::{run_until_abandoned, FakeGitHub, State};

fn main() {
    if let Err(message) = run() {
        eprintln!("fake-github: {message}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    #[cfg(unix)]
    let parent = std::os::unix::process::parent_id();
    #[cfg(not(unix))]
    let parent = 0;
    let mut state_file = None;
    let mut dump_file = None;
    let mut port = 0u16;
    let mut idle = 300u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--state" => state_file = Some(value("--state")?),
            "--dump" => dump_file = Some(value("--dump")?),
            "--port" => port = value("--port")?.parse().map_err(|_| "--port: not a port")?,
            "--idle-timeout" => {
                idle = value("--idle-timeout")?
                    .parse()
                    .map_err(|_| "--idle-timeout: seconds")?
            }
            "-h" | "--help" => {
                println!(
                    "fake-github [--state FILE] [--dump FILE] [--port N] [--idle-timeout SECS]"
                );
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let state = match &state_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
            serde_json::from_str::<State>(&text).map_err(|e| format!("{path}: {e}"))?
        }
        None => State::default(),
    };
    let mut fake = FakeGitHub::start_on(state, port).map_err(|e| e.to_string())?;
    println!("FAKE_GITHUB_URL={}", fake.url());
    let _ = std::io::stdout().flush();
    run_until_abandoned(&fake, Duration::from_secs(idle), parent);
    fake.stop();
    if let Some(path) = dump_file {
        let text = serde_json::to_string_pretty(&*fake.state()).map_err(|e| e.to_string())?;
        std::fs::write(&path, text).map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(())
}
