//! Certificate Management: the trust stores (upload with a purpose under the guide's rules and
//! messages, delete) and the CAPF certificate (show, regenerate, upload).

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use axum::response::Response;
use capf_trust::Purpose;

use super::bulk::file_label;
use super::html::{self, Notice, esc};
use super::{FormData, PageCaller};
use crate::AppState;
use crate::certs::{self as core, RegenerateBody};
use crate::error::ApiError;

/// `GET /certificates`.
pub(super) async fn page(
    State(state): State<Arc<AppState>>,
    Extension(pc): Extension<PageCaller>,
) -> Response {
    render(&state, &pc, Notice::None).await
}

async fn render(state: &AppState, pc: &PageCaller, notice: Notice) -> Response {
    let csrf = html::csrf_field(&pc.csrf);
    let capf = match core::show_capf_core(state).await {
        Ok(view) => {
            let text = |key: &str| esc(view[key].as_str().unwrap_or(""));
            let problems: Vec<String> = view["profile_problems"]
                .as_array()
                .map(|a| a.iter().filter_map(|p| p.as_str()).map(esc).collect())
                .unwrap_or_default();
            format!(
                r#"<dl class="fields" id="capf-certificate"><dt>Subject</dt><dd id="capf-subject">{}</dd><dt>Issuer</dt><dd>{}</dd><dt>Serial</dt><dd><code id="capf-serial">{}</code></dd><dt>Valid from</dt><dd>{}</dd><dt>Valid to</dt><dd>{}</dd><dt>Key</dt><dd>{}</dd><dt>Signature</dt><dd>{}</dd><dt>CAPF certificate profile</dt><dd>{}</dd></dl>"#,
                text("subject"),
                text("issuer"),
                text("serial"),
                text("not_before"),
                text("not_after"),
                text("key"),
                text("signature"),
                if problems.is_empty() {
                    "passes".to_owned()
                } else {
                    problems.join("; ")
                },
            )
        }
        Err(e) => format!(
            r#"<p class="muted" id="capf-certificate">{}</p>"#,
            esc(&e.message)
        ),
    };
    let key_types: Vec<(String, String)> = ["rsa2048", "rsa3072", "rsa4096", "p256", "p384"]
        .iter()
        .map(|k| ((*k).to_owned(), (*k).to_owned()))
        .collect();
    let hashes: Vec<(String, String)> = ["sha256", "sha384", "sha512"]
        .iter()
        .map(|k| ((*k).to_owned(), (*k).to_owned()))
        .collect();
    let purposes: Vec<(String, String)> = Purpose::KNOWN
        .iter()
        .map(|p| (p.as_str().to_owned(), p.as_str().to_owned()))
        .collect();
    let trust = match core::list_trust_core(state, None).await {
        Ok(views) => {
            let rows: Vec<Vec<String>> = views
                .iter()
                .map(|v| {
                    vec![
                        esc(&v.purpose),
                        esc(v.common_name.as_deref().unwrap_or(&v.subject)),
                        esc(&v.issuer),
                        esc(&v.not_after),
                        format!("<code>{}</code>", esc(&v.fingerprint_sha256)),
                        format!(
                            r#"<form method="post" action="/certificates/trust/delete">{csrf}<input type="hidden" name="purpose" value="{}"><input type="hidden" name="fingerprint" value="{}"><button type="submit" class="danger">Delete</button></form>"#,
                            esc(&v.purpose),
                            esc(&v.fingerprint_sha256)
                        ),
                    ]
                })
                .collect();
            html::table(
                "trust",
                &[
                    "Purpose",
                    "Common Name",
                    "Issuer",
                    "Valid to",
                    "SHA-256",
                    "",
                ],
                &rows,
            )
        }
        Err(e) => format!(r#"<p class="muted">{}</p>"#, esc(&e.message)),
    };
    let body = format!(
        r#"<section><h2>Upload Certificate/Certificate chain</h2>
<form method="post" action="/certificates/trust" enctype="multipart/form-data" id="trust-upload" class="grid">{csrf}{purpose}
<label>Certificate or chain (PEM or DER)<input type="file" name="certificate" id="trust-file"></label>
<div class="actions"><button type="submit" id="trust-upload-button">Upload</button></div></form>
<p class="muted">The guide's rules apply: a certificate whose Common Name holds "CAPF-" is reserved for CAPF certificates; CA certificates need their CA extensions.</p></section>
<section><h2>Trust stores</h2>{trust}</section>
<section><h2>CAPF certificate</h2>{capf}
<h2>Regenerate</h2>
<form method="post" action="/certificates/capf/regenerate" id="capf-regenerate" class="grid">{csrf}{key_type}{days}{hash}
<div class="actions"><button type="submit" class="danger" id="regenerate">Regenerate</button></div></form>
<p class="muted">A new key and self-signed CAPF certificate replace the current pair (the CN keeps its CAPF- id); phones must trust the new certificate before their next operation.</p>
<h2>Upload a CAPF certificate</h2>
<form method="post" action="/certificates/capf" enctype="multipart/form-data" id="capf-upload" class="grid">{csrf}
<label>PEM bundle: the CAPF certificate and its PKCS#8 key<input type="file" name="bundle" id="capf-file"></label>
<div class="actions"><button type="submit" id="capf-upload-button">Upload</button></div></form></section>"#,
        purpose = html::select("Certificate Purpose", "purpose", &purposes, "CAPF-trust"),
        key_type = html::select("Key type", "key_type", &key_types, "rsa2048"),
        days = html::input("Validity (days, 1 to 1825)", "days", "1825", "number"),
        hash = html::select("Signature digest", "hash", &hashes, "sha256"),
    );
    html::page(
        "Certificate Management",
        "/certificates",
        Some(&pc.viewer()),
        &notice,
        &body,
    )
}

fn no_file(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        format!("choose {what} to upload"),
    )
}

