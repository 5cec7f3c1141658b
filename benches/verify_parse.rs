//! The native floor for the worker's CPU work on a delivery: HMAC-SHA256 over the raw body (`verify`) and
//! turning it into a typed push (`classify`), on a 10 KB and a 1 MB push that publishes. In workerd the
//! same code runs as wasm, so these numbers bound what the worker can do, not what it does.
//!
//!   cargo bench --bench verify_parse      (scripts/bench-worker.sh runs it after the workerd numbers)
//!
//! MB/s counts 10^6 bytes of request body per second.

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use upm_relay::classify::{classify, Event};
use upm_relay::filter::{candidate, ChangedPackages, LoopGuard};
use upm_relay::verify::{sign, verify_signature, WebhookSecrets};

const SECRET: &str = "bench-webhook-secret";
/// Each measurement runs at least this long (after a short warm-up) and at least `MIN_ITERATIONS` times.
const BUDGET: Duration = Duration::from_millis(700);
const MIN_ITERATIONS: u32 = 5;

/// The crafted publishing push (tests/fixtures/push-package-json.json) grown to at least `target` bytes
/// with commits that each change 20 source files, the way a busy push looks. Its first commit still
/// modifies Packages/com.codertocat.hello/package.json, so the push publishes.
fn qualifying_push(target: usize) -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/push-package-json.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let mut push: Value = serde_json::from_str(&text).expect("the fixture is JSON");
    let template = push["commits"][0].clone();
    let mut i = 0;
    while serde_json::to_vec(&push).expect("serialises").len() < target {
        let mut commit = template.clone();
        commit["id"] = json!(format!("{:040x}", 0xbe9c_0000_u64 + i));
        commit["message"] = json!(format!("feat(feature-{i}): rework the components 🚀"));
        commit["modified"] = json!((0..20)
            .map(|j| format!("Packages/com.codertocat.hello/Runtime/Feature{i}/Component{j}.cs"))
            .collect::<Vec<_>>());
        commit["added"] = json!([]);
        commit["removed"] = json!([]);
        push["commits"]
            .as_array_mut()
            .expect("commits")
            .push(commit);
        i += 1;
    }
    serde_json::to_vec(&push).expect("serialises")
}

/// A named operation on one payload.
type Stage<'a> = (&'static str, Box<dyn FnMut() + 'a>);

struct Measurement {
    iterations: u32,
    elapsed: Duration,
}

fn measure(mut op: impl FnMut()) -> Measurement {
    let warm_up = Instant::now();
    while warm_up.elapsed() < BUDGET / 10 {
        op();
    }
    let started = Instant::now();
    let mut iterations = 0;
    while iterations < MIN_ITERATIONS || started.elapsed() < BUDGET {
        op();
        iterations += 1;
    }
    Measurement {
        iterations,
        elapsed: started.elapsed(),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument is a filter we do not need.
    let secrets = WebhookSecrets::parse(SECRET);
    println!(
        "{:<8} {:>10}  {:<16} {:>10} {:>12} {:>8}",
        "payload", "bytes", "stage", "MB/s", "µs/delivery", "runs"
    );
    for (label, target) in [("10 KB", 10 * 1024), ("1 MB", 1024 * 1024)] {
        let body = qualifying_push(target);
        let header = sign(SECRET.as_bytes(), &body);

        // The payload must be one the worker dispatches for, or the numbers describe the wrong path.
        verify_signature(&secrets, Some(&header), &body).expect("the signature verifies");
        let Ok(Event::Push(push)) = classify(Some("push"), &body) else {
            panic!("{label}: not a push");
        };
        let candidate = candidate(&push, &LoopGuard::default()).expect("the push publishes");
        assert!(
            matches!(&candidate.packages, ChangedPackages::Paths(p) if p == &["Packages/com.codertocat.hello"]),
            "{label}: {:?}",
            candidate.packages
        );

        let stages: [Stage; 4] = [
            (
                "sign",
                Box::new(|| {
                    black_box(sign(black_box(SECRET.as_bytes()), black_box(&body)));
                }),
            ),
            (
                "verify",
                Box::new(|| {
                    black_box(verify_signature(
                        &secrets,
                        Some(black_box(&header)),
                        black_box(&body),
                    ))
                    .expect("verifies");
                }),
            ),
            (
                "parse (classify)",
                Box::new(|| {
                    black_box(classify(Some("push"), black_box(&body))).expect("parses");
                }),
            ),
            (
                "verify + parse",
                Box::new(|| {
                    verify_signature(&secrets, Some(black_box(&header)), black_box(&body))
                        .expect("verifies");
                    black_box(classify(Some("push"), black_box(&body))).expect("parses");
                }),
            ),
        ];
        for (stage, mut op) in stages {
            let m = measure(&mut op);
            let seconds = m.elapsed.as_secs_f64();
            let per_op_us = seconds * 1e6 / f64::from(m.iterations);
            let mb_per_s = body.len() as f64 * f64::from(m.iterations) / seconds / 1e6;
            println!(
                "{label:<8} {:>10}  {stage:<16} {mb_per_s:>10.1} {per_op_us:>12.1} {:>8}",
                body.len(),
                m.iterations
            );
        }
    }
}
