//! capf-ca's AD CS client (`certsrv::CertsrvClient`) against the test double
//! (tests/support/certsrv_double.py, started here on 127.0.0.1): issued, pending then issued,
//! denied (unknown template, malformed CSR), wrong credentials (Basic and NTLM), a page in
//! German, the CA chain, and the guide's four upload scenarios for the CA root and the HTTPS
//! certificate: what CAPF-trust must hold for TLS to the CA to verify.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use capf_ca::certsrv::CertsrvClient;
use capf_ca::http::TrustAnchors;
use capf_ca::{Error, OnlineAnswer, OnlineCaClient};
use capf_lsc::{OnlineCaConfig, OnlineCaParams, Secret};
use capf_test_support::certsrv::{
    Auth, CertsrvDouble, HOST, HttpsScenario, Options, PASSWORD, PENDING_TEMPLATE, TEMPLATE, USER,
    csr_pem, openssl,
};
use capf_trust::{Cert, ScenarioCertificate, upload_scenario};

fn der_of(pem_path: &Path) -> Vec<u8> {
    Cert::from_pem(&std::fs::read(pem_path).unwrap())
        .unwrap()
        .der()
        .to_vec()
}

fn client(
    double: &CertsrvDouble,
    template: &str,
    password: &str,
    anchors: Vec<Vec<u8>>,
) -> CertsrvClient {
    let config = OnlineCaConfig::new(&OnlineCaParams {
        host: HOST.into(),
        port: u32::from(double.port),
        ca_type: "microsoft".into(),
        username: USER.into(),
        password: Secret::new(password),
        template: Some(template.into()),
        label: None,
    })
    .unwrap();
    CertsrvClient::new(
        config,
        TrustAnchors::from_der(anchors),
        Duration::from_secs(20),
    )
}

/// A client trusting the double's CA root, as the guide's scenario 2 uploads it.
fn trusting_root(double: &CertsrvDouble, template: &str, password: &str) -> CertsrvClient {
    client(double, template, password, vec![der_of(&double.root_pem)])
}

