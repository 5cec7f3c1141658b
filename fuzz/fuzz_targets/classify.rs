//! classify: any bytes as any event. Never a panic; what is accepted is valid UTF-8 and a JSON object.
//! (Not "what serde_json::Value accepts": a number like 1.8e853002 in a field no stage reads is skipped
//! without being evaluated, where Value refuses it as out of range; see classify's
//! `numbers_in_skipped_fields_are_not_evaluated`, the regression test of the first crash found here.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use upm_relay::classify::{classify, Event};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, payload)) = data.split_first() else {
        return;
    };
    let event = match selector % 5 {
        0 => "push",
        1 => "ping",
        2 => "issues",
        3 => "pull_request",
        _ => "",
    };
    match classify(Some(event), payload) {
        Ok(Event::Push(_)) | Ok(Event::Ping) | Ok(Event::PullRequest(_)) => {
            let text = std::str::from_utf8(payload).expect("accepted payloads are UTF-8");
            assert!(
                text.trim_start().starts_with('{') && text.trim_end().ends_with('}'),
                "accepted payloads are one object"
            );
        }
        Ok(Event::Other(_)) => assert_eq!(event, "issues"),
        Err(stop) => assert_eq!(stop.status, 400, "{}", stop.reason),
    }
});
