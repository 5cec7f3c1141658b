//! App auth, natively: key formats against OpenSSL's own output, JWTs verified with the public key, and
//! the token cache through a scripted GitHub (src/fake_world.rs).

use std::collections::HashMap;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use serde_json::Value;

use super::*;
use crate::app_key::{der_length, parse_private_key, pkcs1_to_pkcs8};
use crate::config::Config;
use crate::delivery::{admit, Admitted, Relay, RequestHead};
use crate::fake_world::{answer, test_key_pem, Answer, World, API};
use crate::fixtures::push_json_touching;
use crate::isolate::RegistryMemory;

const APP_ID: &str = "4242";
const INSTALLATION_PATH: &str = "/repos/Studio/Central/installation";
const TOKENS_PATH: &str = "/app/installations/77/access_tokens";
const PROBE: &str = "/probe";

fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).unwrap()
}

#[test]
fn github_s_pkcs1_key_is_wrapped_exactly_as_openssl_wraps_it() {
    let wrapped = parse_private_key(&test_key_pem("pkcs1")).unwrap();
    assert_eq!(wrapped.pkcs8_der(), pem_der(&test_key_pem("pkcs8")));
    let wrapped_der = pkcs1_to_pkcs8(&pem_der(&test_key_pem("pkcs1")));
    assert_eq!(wrapped_der, pem_der(&test_key_pem("pkcs8")));
}

#[test]
fn pkcs8_and_one_line_secrets_are_read_too() {
    let expected = pem_der(&test_key_pem("pkcs8"));
    let pkcs8 = parse_private_key(&test_key_pem("pkcs8")).unwrap();
    assert_eq!(pkcs8.pkcs8_der(), expected);
    let one_line = test_key_pem("pkcs1").replace('\n', "\\n");
    assert!(!one_line.contains('\n'));
    assert_eq!(parse_private_key(&one_line).unwrap().pkcs8_der(), expected);
    let crlf = test_key_pem("pkcs1").replace('\n', "\r\n");
    assert_eq!(parse_private_key(&crlf).unwrap().pkcs8_der(), expected);
    assert!(!format!("{pkcs8:?}").contains(&STANDARD.encode(&expected[..20])));
}

#[test]
fn keys_that_cannot_sign_are_refused_with_a_reason() {
    let pkcs1 = test_key_pem("pkcs1");
    let truncated: String = {
        let mut lines: Vec<&str> = pkcs1.lines().collect();
        lines.remove(5);
        lines.join("\n")
    };
    let ed25519 = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEII7/GglnoQoKRktFxXkS06ierdAZR9THJPSWghUeb9yz\n-----END PRIVATE KEY-----\n";
    let legacy_encrypted = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,8F42\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
    let encrypted =
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
    for (pem, expected) in [
        ("ghp_not_a_key", "no `-----BEGIN"),
        (
            test_key_pem("pub").as_str(),
            "`PUBLIC KEY` block is not a private key",
        ),
        (ed25519, "not an RSA key"),
        (legacy_encrypted, "encrypted"),
        (encrypted, "encrypted"),
        (truncated.as_str(), "not DER"),
        (
            "-----BEGIN RSA PRIVATE KEY-----\n!!!\n-----END RSA PRIVATE KEY-----",
            "not base64",
        ),
        ("-----BEGIN RSA PRIVATE KEY-----\nAAAA", "no matching"),
    ] {
        let err = parse_private_key(pem).unwrap_err();
        assert!(err.contains(expected), "{expected}: {err}");
    }
}

#[test]
fn der_lengths_use_the_short_form_below_128_only() {
    assert_eq!(der_length(0), [0x00]);
    assert_eq!(der_length(0x7f), [0x7f]);
    assert_eq!(der_length(0x80), [0x81, 0x80]);
    assert_eq!(der_length(0x4a7), [0x82, 0x04, 0xa7]);
    assert_eq!(der_length(0x1_0000), [0x83, 0x01, 0x00, 0x00]);
}

fn decode_segment(segment: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
}

