//! capf-ca's EST client over real TLS against a tiny EST responder on 127.0.0.1 (one per test
//! binary, in a thread of its own): replies in HTTP/1.0 (no Content-Length, the body ending at
//! the close), base64 with and without line breaks, with and without `smime-type`; and the
//! Online CA Hostname checked against the HTTPS certificate's subjectAltName, never its CN.
//!
//! The responder's certificates are made by `openssl` from the fixture keys: a CA, and an
//! HTTPS certificate it issues with CN=localhost but subjectAltName IP:127.0.0.1 only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use capf_ca::Error;
use capf_ca::est::EstClient;
use capf_ca::http::TrustAnchors;
use capf_lsc::{OnlineCaConfig, OnlineCaParams, Secret};
use capf_test_support::certsrv::{fixture_path, openssl, scratch_dir};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The responder: its port, the CA (DER) to trust, and the certificate /cacerts serves (DER).
struct Responder {
    port: u16,
    ca_der: Vec<u8>,
    served_der: Vec<u8>,
}

fn run_openssl(dir: &Path, args: &[&str]) {
    openssl(dir, args);
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The CA and the HTTPS certificate (DER), and the certs-only PKCS#7 of the CA (DER).
fn make_certificates(dir: &Path) -> (Vec<u8>, Vec<u8>, Vec<u8>, PathBuf) {
    let ca_key = fixture_path("rsa-2048.pem");
    let srv_key = fixture_path("p256.pem");
    let ca_key_s = ca_key.to_string_lossy().into_owned();
    let srv_key_s = srv_key.to_string_lossy().into_owned();
    std::fs::write(
        dir.join("ca.ext"),
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\nsubjectKeyIdentifier=hash\n",
    )
    .unwrap();
    // CN=localhost, yet only IP:127.0.0.1 in the subjectAltName: RFC 6125 names come from
    // the SAN, so "localhost" is not this certificate's name.
    std::fs::write(
        dir.join("srv.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n",
    )
    .unwrap();
    run_openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            &ca_key_s,
            "-subj",
            "/CN=capf test EST HTTP CA",
            "-out",
            "ca.csr",
        ],
    );
    run_openssl(
        dir,
        &[
            "x509", "-req", "-in", "ca.csr", "-key", &ca_key_s, "-days", "30", "-sha256",
            "-extfile", "ca.ext", "-out", "ca.pem",
        ],
    );
    run_openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            &srv_key_s,
            "-subj",
            "/CN=localhost",
            "-out",
            "srv.csr",
        ],
    );
    run_openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            &ca_key_s,
            "-set_serial",
            "9",
            "-days",
            "30",
            "-sha256",
            "-extfile",
            "srv.ext",
            "-out",
            "srv.pem",
        ],
    );
    for name in ["ca", "srv"] {
        run_openssl(
            dir,
            &[
                "x509",
                "-in",
                &format!("{name}.pem"),
                "-outform",
                "DER",
                "-out",
                &format!("{name}.der"),
            ],
        );
    }
    run_openssl(
        dir,
        &[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            &srv_key_s,
            "-outform",
            "DER",
            "-out",
            "srv.key.der",
        ],
    );
    run_openssl(
        dir,
        &[
            "crl2pkcs7",
            "-nocrl",
            "-certfile",
            "ca.pem",
            "-outform",
            "DER",
            "-out",
            "cacerts.p7",
        ],
    );
    (
        read(&dir.join("ca.der")),
        read(&dir.join("srv.der")),
        read(&dir.join("cacerts.p7")),
        dir.join("srv.key.der"),
    )
}

