//! The crypto floor of one enrollment (issue 19): what the server cannot avoid per phone, timed
//! in one run with capfd's own configuration: one server-side TLS handshake (rustls with
//! capfd's provider, `capf_server::tls_provider`, and the CAPF key) and one LSC signature (the
//! CAPF key's default signer), over the same RSA-2048 CAPF key as the load runs use, against
//! capf-phone's own TLS client. Only the server's calls are timed.
//!
//! `cargo bench --bench crypto_floor -- --warm-up-time 1 --measurement-time 3`

// A bench over committed fixtures: a missing fixture should stop it loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::hint::black_box;
use std::io::Cursor;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use capf_lsc::{CaCertificateParams, IssuerKey, LscParams, PhonePublicKey, ValidityDays};
use capf_server::CapfIdentity;
use criterion::{Criterion, criterion_group, criterion_main};
use rustls::{ClientConnection, ServerConnection};

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/crates/capf-test-support/fixtures/",
            $name
        ))
    };
}

/// One handshake between capf-phone's client and capfd's server configuration; the time the
/// server's calls take (creating the connection, reading, processing, writing).
fn handshake(
    server_config: &Arc<rustls::ServerConfig>,
    client_config: &Arc<rustls::ClientConfig>,
) -> Duration {
    let mut client = ClientConnection::new(
        Arc::clone(client_config),
        "capf.invalid".try_into().unwrap(),
    )
    .unwrap();
    let start = Instant::now();
    let mut server = ServerConnection::new(Arc::clone(server_config)).unwrap();
    let mut spent = start.elapsed();
    for _ in 0..8 {
        if !client.is_handshaking() && !server.is_handshaking() {
            break;
        }
        let mut to_server = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut to_server).unwrap();
        }
        let start = Instant::now();
        let mut reader = Cursor::new(&to_server[..]);
        while (reader.position() as usize) < to_server.len() {
            server.read_tls(&mut reader).unwrap();
            server.process_new_packets().unwrap();
        }
        let mut to_client = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut to_client).unwrap();
        }
        spent += start.elapsed();
        let mut reader = Cursor::new(&to_client[..]);
        while (reader.position() as usize) < to_client.len() {
            client.read_tls(&mut reader).unwrap();
            client.process_new_packets().unwrap();
        }
    }
    assert!(!server.is_handshaking() && !client.is_handshaking());
    spent
}

fn floor(c: &mut Criterion) {
    let key_pem = fixture!("rsa-2048.pem");
    let key = IssuerKey::from_pkcs8_pem(key_pem).expect("fixture key");
    let now = SystemTime::now();
    let cert = CaCertificateParams::capf(0xcafe)
        .self_signed(&key, now, &mut || [1u8; 16])
        .expect("CAPF certificate");
    let dir = std::env::temp_dir().join(format!("capf-crypto-floor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_path, key_path) = (dir.join("capf.pem"), dir.join("capf.key"));
    std::fs::write(&cert_path, capf_lsc::certificate_to_pem(&cert).unwrap()).unwrap();
    std::fs::write(&key_path, key_pem).unwrap();
    // capfd's own loading: the TLS configuration and the LSC issuer.
    let mut identity = CapfIdentity::load(&cert_path, &key_path, now).expect("identity");
    std::fs::remove_dir_all(&dir).ok();
    let issuer = identity.take_issuer().expect("issuer");
    let client = capf_phone::client_config(&[capf_lsc::certificate_to_der(&cert).unwrap()])
        .expect("client config");
    let phone = PhonePublicKey::from_pem(fixture!("phone-rsa-2048.pub.pem")).expect("phone key");
    let params = LscParams {
        device_name: "SEP001122334455".into(),
        validity: ValidityDays::MAX,
    };
    let tbs = issuer
        .lsc_tbs_der(&phone, &params, now, &mut || [2u8; 16])
        .expect("TBS");
    eprintln!(
        "LSC signer: {:?}; TLS provider: capf_server::tls_provider",
        issuer.signer().signer_backend()
    );
    // A phone's first handshake is a full one (the CAPF key signs), as every handshake of the
    // load generator's phones is (each has its own session cache); a phone that comes back
    // resumes its own session (no signature): both are timed.
    let mut full = (*client).clone();
    full.resumption = rustls::client::Resumption::disabled();
    let full = Arc::new(full);
    let mut group = c.benchmark_group("crypto_floor/RSA-2048");
    for (label, client) in [("full", &full), ("resumed", &client)] {
        group.bench_function(format!("server TLS handshake, {label}"), |b| {
            b.iter_custom(|n| (0..n).map(|_| handshake(&identity.tls, client)).sum())
        });
        group.bench_function(
            format!("server TLS handshake, {label} + LSC signature"),
            |b| {
                b.iter_custom(|n| {
                    (0..n)
                        .map(|_| {
                            let spent = handshake(&identity.tls, client);
                            let start = Instant::now();
                            black_box(issuer.signer().sign(black_box(&tbs)).expect("sign"));
                            spent + start.elapsed()
                        })
                        .sum()
                })
            },
        );
    }
    group.bench_function("LSC signature", |b| {
        b.iter(|| issuer.signer().sign(black_box(&tbs)).expect("sign"))
    });
    group.finish();
}

criterion_group!(benches, floor);
criterion_main!(benches);