/// Checks an App JWT: RS256 header, claims for APP_ID at `now_ms`, and a signature that verifies with
/// the App's public key.
fn assert_valid_jwt(jwt: &str, now_ms: u64) {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "{jwt}");
    assert_eq!(
        decode_segment(parts[0]),
        serde_json::json!({"alg": "RS256", "typ": "JWT"})
    );
    let claims = decode_segment(parts[1]);
    let now = now_ms / 1000;
    assert_eq!(claims["iss"], 4242, "a numeric App id is a JSON number");
    assert_eq!(claims["iat"], now - 60, "backdated for clock drift");
    let exp = claims["exp"].as_u64().unwrap();
    assert!(exp > now && exp - now <= 600, "GitHub refuses exp > 10 min");
    let public = rsa::RsaPublicKey::from_public_key_pem(&test_key_pem("pub")).unwrap();
    let signature =
        Signature::try_from(URL_SAFE_NO_PAD.decode(parts[2]).unwrap().as_slice()).unwrap();
    VerifyingKey::<sha2::Sha256>::new(public)
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .expect("the JWT signature verifies with the App's public key");
}

#[test]
fn the_jwt_is_rs256_signed_with_the_app_key_and_short_lived() {
    let world = World::new();
    let key = parse_private_key(&test_key_pem("pkcs1")).unwrap();
    let input = jwt_signing_input(&JwtClaims::new(APP_ID, world.now_ms()));
    let signature =
        pollster::block_on(world.sign_rs256(key.pkcs8_der(), input.as_bytes())).unwrap();
    let token = jwt(&input, &signature);
    assert_valid_jwt(&token, world.now_ms());
    assert!(!token.contains('=') && !token.contains('+') && !token.contains('/'));
    // A signature over other claims does not verify.
    let forged = format!(
        "{}.{}",
        jwt_signing_input(&JwtClaims::new("9999", world.now_ms())),
        URL_SAFE_NO_PAD.encode(&signature)
    );
    let verifies = std::panic::catch_unwind(|| assert_valid_jwt(&forged, 1_800_000_000_000));
    assert!(verifies.is_err());
}

#[test]
fn a_client_id_is_a_string_issuer() {
    let claims = JwtClaims::new("Iv1.8a61f9b3a7aba766", 1_800_000_000_000);
    assert_eq!(claims.iss, Issuer::ClientId("Iv1.8a61f9b3a7aba766".into()));
    let input = jwt_signing_input(&claims);
    let payload = decode_segment(input.split('.').nth(1).unwrap());
    assert_eq!(payload["iss"], "Iv1.8a61f9b3a7aba766");
    assert_eq!(JwtClaims::new("42", 0).iss, Issuer::AppId(42));
}

#[test]
fn without_a_dispatch_repo_the_installation_is_the_organization_s() {
    let c = config(&[
        ("DISPATCH_REPO", ""),
        ("GITHUB_ORG", "Studio"),
        ("HOOK_ID", "42"),
    ]);
    assert_eq!(
        installation_lookup_path(&c).as_deref(),
        Some("/orgs/Studio/installation")
    );
    let c = config(&[]);
    assert_eq!(
        installation_lookup_path(&c).as_deref(),
        Some(INSTALLATION_PATH)
    );
    let c = config(&[("DISPATCH_REPO", "")]);
    assert_eq!(installation_lookup_path(&c), None);
}

#[test]
fn a_token_is_reused_until_five_minutes_before_it_expires() {
    let token = InstallationToken {
        token: "t".into(),
        expires_at_ms: 10_000_000,
        installation_id: 1,
    };
    assert!(token.is_reusable(10_000_000 - REFRESH_BEFORE_EXPIRY_MS - 1));
    assert!(!token.is_reusable(10_000_000 - REFRESH_BEFORE_EXPIRY_MS));
    assert!(!token.is_reusable(20_000_000));
    assert_eq!(
        token.kv_ttl_seconds(10_000_000 - REFRESH_BEFORE_EXPIRY_MS - 120_000),
        120
    );
    assert_eq!(token.kv_ttl_seconds(9_999_999), 60, "KV's minimum");
    assert_eq!(
        InstallationToken::from_kv(&token.to_kv()),
        Some(token.clone())
    );
    assert!(
        !format!("{token:?}").contains("\"t\""),
        "Debug hides the token"
    );
}