/// The reply for a request line's path: the label picks the variant.
fn reply(path: &str, p7: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(p7);
    let wrapped: String = b64
        .as_bytes()
        .chunks(64)
        .map(|c| format!("{}\r\n", String::from_utf8_lossy(c)))
        .collect();
    // HTTP/1.0: no Content-Length, the body ends when the responder closes.
    let (content_type, body) = match path {
        "/.well-known/est/one-line/cacerts" => ("application/pkcs7-mime", b64),
        "/.well-known/est/wrapped-smime/cacerts" => {
            ("application/pkcs7-mime; smime-type=certs-only", wrapped)
        }
        "/.well-known/est/wrapped-plain/cacerts" => ("application/pkcs7-mime", wrapped),
        "/.well-known/est/one-line-smime/cacerts" => {
            ("Application/PKCS7-MIME ; smime-type=CERTS-ONLY", b64 + "\n")
        }
        _ => {
            return b"HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\n\r\nno such label\n"
                .to_vec();
        }
    };
    format!(
        "HTTP/1.0 200 OK\r\nContent-Type: {content_type}\r\nContent-Transfer-Encoding: base64\r\n\r\n{body}"
    )
    .into_bytes()
}

/// The one responder of this test binary.
fn responder() -> &'static Responder {
    static RESPONDER: OnceLock<Responder> = OnceLock::new();
    RESPONDER.get_or_init(|| {
        let dir = scratch_dir("est-http");
        let (ca_der, srv_der, p7, key_path) = make_certificates(&dir);
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(read(&key_path)));
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(srv_der)], key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        continue;
                    };
                    let acceptor = acceptor.clone();
                    let p7 = p7.clone();
                    tokio::spawn(async move {
                        // A handshake the client refuses ends here.
                        let Ok(mut tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let mut request = Vec::new();
                        let mut buf = [0u8; 1024];
                        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                            match tls.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => request.extend_from_slice(&buf[..n]),
                            }
                        }
                        let text = String::from_utf8_lossy(&request);
                        let path = text.split(' ').nth(1).unwrap_or("");
                        let _ = tls.write_all(&reply(path, &p7)).await;
                        let _ = tls.shutdown().await;
                    });
                }
            });
        });
        Responder {
            port,
            served_der: ca_der.clone(),
            ca_der,
        }
    })
}

fn client(host: &str, label: &str) -> EstClient {
    let r = responder();
    let config = OnlineCaConfig::new(&OnlineCaParams {
        host: host.into(),
        port: u32::from(r.port),
        ca_type: "est".into(),
        username: "estuser".into(),
        password: Secret::new("estpwd"),
        template: None,
        label: Some(label.into()),
    })
    .unwrap();
    EstClient::new(
        config,
        TrustAnchors::from_der([r.ca_der.clone()]),
        Duration::from_secs(10),
    )
}

/// RFC 7030 and RFC 8951: a 200 is accepted over HTTP/1.0, in base64 on one line or in lines,
/// with or without the smime-type parameter (and the media type in any case).
#[tokio::test]
async fn http_1_0_replies_are_read_in_every_base64_and_media_type_variant() {
    for label in [
        "one-line",
        "wrapped-smime",
        "wrapped-plain",
        "one-line-smime",
    ] {
        let certs = client("127.0.0.1", label).cacerts().await;
        let certs = certs.unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(certs, [responder().served_der.clone()], "{label}");
    }
    let missing = client("127.0.0.1", "no-such-label").cacerts().await;
    assert!(
        matches!(missing, Err(Error::NotFound { .. })),
        "{missing:?}"
    );
}

/// The Online CA Hostname must be the HTTPS certificate's name, which rustls/webpki takes from
/// the subjectAltName (RFC 6125, no CN fallback): "localhost" is this certificate's CN, not a
/// name it carries, so TLS is refused with one line naming the hostname.
#[tokio::test]
async fn a_hostname_the_certificate_does_not_name_is_refused_naming_it() {
    let port = responder().port;
    let err = client("localhost", "one-line").cacerts().await.unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    // The error and its sources, as a CLI prints them on one line.
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(e) = source {
        text.push_str(&format!(": {e}"));
        source = e.source();
    }
    assert!(!text.contains('\n'), "{text}");
    assert!(text.contains(&format!("localhost:{port}")), "{text}");
    assert!(text.contains("name the Online CA Hostname"), "{text}");
    assert!(text.contains("not valid for name \"localhost\""), "{text}");
    // The name the certificate does carry is accepted.
    client("127.0.0.1", "one-line").cacerts().await.unwrap();
}
