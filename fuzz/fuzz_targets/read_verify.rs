//! read + verify: any head and body, from the first check to the payload extraction. Never a panic;
//! a body signed with the secret always verifies, one signed otherwise never does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use upm_relay::delivery::{admit, Admitted, RequestHead};
use upm_relay::read::{self, BodyKind};
use upm_relay::verify::{parse_signature, sign, verify_digest, verify_signature, WebhookSecrets};

const SECRET: &[u8] = b"fuzz-secret";

fuzz_target!(|data: &[u8]| {
    // Layout: [selector][header bytes up to '\n'][body]
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let split = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let (header, body) = rest.split_at(split);
    let body = body.get(1..).unwrap_or(&[]);
    let header = String::from_utf8_lossy(header);
    let secrets = WebhookSecrets::parse(if selector & 1 == 0 { "fuzz-secret" } else { "old, fuzz-secret" });

    // The head alone, as the worker sees it before reading the body.
    let length = body.len().to_string();
    let head = RequestHead {
        method: if selector & 2 == 0 { "POST" } else { "GET" },
        path: if selector & 4 == 0 { "/" } else { &header },
        content_type: Some(if selector & 8 == 0 { "application/json" } else { "application/x-www-form-urlencoded" }),
        content_length: Some(if selector & 16 == 0 { &length } else { &header }),
        signature: Some(&header),
        event: Some("push"),
        delivery: Some(&header),
        authorization: None,
    };
    let _ = admit(&head);

    // The signature: an arbitrary header is refused or matches by chance (never, in practice).
    let _ = parse_signature(Some(&header));
    let _ = verify_signature(&secrets, Some(&header), body);
    let genuine = sign(SECRET, body);
    assert_eq!(verify_signature(&secrets, Some(&genuine), body), Ok(()));
    let digest = parse_signature(Some(&genuine)).expect("our own header parses");
    assert!(verify_digest(&WebhookSecrets::parse("other"), &digest, body).is_err());

    // The payload inside the body, either encoding.
    for kind in [BodyKind::Json, BodyKind::Form] {
        if let Ok(payload) = read::payload(kind, body) {
            if kind == BodyKind::Form {
                assert!(std::str::from_utf8(&payload).is_ok(), "a form payload is UTF-8");
            }
        }
    }
    if let Ok(Admitted::Webhook { length, .. }) = admit(&head) {
        assert!(length.is_none_or(|l| l <= read::MAX_BODY_BYTES));
    }
});