/// `POST /certificates/trust`: the API's trust upload, the guide's messages on refusal.
pub(super) async fn upload_trust(
    State(state): State<Arc<AppState>>,
    Extension(pc): Extension<PageCaller>,
    multipart: Multipart,
) -> Response {
    let result = async {
        let form = FormData::from_multipart(multipart).await?;
        pc.may_change(&form)?;
        let file = form
            .file("certificate")
            .ok_or_else(|| no_file("a certificate file"))?;
        let name = file_label(&file.name, "upload");
        let purpose = form.get("purpose").to_owned();
        core::upload_trust_core(
            Arc::clone(&state),
            pc.caller.clone(),
            &purpose,
            &name,
            file.data.clone(),
        )
        .await
    }
    .await;
    let notice = match result {
        Ok(view) => Notice::Done(format!(
            "Uploaded to {}: {} certificate(s) accepted.",
            view["purpose"].as_str().unwrap_or(""),
            view["certificates"].as_array().map_or(0, Vec::len)
        )),
        Err(e) => Notice::Refused(e),
    };
    render(&state, &pc, notice).await
}

/// `POST /certificates/trust/delete`.
pub(super) async fn delete_trust(
    State(state): State<Arc<AppState>>,
    Extension(pc): Extension<PageCaller>,
    axum::Form(fields): axum::Form<Vec<(String, String)>>,
) -> Response {
    let form = FormData::from_pairs(fields);
    let result = async {
        pc.may_change(&form)?;
        core::delete_trust_core(
            Arc::clone(&state),
            pc.caller.clone(),
            form.get("purpose"),
            form.get("fingerprint").to_owned(),
        )
        .await
    }
    .await;
    let notice = match result {
        Ok(view) => Notice::Done(format!(
            "Deleted {} from {}.",
            view["subject"].as_str().unwrap_or(""),
            view["purpose"].as_str().unwrap_or("")
        )),
        Err(e) => Notice::Refused(e),
    };
    render(&state, &pc, notice).await
}

/// `POST /certificates/capf`: the API's CAPF certificate upload.
pub(super) async fn upload_capf(
    State(state): State<Arc<AppState>>,
    Extension(pc): Extension<PageCaller>,
    multipart: Multipart,
) -> Response {
    let result = async {
        let form = FormData::from_multipart(multipart).await?;
        pc.may_change(&form)?;
        let file = form.file("bundle").ok_or_else(|| no_file("a PEM bundle"))?;
        core::upload_capf_core(Arc::clone(&state), pc.caller.clone(), file.data.clone()).await
    }
    .await;
    let notice = match result {
        Ok(view) => Notice::Done(format!(
            "The CAPF certificate is now {}.",
            view["subject"].as_str().unwrap_or("")
        )),
        Err(e) => Notice::Refused(e),
    };
    render(&state, &pc, notice).await
}

/// `POST /certificates/capf/regenerate`: the API's regenerate.
pub(super) async fn regenerate(
    State(state): State<Arc<AppState>>,
    Extension(pc): Extension<PageCaller>,
    axum::Form(fields): axum::Form<Vec<(String, String)>>,
) -> Response {
    let form = FormData::from_pairs(fields);
    let result = async {
        pc.may_change(&form)?;
        let body: RegenerateBody = form.body(&["key_type", "days", "hash", "capf_id"], &[])?;
        core::regenerate_capf_core(Arc::clone(&state), pc.caller.clone(), body).await
    }
    .await;
    let notice = match result {
        Ok(view) => Notice::Done(format!(
            "Regenerated: the CAPF certificate is now {} (serial {}).",
            view["subject"].as_str().unwrap_or(""),
            view["serial"].as_str().unwrap_or("")
        )),
        Err(e) => Notice::Refused(e),
    };
    render(&state, &pc, notice).await
}
