//! classify: any bytes as any event. Never a panic; what is accepted as JSON is valid UTF-8 and one
//! object with nothing after it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use upm_relay::classify::{classify, Event};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, payload)) = data.split_first() else {
        return;
    };
    let event = match selector % 4 {
        0 => "push",
        1 => "ping",
        2 => "issues",
        _ => "",
    };
    match classify(Some(event), payload) {
        Ok(Event::Push(_)) | Ok(Event::Ping) => {
            let text = std::str::from_utf8(payload).expect("accepted payloads are UTF-8");
            let value: serde_json::Value =
                serde_json::from_str(text).expect("accepted payloads are one JSON document");
            assert!(value.is_object(), "accepted payloads are objects");
        }
        Ok(Event::Other(_)) => assert_eq!(event, "issues"),
        Err(stop) => assert_eq!(stop.status, 400, "{}", stop.reason),
    }
});
