//! The AD CS test double checked by the independent PyPI client `certsrv` (magnuswatn/certsrv,
//! with requests-ntlm), so the double is not shaped to capf's own client: issued (PEM and DER),
//! pending then issued, denied (unknown template, malformed CSR), wrong credentials, the CA
//! certificate and chain, by Basic and by NTLM.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use capf_test_support::certsrv::{
    Auth, CertsrvDouble, HOST, Options, PASSWORD, PENDING_TEMPLATE, TEMPLATE, USER, csr_pem, script,
};

fn check_with_certsrv(auth: Auth) {
    let double = CertsrvDouble::start(&Options {
        auth,
        ..Options::default()
    });
    csr_pem(&double.dir, "rsa-3072.pem", "SEP001122334455");
    let csr = double.dir.join("SEP001122334455.csr");
    let check = script().with_file_name("certsrv_check.py");
    let out = Command::new("python3")
        .arg(&check)
        .arg(format!("{HOST}:{}", double.port))
        .arg(&double.root_pem)
        .args([
            USER,
            PASSWORD,
            match auth {
                Auth::Basic => "basic",
                Auth::Ntlm => "ntlm",
            },
        ])
        .args([TEMPLATE, PENDING_TEMPLATE])
        .arg(&csr)
        .env_remove("REQUESTS_CA_BUNDLE")
        .output()
        .expect("python3 with certsrv and requests-ntlm (installed by `cargo xtask test`)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("OK"),
        "certsrv_check.py: {text}"
    );
}

#[test]
fn the_certsrv_client_works_with_the_double_over_ntlm() {
    check_with_certsrv(Auth::Ntlm);
}

#[test]
fn the_certsrv_client_works_with_the_double_over_basic() {
    check_with_certsrv(Auth::Basic);
}