#[test]
fn githubs_token_response_is_read() {
    let token = parse_token_response(
        r#"{"token":"ghs_16C7e42F292c6912E7710c838347Ae178B4a","expires_at":"2016-07-11T22:14:10Z","permissions":{}}"#,
        9,
    )
    .unwrap();
    assert_eq!(token.expires_at_ms, 1_468_275_250_000);
    assert_eq!(token.installation_id, 9);
    for bad in [
        "{}",
        r#"{"token":"x","expires_at":"soon"}"#,
        r#"{"token":"","expires_at":"2016-07-11T22:14:10Z"}"#,
        "<html>",
    ] {
        assert!(parse_token_response(bad, 9).is_err(), "{bad}");
    }
}

fn config(pairs: &[(&str, &str)]) -> Config {
    let pem = test_key_pem("pkcs1");
    let mut vars: HashMap<&str, &str> = HashMap::from([
        ("WEBHOOK_SECRET", "s3cret"),
        ("DISPATCH_REPO", "Studio/Central"),
        ("GITHUB_API", API),
        ("GITHUB_APP_ID", APP_ID),
        ("GITHUB_APP_PRIVATE_KEY", pem.as_str()),
    ]);
    for (k, v) in pairs {
        vars.insert(k, v);
    }
    Config::from_lookup(|name| vars.get(name).map(|v| v.to_string()))
}

fn expiry(world: &World, minutes: u64) -> String {
    upm_github::deliveries::format_rfc3339_utc(((world.now_ms() + minutes * 60_000) / 1000) as i64)
}

fn token_answer(world: &World, token: &str) -> Result<Answer, String> {
    answer(
        201,
        &format!(
            r#"{{"token":"{token}","expires_at":"{}"}}"#,
            expiry(world, 60)
        ),
    )
}