/// An endpoint CSR (DER) for CN=`cn` under a fixture key.
fn csr_der(double: &CertsrvDouble, cn: &str) -> Vec<u8> {
    csr_pem(&double.dir, "rsa-3072.pem", cn);
    let der = double.dir.join(format!("{cn}.der"));
    openssl(
        &double.dir,
        &[
            "req",
            "-in",
            &format!("{cn}.csr"),
            "-outform",
            "DER",
            "-out",
            &der.to_string_lossy(),
        ],
    );
    std::fs::read(der).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `openssl verify` of `certificate` (DER) against the double's CA root; its subject.
fn verified_subject(double: &CertsrvDouble, certificate: &[u8]) -> String {
    let pem = double.dir.join("issued.pem");
    std::fs::write(&pem, Cert::from_der(certificate).unwrap().to_pem().unwrap()).unwrap();
    let out = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(&double.root_pem)
        .arg(&pem)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Cert::from_der(certificate).unwrap().subject()
}

fn issued(answer: OnlineAnswer) -> Vec<u8> {
    match answer {
        OnlineAnswer::Issued { certificate, .. } => certificate,
        other => panic!("expected a certificate, got {other:?}"),
    }
}

fn enrolls_over(auth: Auth) {
    let double = CertsrvDouble::start(&Options {
        auth,
        ..Options::default()
    });
    let ca = trusting_root(&double, TEMPLATE, PASSWORD);
    let csr = csr_der(&double, "SEP001122334455");
    let certificate = issued(runtime().block_on(ca.enroll(&csr, false)).unwrap());
    assert!(verified_subject(&double, &certificate).contains("SEP001122334455"));
}

#[test]
fn issued_over_ntlm() {
    enrolls_over(Auth::Ntlm);
}

#[test]
fn issued_over_basic() {
    enrolls_over(Auth::Basic);
}

#[test]
fn pending_then_issued_when_polled_by_req_id() {
    let double = CertsrvDouble::start(&Options::default());
    let ca = trusting_root(&double, PENDING_TEMPLATE, PASSWORD);
    let csr = csr_der(&double, "SEP00AABBCCDDEE");
    let rt = runtime();
    let Ok(OnlineAnswer::Pending {
        ca_request_id: Some(req_id),
        retry_after,
    }) = rt.block_on(ca.enroll(&csr, false))
    else {
        panic!("expected pending with a ReqID");
    };
    assert!(retry_after > Duration::ZERO);
    // The double approves on the second poll of the ReqID.
    match rt.block_on(ca.poll(&csr, Some(&req_id))).unwrap() {
        OnlineAnswer::Pending { ca_request_id, .. } => {
            assert_eq!(ca_request_id.as_deref(), Some(req_id.as_str()))
        }
        other => panic!("expected still pending, got {other:?}"),
    }
    let certificate = issued(rt.block_on(ca.poll(&csr, Some(&req_id))).unwrap());
    assert!(verified_subject(&double, &certificate).contains("SEP00AABBCCDDEE"));
}

#[test]
fn an_unknown_template_is_denied_with_the_disposition_message() {
    let double = CertsrvDouble::start(&Options::default());
    let ca = trusting_root(&double, "NoSuchTemplate", PASSWORD);
    let csr = csr_der(&double, "SEP001122334455");
    let error = runtime().block_on(ca.enroll(&csr, false)).unwrap_err();
    assert!(matches!(error, Error::CaRefused { .. }), "{error:?}");
    let reason = error.to_string();
    assert!(
        reason.contains("0x80094800") && reason.contains("NoSuchTemplate"),
        "{reason}"
    );
    assert!(!reason.contains('\n'));
}

#[test]
fn a_malformed_csr_is_denied_with_the_disposition_message() {
    let double = CertsrvDouble::start(&Options::default());
    let ca = trusting_root(&double, TEMPLATE, PASSWORD);
    let error = runtime()
        .block_on(ca.enroll(b"not a PKCS#10 request", false))
        .unwrap_err();
    assert!(matches!(error, Error::CaRefused { .. }), "{error:?}");
    assert!(
        error.to_string().contains("Error Parsing Request"),
        "{error}"
    );
}

fn wrong_password_over(auth: Auth) {
    let double = CertsrvDouble::start(&Options {
        auth,
        ..Options::default()
    });
    let ca = trusting_root(&double, TEMPLATE, "Wr0ng-Secret-42");
    let csr = csr_der(&double, "SEP001122334455");
    let error = runtime().block_on(ca.enroll(&csr, false)).unwrap_err();
    assert!(matches!(error, Error::Unauthorized { .. }), "{error:?}");
    let reason = error.to_string();
    assert!(
        reason.contains("capf-enroll") && !reason.contains("Wr0ng-Secret-42"),
        "{reason}"
    );
}

#[test]
fn a_wrong_password_is_unauthorized_over_ntlm() {
    wrong_password_over(Auth::Ntlm);
}

#[test]
fn a_wrong_password_is_unauthorized_over_basic() {
    wrong_password_over(Auth::Basic);
}

#[test]
fn a_german_ca_server_fails_with_a_reason_that_says_so() {
    let double = CertsrvDouble::start(&Options {
        german: true,
        ..Options::default()
    });
    let csr = csr_der(&double, "SEP001122334455");
    let rt = runtime();
    for template in [TEMPLATE, PENDING_TEMPLATE, "NoSuchTemplate"] {
        let ca = trusting_root(&double, template, PASSWORD);
        let error = rt.block_on(ca.enroll(&csr, false)).unwrap_err();
        assert!(
            matches!(error, Error::NotEnglish { .. }),
            "{template}: {error:?}"
        );
        assert!(error.to_string().contains("English"), "{error}");
    }
}

#[test]
fn the_ca_chain_comes_from_certnew_p7b() {
    let double = CertsrvDouble::start(&Options {
        auth: Auth::Basic,
        ..Options::default()
    });
    let ca = trusting_root(&double, TEMPLATE, PASSWORD);
    let chain = runtime().block_on(ca.ca_certificates()).unwrap();
    assert_eq!(chain, vec![der_of(&double.root_pem)]);
}

#[test]
fn an_lsc_from_an_issuing_ca_comes_with_its_chain_from_certnew_p7b() {
    let double = CertsrvDouble::start(&Options {
        issuing_ca: true,
        ..Options::default()
    });
    let ca = trusting_root(&double, TEMPLATE, PASSWORD);
    let csr = csr_der(&double, "SEP001122334455");
    match runtime().block_on(ca.enroll(&csr, false)).unwrap() {
        OnlineAnswer::Issued { certificate, chain } => {
            let issuing = der_of(double.issuing_pem.as_ref().unwrap());
            // The chain holds the CA certificates, not the LSC itself.
            assert!(!chain.contains(&certificate));
            assert_eq!(chain, vec![issuing, der_of(&double.root_pem)]);
        }
        other => panic!("{other:?}"),
    }
}

/// The guide's scenario `https`: capf-trust's advice names what to upload; with exactly that
/// in CAPF-trust TLS to the CA verifies, and with the CA root alone it does only when the
/// advice says the root is enough.
fn scenario(https: HttpsScenario, expected: capf_trust::Scenario) {
    let double = CertsrvDouble::start(&Options {
        https,
        ..Options::default()
    });
    let root = Cert::from_der(&der_of(&double.root_pem)).unwrap();
    let https_cert = Cert::from_der(&der_of(&double.https_pem)).unwrap();
    // The administrator has the intermediate only when IIS sends it (scenario 3).
    let intermediates: Vec<Cert> = match (&double.intermediate_pem, https) {
        (Some(p), HttpsScenario::IssuedByIntermediate) => vec![Cert::from_der(&der_of(p)).unwrap()],
        _ => Vec::new(),
    };
    let advice = upload_scenario(&root, &https_cert, &intermediates);
    assert_eq!(advice.scenario, expected);
    let capf_trust: Vec<Vec<u8>> = advice
        .uploads
        .iter()
        .filter(|u| u.purposes.contains(&capf_trust::Purpose::CAPF_TRUST))
        .map(|u| match u.certificate {
            ScenarioCertificate::CaRoot => root.der().to_vec(),
            ScenarioCertificate::Https => https_cert.der().to_vec(),
        })
        .collect();
    let rt = runtime();
    let ca = client(&double, TEMPLATE, PASSWORD, capf_trust.clone());
    let chain = rt.block_on(ca.ca_certificates());
    assert!(
        chain.is_ok(),
        "{https:?} with {} uploads: {chain:?}",
        capf_trust.len()
    );
    let root_alone = client(&double, TEMPLATE, PASSWORD, vec![root.der().to_vec()]);
    let result = rt.block_on(root_alone.ca_certificates());
    if capf_trust.len() == 1 {
        assert!(result.is_ok(), "{result:?}");
    } else {
        assert!(matches!(result, Err(Error::Tls { .. })), "{result:?}");
    }
    // Nothing in CAPF-trust: never unverified.
    let nothing = client(&double, TEMPLATE, PASSWORD, Vec::new());
    assert!(matches!(
        rt.block_on(nothing.ca_certificates()),
        Err(Error::Tls { .. })
    ));
}

#[test]
fn scenario_1_the_ca_root_is_the_https_certificate() {
    scenario(
        HttpsScenario::SameAsRoot,
        capf_trust::Scenario::SameCertificate,
    );
}

#[test]
fn scenario_2_the_https_certificate_is_issued_by_the_root() {
    scenario(
        HttpsScenario::IssuedByRoot,
        capf_trust::Scenario::IssuedByRoot,
    );
}

#[test]
fn scenario_3_an_intermediate_issues_the_https_certificate() {
    scenario(
        HttpsScenario::IssuedByIntermediate,
        capf_trust::Scenario::IssuedByIntermediate,
    );
}

#[test]
fn scenario_4_the_chain_is_incomplete_so_the_https_certificate_is_uploaded_too() {
    scenario(
        HttpsScenario::ChainIncomplete,
        capf_trust::Scenario::ChainIncomplete,
    );
}