fn app_world() -> World {
    let world = World::new();
    world.script(
        "GET",
        INSTALLATION_PATH,
        vec![answer(200, r#"{"id": 77, "account": {"login": "Studio"}}"#)],
    );
    world.script("POST", TOKENS_PATH, vec![token_answer(&world, "ghs_one")]);
    world.script("GET", PROBE, vec![answer(200, "{}")]);
    world
}

fn probe(world: &World, config: &Config) -> Result<HttpResponse, String> {
    let request = github::request(config, "GET", PROBE, "application/vnd.github+json", None);
    pollster::block_on(send_authorized(config, world, request)).map_err(|e| e.detail())
}

fn bearer(request: &HttpRequest) -> String {
    let values: Vec<&str> = request
        .headers
        .iter()
        .filter(|(n, _)| *n == "Authorization")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(values.len(), 1, "exactly one Authorization header");
    values[0].strip_prefix("Bearer ").unwrap().to_string()
}

#[test]
fn the_first_request_mints_a_token_and_the_next_ones_reuse_it() {
    let world = app_world();
    let config = config(&[("GITHUB_TOKEN", "ghp_ignored_when_an_app_is_set")]);
    assert!(config.problems.is_empty(), "{:?}", config.problems);

    assert_eq!(probe(&world, &config).unwrap().status, 200);
    let sent = world.sent.borrow().clone();
    let urls: Vec<&str> = sent.iter().map(|r| r.url.trim_start_matches(API)).collect();
    assert_eq!(urls, [INSTALLATION_PATH, TOKENS_PATH, PROBE]);
    assert_valid_jwt(&bearer(&sent[0]), world.now_ms());
    assert_valid_jwt(&bearer(&sent[1]), world.now_ms());
    assert_eq!(bearer(&sent[2]), "ghs_one");
    let stored = InstallationToken::from_kv(&world.kv.borrow()[&kv_key(APP_ID)]).unwrap();
    assert_eq!(
        (stored.token.as_str(), stored.installation_id),
        ("ghs_one", 77)
    );
    assert_eq!(world.ttls.borrow()[&kv_key(APP_ID)], Some(55 * 60));

    // Steady state: one GitHub call per request.
    for _ in 0..3 {
        probe(&world, &config).unwrap();
    }
    assert_eq!(world.calls(), 6);
    assert_eq!(world.signatures.get(), 1);

    // A new isolate finds the token in KV.
    remember(None);
    probe(&world, &config).unwrap();
    assert_eq!(world.calls(), 7);
    assert_eq!(world.signatures.get(), 1);

    // 55 minutes on, a new token; the installation id is known from the cached one.
    world.advance(55 * 60_000);
    world.script("POST", TOKENS_PATH, vec![token_answer(&world, "ghs_two")]);
    probe(&world, &config).unwrap();
    assert_eq!(world.sent_to("GET", INSTALLATION_PATH).len(), 1);
    assert_eq!(world.sent_to("POST", TOKENS_PATH).len(), 2);
    assert_eq!(bearer(world.sent.borrow().last().unwrap()), "ghs_two");
    assert_eq!(world.signatures.get(), 2);
}

#[test]
fn a_401_drops_the_token_and_retries_once() {
    let world = app_world();
    let config = config(&[]);
    probe(&world, &config).unwrap();
    world.script("POST", TOKENS_PATH, vec![token_answer(&world, "ghs_two")]);
    world.script(
        "GET",
        PROBE,
        vec![
            answer(401, r#"{"message":"Bad credentials"}"#),
            answer(200, "{}"),
        ],
    );
    assert_eq!(probe(&world, &config).unwrap().status, 200);
    let probes = world.sent_to("GET", PROBE);
    assert_eq!(probes.len(), 3);
    assert_eq!(
        (bearer(&probes[1]), bearer(&probes[2])),
        ("ghs_one".into(), "ghs_two".into())
    );
    assert!(
        world.kv.borrow()[&kv_key(APP_ID)].contains("ghs_two"),
        "KV holds the new token"
    );

    // A 401 that persists is answered after one retry, never a loop.
    world.script(
        "GET",
        PROBE,
        vec![answer(401, r#"{"message":"Bad credentials"}"#)],
    );
    let before = world.calls();
    assert_eq!(probe(&world, &config).unwrap().status, 401);
    assert_eq!(world.calls() - before, 3, "request, new token, one retry");
}

#[test]
fn a_configured_installation_id_skips_the_lookup() {
    let world = app_world();
    probe(&world, &config(&[("GITHUB_APP_INSTALLATION_ID", "77")])).unwrap();
    assert!(world.sent_to("GET", INSTALLATION_PATH).is_empty());
    assert_eq!(world.calls(), 2);
}

#[test]
fn a_token_github_will_not_give_is_an_error_without_secrets() {
    let world = app_world();
    world.script(
        "POST",
        TOKENS_PATH,
        vec![answer(
            401,
            r#"{"message":"A JSON web token could not be decoded"}"#,
        )],
    );
    let err = probe(&world, &config(&[])).unwrap_err();
    assert_eq!(
        err,
        "GitHub App: creating an installation token: GitHub answered 401: A JSON web token could not be decoded"
    );
    assert!(world.sent_to("GET", PROBE).is_empty());
    assert!(world.kv.borrow().is_empty());
}

#[test]
fn a_personal_access_token_still_works() {
    let world = app_world();
    let config = config(&[
        ("GITHUB_APP_ID", ""),
        ("GITHUB_APP_PRIVATE_KEY", ""),
        ("GITHUB_TOKEN", "ghp_pat"),
    ]);
    assert!(config.problems.is_empty(), "{:?}", config.problems);
    assert!(config.app.is_none());
    probe(&world, &config).unwrap();
    assert_eq!(world.calls(), 1);
    assert_eq!(bearer(&world.sent.borrow()[0]), "ghp_pat");
    assert_eq!(world.signatures.get(), 0);
}

#[test]
fn app_settings_problems_name_the_setting_never_the_value() {
    let c = config(&[("GITHUB_APP_PRIVATE_KEY", "")]);
    assert!(
        c.problems
            .iter()
            .any(|p| p == "GITHUB_APP_ID is set without GITHUB_APP_PRIVATE_KEY"),
        "{:?}",
        c.problems
    );
    let c = config(&[(
        "GITHUB_APP_PRIVATE_KEY",
        "-----BEGIN RSA PRIVATE KEY-----\nc2VjcmV0\n-----END RSA PRIVATE KEY-----",
    )]);
    let all = c.problems.join("; ");
    assert!(
        all.starts_with("GITHUB_APP_PRIVATE_KEY is not usable"),
        "{all}"
    );
    assert!(!all.contains("c2VjcmV0"));
    let c = config(&[("GITHUB_APP_INSTALLATION_ID", "seventy")]);
    assert!(c
        .problems
        .join(";")
        .contains("GITHUB_APP_INSTALLATION_ID must be a number"));
    let c = config(&[("GITHUB_APP_ID", "42 ; rm")]);
    assert!(c.problems.join(";").contains("GITHUB_APP_ID must be"));
}

const SECRET: &str = "s3cret";
const REGISTRY_PATH: &str = "/repos/Studio/Central/contents/config/repositories.json";
const DISPATCH_PATH: &str = "/repos/Studio/Central/dispatches";

/// Delivers a publishing push; every call is another push (its own delivery id and `after` sha), as
/// the worker answers a second copy of one push `duplicate`.
fn deliver(world: &World, config: &Config, memory: &RegistryMemory) -> (u16, Value) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut push = push_json_touching(&["Packages/com.codertocat.hello/package.json"]);
    push["after"] = serde_json::json!(format!("6113728f27ae{n:028x}"));
    let body = serde_json::to_vec(&push).unwrap();
    let delivery = format!("72d3162e-cc78-11e3-81ab-{n:012x}");
    let signature = crate::verify::sign(SECRET.as_bytes(), &body);
    let length = body.len().to_string();
    let head = RequestHead {
        method: "POST",
        path: "/",
        content_type: Some("application/json"),
        content_length: Some(&length),
        signature: Some(&signature),
        event: Some("push"),
        delivery: Some(&delivery),
        authorization: None,
    };
    let Ok(Admitted::Webhook { kind, digest, .. }) = admit(&head) else {
        panic!("admitted")
    };
    let reply =
        pollster::block_on(Relay::new(config, world, memory).deliver(&head, kind, &digest, &body));
    // The worker makes these writes after responding (ctx.waitUntil); here, right away.
    for write in &reply.after_response {
        pollster::block_on(world.kv_put(&write.key, &write.value, write.ttl_seconds)).unwrap();
    }
    for secret in ["ghs_one", SECRET, "BEGIN RSA"] {
        assert!(!reply.body.contains(secret) && !reply.log.as_deref().unwrap().contains(secret));
    }
    (reply.status, serde_json::from_str(&reply.body).unwrap())
}

fn delivery_world() -> World {
    let world = app_world();
    world.script(
        "GET",
        REGISTRY_PATH,
        vec![answer(
            200,
            r#"{"repositories":[{"url":"Codertocat/Hello-World","status":"active"}]}"#,
        )],
    );
    world.script("POST", DISPATCH_PATH, vec![answer(204, "")]);
    world
}

#[test]
fn with_an_app_the_steady_state_is_one_github_call_per_delivery() {
    let world = delivery_world();
    let config = config(&[]);
    let memory = RegistryMemory::default();
    let mut calls = Vec::new();
    for _ in 0..4 {
        let before = world.calls();
        let (status, body) = deliver(&world, &config, &memory);
        assert_eq!(
            (status, body["outcome"].as_str()),
            (200, Some("dispatched")),
            "{body}"
        );
        calls.push(world.calls() - before);
    }
    // installation + token + registry + dispatch, then the dispatch alone.
    assert_eq!(calls, [4, 1, 1, 1]);
    for dispatch in world.sent_to("POST", DISPATCH_PATH) {
        assert_eq!(bearer(&dispatch), "ghs_one");
    }
    assert_eq!(bearer(&world.sent_to("GET", REGISTRY_PATH)[0]), "ghs_one");
}

#[test]
fn a_dispatch_github_refuses_as_invalid_is_a_502_that_is_not_retryable() {
    let world = delivery_world();
    world.script(
        "POST",
        DISPATCH_PATH,
        vec![answer(422, r#"{"message":"client_payload is too large"}"#)],
    );
    let (status, body) = deliver(&world, &config(&[]), &RegistryMemory::default());
    assert_eq!(
        (status, &body["retryable"]),
        (502, &Value::Bool(false)),
        "{body}"
    );

    world.script(
        "POST",
        DISPATCH_PATH,
        vec![answer(503, r#"{"message":"unavailable"}"#)],
    );
    let (status, body) = deliver(&world, &config(&[]), &RegistryMemory::default());
    assert_eq!(
        (status, &body["retryable"]),
        (502, &Value::Bool(true)),
        "{body}"
    );
}
