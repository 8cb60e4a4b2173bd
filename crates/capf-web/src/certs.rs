//! The files of the data directory and the CA modes' verbs: trust stores (upload under the
//! guide's rules, list, delete), the CAPF certificate (show, upload), the Offline CA's CSR
//! export and certificate import: `capfctl trust`, `capf-cert`, `csr export`, `cert import`.

use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, PoisonError};
use std::time::SystemTime;

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use capf_admin::csr::{CsrEncoding, CsrExport, ExportTarget, ImportFile, ImportReport};
use capf_admin::{CapfCertificateRequest, OpenTrustStore, TrustCertView, rfc3339};
use capf_lsc::{CertificateAndKey, CertificateSummary, KeySpec, SignatureHash, ValidityDays};
use capf_store::action;
use capf_trust::{Purpose, Release};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::api::{blocking, query};
use crate::auth::Caller;
use crate::error::ApiError;

/// The trust stores' directory under the data directory, as capfd reads it.
const TRUST_DIR: &str = "trust";
/// The CAPF certificate and key in the data directory, as capfd reads them.
const CAPF_CERTIFICATE: &str = "capf.pem";
const CAPF_KEY: &str = "capf.key";
/// How an upload is named in messages (it has no file name).
const UPLOAD: &str = "upload";

fn data_dir(state: &AppState) -> Result<PathBuf, ApiError> {
    state.config.data_dir.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no data directory is configured for the web administration (capf-web --data DIR)",
        )
    })
}

fn unprocessable(message: String) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
}

fn purpose(text: &str) -> Result<Purpose, ApiError> {
    Purpose::new(text).map_err(|e| unprocessable(format!("purpose {text:?}: {e}")))
}

/// Loads the trust stores, logging every file that was not loaded (none is skipped silently).
fn load_trust(dir: &FsPath) -> Result<OpenTrustStore, ApiError> {
    let opened = OpenTrustStore::load(&dir.join(TRUST_DIR), Release::LATEST)?;
    for bad in &opened.bad_files {
        tracing::warn!(
            "trust store: {}: {} (not loaded)",
            bad.path.display(),
            bad.error
        );
    }
    Ok(opened)
}

// ------------------------------------------------------------------------------------------
// Trust stores

/// `GET /api/trust[?purpose=P]`: the certificates of every purpose, or of one.
pub(crate) async fn list_trust(
    State(state): State<Arc<AppState>>,
    uri: axum::http::Uri,
) -> Result<Json<Vec<TrustCertView>>, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Params {
        purpose: Option<String>,
    }
    let params: Params = query(uri.query())?;
    Ok(Json(
        list_trust_core(&state, params.purpose.as_deref()).await?,
    ))
}

/// The trust stores' certificates, of every purpose or of one (the API and Certificate
/// Management).
pub(crate) async fn list_trust_core(
    state: &AppState,
    only: Option<&str>,
) -> Result<Vec<TrustCertView>, ApiError> {
    let only = only.map(purpose).transpose()?;
    let dir = data_dir(state)?;
    blocking(move || Ok(load_trust(&dir)?.views(only.as_ref()))).await
}

/// `POST /api/trust/{purpose}`: the body is a certificate or a chain (PEM, or one DER
/// certificate), uploaded under the guide's rules (capf-trust's, with their messages). Every
/// certificate accepted is saved; when any is refused the answer is 422 naming the first
/// refusal's rule.
pub(crate) async fn upload_trust(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(purpose_text): Path<String>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(
        upload_trust_core(state, caller, &purpose_text, UPLOAD, body).await?,
    ))
}

/// An upload to a trust store under the guide's rules (the API and Certificate Management);
/// every certificate saved is audited with the account. `name` names the upload in messages.
pub(crate) async fn upload_trust_core(
    state: Arc<AppState>,
    caller: Caller,
    purpose_text: &str,
    name: &str,
    body: Bytes,
) -> Result<serde_json::Value, ApiError> {
    let purpose = purpose(purpose_text)?;
    let file = PathBuf::from(name);
    let bundle = capf_trust::parse_bundle(&body)
        .map_err(|source| capf_admin::Error::TrustFile {
            path: file.to_owned(),
            source: Box::new(source),
        })?
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            c.map_err(|source| capf_admin::Error::TrustFileCertificate {
                path: file.to_owned(),
                number: i + 1,
                source: Box::new(source),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let dir = data_dir(&state)?;
    blocking(move || {
        let _files = state.files.lock().unwrap_or_else(PoisonError::into_inner);
        let mut opened = load_trust(&dir)?;
        let now = SystemTime::now();
        let verdicts = opened.upload(&purpose, bundle, now)?;
        for v in &verdicts {
            tracing::info!(
                account = caller.account.as_str(),
                "trust upload to {purpose}: {} {}: {}",
                v.fingerprint,
                v.subject,
                capf_admin::verdict_text(&v.verdict)
            );
            if v.verdict.is_accepted() {
                caller.store.record_admin_action(
                    action::TRUST_UPLOADED,
                    &format!("{purpose} {} {}", v.fingerprint, v.subject),
                    now,
                )?;
            }
        }
        capf_admin::check_verdicts(&file, &verdicts)?;
        Ok(json!({
            "purpose": purpose.as_str(),
            "certificates": verdicts
                .iter()
                .map(|v| json!({
                    "fingerprint_sha256": v.fingerprint.to_string(),
                    "subject": v.subject,
                    "role": v.role.to_string(),
                    "verdict": capf_admin::verdict_text(&v.verdict),
                }))
                .collect::<Vec<_>>(),
        }))
    })
    .await
}

/// `DELETE /api/trust/{purpose}/{fingerprint}`: the one certificate whose SHA-256 fingerprint
/// starts with the text (8 hex digits or more, colons allowed).
pub(crate) async fn delete_trust(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path((purpose_text, fingerprint)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(
        delete_trust_core(state, caller, &purpose_text, fingerprint).await?,
    ))
}

/// Deletes one certificate by fingerprint prefix, audited (the API and Certificate
/// Management).
pub(crate) async fn delete_trust_core(
    state: Arc<AppState>,
    caller: Caller,
    purpose_text: &str,
    fingerprint: String,
) -> Result<serde_json::Value, ApiError> {
    let purpose = purpose(purpose_text)?;
    let dir = data_dir(&state)?;
    blocking(move || {
        let _files = state.files.lock().unwrap_or_else(PoisonError::into_inner);
        let cert = load_trust(&dir)?.delete_by_prefix(&purpose, &fingerprint)?;
        tracing::info!(
            account = caller.account.as_str(),
            "trust delete from {purpose}: {} {}",
            cert.fingerprint(),
            cert.subject()
        );
        caller.store.record_admin_action(
            action::TRUST_DELETED,
            &format!("{purpose} {} {}", cert.fingerprint(), cert.subject()),
            SystemTime::now(),
        )?;
        Ok(json!({
            "purpose": purpose.as_str(),
            "deleted": cert.fingerprint().to_string(),
            "subject": cert.subject(),
        }))
    })
    .await
}

// ------------------------------------------------------------------------------------------
// The CAPF certificate

/// A certificate as `capfctl capf-cert show` prints it, with the CAPF profile's problems.
fn capf_view(loaded: &CertificateAndKey) -> Result<serde_json::Value, ApiError> {
    let cert = &loaded.certificate;
    let s = CertificateSummary::of(cert).map_err(capf_admin::Error::from)?;
    let problems = capf_lsc::capf_certificate_problems(cert, None, SystemTime::now())
        .map_err(capf_admin::Error::from)?;
    Ok(json!({
        "subject": s.subject,
        "issuer": s.issuer,
        "serial": s.serial_hex,
        "not_before": rfc3339(s.not_before),
        "not_after": rfc3339(s.not_after),
        "key": match &s.key {
            Ok(spec) => spec.to_string(),
            Err(e) => format!("unsupported ({e})"),
        },
        "signature": s.signature_algorithm,
        "constraints": s.constraints_text(),
        "key_usage": s.key_usage,
        "profile_problems": problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
    }))
}

/// `GET /api/capf-cert`: the CAPF certificate of the data directory (`capf.pem`) and whether
/// it passes the CAPF certificate profile.
pub(crate) async fn show_capf_cert(
    State(state): State<Arc<AppState>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(show_capf_core(&state).await?))
}

/// The CAPF certificate's view (the API and Certificate Management).
pub(crate) async fn show_capf_core(state: &AppState) -> Result<serde_json::Value, ApiError> {
    let path = data_dir(state)?.join(CAPF_CERTIFICATE);
    let store = Arc::clone(&state.store);
    blocking(move || {
        // A cluster's certificate is the store's; the data directory's files are a copy.
        if let Some(stored) = store.cluster_capf_certificate()? {
            let loaded = CertificateAndKey::from_pem_or_der(stored.certificate_pem.as_bytes())
                .map_err(capf_admin::Error::from)?;
            return capf_view(&loaded);
        }
        if !path.exists() {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no CAPF certificate ({CAPF_CERTIFICATE}) in the data directory"),
            ));
        }
        let loaded =
            capf_admin::read_certificate_and_key(capf_admin::NamedFile::plain(&path), None)?;
        capf_view(&loaded)
    })
    .await
}

/// Replaces `path` with `data` (written beside it, then renamed over it), private when asked.
fn replace_file(path: &FsPath, data: &[u8], private: bool) -> Result<(), ApiError> {
    let temp = path.with_extension("upload");
    let _ = std::fs::remove_file(&temp);
    let io = |source| {
        ApiError::from(capf_admin::Error::Io {
            action: "writing",
            path: path.to_owned(),
            source,
        })
    };
    capf_admin::write_new_file(&temp, data, private)?;
    std::fs::rename(&temp, path).map_err(io)
}

/// `PUT /api/capf-cert`: the body is a PEM bundle of a CAPF certificate and its PKCS#8 key (as
/// `capfctl capf-cert check` takes it). It is checked against the CAPF certificate profile
/// (14SU2 extensions, dates, the key matching) and, when it passes, replaces `capf.pem` and
/// `capf.key` (mode 0600) in the data directory; capfd picks the new pair up.
pub(crate) async fn upload_capf_cert(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(upload_capf_core(state, caller, body).await?))
}

/// Replaces the CAPF certificate and key by a checked bundle, audited (the API and
/// Certificate Management).
pub(crate) async fn upload_capf_core(
    state: Arc<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<serde_json::Value, ApiError> {
    let dir = data_dir(&state)?;
    let loaded = CertificateAndKey::from_pem_or_der(&body)
        .map_err(|e| unprocessable(format!("{UPLOAD}: {}", capf_admin::error_chain(&e))))?;
    let key = loaded.require_key().map_err(|_| {
        unprocessable(format!(
            "{UPLOAD}: no private key: send the CAPF certificate and its PKCS#8 key in one PEM \
             bundle"
        ))
    })?;
    let report =
        capf_admin::check_capf_certificate(&loaded, FsPath::new(UPLOAD), SystemTime::now())?;
    let key_pem = key.to_pkcs8_pem().map_err(capf_admin::Error::from)?;
    let cert_pem =
        capf_lsc::certificate_to_pem(&loaded.certificate).map_err(capf_admin::Error::from)?;
    blocking(move || {
        let _files = state.files.lock().unwrap_or_else(PoisonError::into_inner);
        // The key first: a reader seeing the new certificate with the old key refuses the pair
        // and reloads when the key changes.
        replace_file(&dir.join(CAPF_KEY), key_pem.as_bytes(), true)?;
        replace_file(&dir.join(CAPF_CERTIFICATE), cert_pem.as_bytes(), false)?;
        // On a cluster's store it becomes the cluster's, which every node loads.
        caller.store.replace_cluster_capf_certificate(
            &cert_pem,
            &capf_store::Secret::new(key_pem.as_str()),
            SystemTime::now(),
        )?;
        let view = capf_view(&loaded)?;
        let cn = report.common_name.as_deref().unwrap_or("no CN");
        tracing::info!(
            account = caller.account.as_str(),
            "CAPF certificate replaced: {cn}"
        );
        caller.store.record_admin_action(
            action::CAPF_CERTIFICATE_REPLACED,
            &format!("CN={cn} serial {}", view["serial"].as_str().unwrap_or("")),
            SystemTime::now(),
        )?;
        Ok(view)
    })
    .await
}

/// `POST /api/capf-cert/regenerate`'s body: `capfctl capf-cert generate`'s choices, each
/// optional.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegenerateBody {
    /// rsa2048 (default), rsa3072, rsa4096, p256 or p384.
    key_type: Option<String>,
    /// 1 to 1825 (default 1825).
    days: Option<String>,
    /// sha256 (default), sha384, sha512.
    hash: Option<String>,
    /// The 8 hex digits after `CAPF-`: by default the current certificate's, else random.
    capf_id: Option<String>,
}

/// `POST /api/capf-cert/regenerate`: a new CAPF key and self-signed CAPF certificate
/// (capf-admin's `generate_capf_certificate`, as `capfctl capf-cert generate`), replacing
/// `capf.pem` and `capf.key`; the CN keeps the current `CAPF-` id unless another is given.
pub(crate) async fn regenerate_capf_cert(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let body: RegenerateBody = if body.is_empty() {
        RegenerateBody::default()
    } else {
        crate::api::parse_json(&body)?
    };
    Ok(Json(regenerate_capf_core(state, caller, body).await?))
}

/// Regenerates the CAPF certificate and key, audited (the API and Certificate Management).
pub(crate) async fn regenerate_capf_core(
    state: Arc<AppState>,
    caller: Caller,
    body: RegenerateBody,
) -> Result<serde_json::Value, ApiError> {
    fn field<E: std::error::Error + 'static>(name: &str) -> impl FnOnce(E) -> ApiError + '_ {
        move |e| unprocessable(format!("{name}: {}", capf_admin::error_chain(&e)))
    }
    let key: KeySpec = body
        .key_type
        .as_deref()
        .unwrap_or("rsa2048")
        .parse()
        .map_err(field("key_type"))?;
    let validity: ValidityDays = body
        .days
        .as_deref()
        .unwrap_or("1825")
        .parse()
        .map_err(field("days"))?;
    let hash: SignatureHash = body
        .hash
        .as_deref()
        .unwrap_or("sha256")
        .parse()
        .map_err(field("hash"))?;
    let given_id = body
        .capf_id
        .as_deref()
        .map(capf_admin::parse_capf_id)
        .transpose()?;
    let dir = data_dir(&state)?;
    blocking(move || {
        let _files = state.files.lock().unwrap_or_else(PoisonError::into_inner);
        let current = dir.join(CAPF_CERTIFICATE);
        let capf_id = given_id.or_else(|| current_capf_id(&current));
        // Written beside the live pair as new files (generate_capf_certificate overwrites
        // nothing), then renamed over it, the key first as for an upload.
        let certificate_out = dir.join("capf.pem.regenerated");
        let key_out = dir.join("capf.key.regenerated");
        let _ = std::fs::remove_file(&certificate_out);
        let _ = std::fs::remove_file(&key_out);
        let request = CapfCertificateRequest {
            key,
            validity,
            hash,
            capf_id,
            organization: String::new(),
            organizational_unit: String::new(),
            locality: String::new(),
            state: String::new(),
            country: String::new(),
            certificate_out: certificate_out.clone(),
            key_out: key_out.clone(),
        };
        let now = SystemTime::now();
        let made = capf_admin::generate_capf_certificate(&request, now);
        let common_name = match made {
            Ok(cn) => cn,
            Err(e) => {
                let _ = std::fs::remove_file(&certificate_out);
                let _ = std::fs::remove_file(&key_out);
                return Err(e.into());
            }
        };
        let rename = |from: &FsPath, to: &FsPath| {
            std::fs::rename(from, to).map_err(|source| {
                ApiError::from(capf_admin::Error::Io {
                    action: "writing",
                    path: to.to_owned(),
                    source,
                })
            })
        };
        rename(&key_out, &dir.join(CAPF_KEY))?;
        rename(&certificate_out, &current)?;
        let loaded =
            capf_admin::read_certificate_and_key(capf_admin::NamedFile::plain(&current), None)?;
        // On a cluster's store it becomes the cluster's, which every node loads.
        let read = |path: &FsPath| {
            std::fs::read_to_string(path).map_err(|source| {
                ApiError::from(capf_admin::Error::Io {
                    action: "reading",
                    path: path.to_owned(),
                    source,
                })
            })
        };
        caller.store.replace_cluster_capf_certificate(
            &read(&current)?,
            &capf_store::Secret::new(read(&dir.join(CAPF_KEY))?),
            now,
        )?;
        let view = capf_view(&loaded)?;
        tracing::info!(
            account = caller.account.as_str(),
            "CAPF certificate regenerated: {common_name} ({key}, {validity})"
        );
        caller.store.record_admin_action(
            action::CAPF_CERTIFICATE_REGENERATED,
            &format!(
                "CN={common_name} serial {} {key} {validity}",
                view["serial"].as_str().unwrap_or("")
            ),
            now,
        )?;
        Ok(view)
    })
    .await
}

/// The `CAPF-` id of the certificate in `path`, when it has one.
fn current_capf_id(path: &FsPath) -> Option<u32> {
    let loaded =
        capf_admin::read_certificate_and_key(capf_admin::NamedFile::plain(path), None).ok()?;
    let summary = CertificateSummary::of(&loaded.certificate).ok()?;
    let cn = summary.subject.split(',').find_map(|part| {
        part.trim()
            .strip_prefix("CN=CAPF-")
            .map(|id| id.trim().to_owned())
    })?;
    capf_admin::parse_capf_id(&cn).ok()
}

// ------------------------------------------------------------------------------------------
// Offline CA: CSR export and certificate import

/// `GET /api/csrs/export[?der=true]`: every Pending request's CSR (`<DEVICE>-<id>.csr` PEM, or
/// `.der`) with `index.csv`, as one `.tgz` download for the offline CA.
pub(crate) async fn export_csrs(
    Extension(caller): Extension<Caller>,
    uri: axum::http::Uri,
) -> Result<Response, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Params {
        #[serde(default)]
        der: bool,
    }
    let params: Params = query(uri.query())?;
    let encoding = if params.der {
        CsrEncoding::Der
    } else {
        CsrEncoding::Pem
    };
    let archive = blocking(move || {
        // capf-admin writes the archive as a new file: a private directory of our own for it.
        let dir =
            std::env::temp_dir().join(format!("capf-web-export-{}", crate::auth::random_hex()?));
        let made = std::fs::create_dir(&dir).map_err(|source| capf_admin::Error::Io {
            action: "creating",
            path: dir.clone(),
            source,
        });
        made?;
        let path = dir.join("csrs.tgz");
        let result = capf_admin::csr::export_csrs(
            &*caller.store,
            &CsrExport {
                target: ExportTarget::Tgz(path.clone()),
                encoding,
            },
        )
        .map_err(ApiError::from)
        .and_then(|_| {
            std::fs::read(&path).map_err(|source| {
                ApiError::from(capf_admin::Error::Io {
                    action: "reading",
                    path: path.clone(),
                    source,
                })
            })
        });
        let _ = std::fs::remove_dir_all(&dir);
        result
    })
    .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/gzip"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"capf-csrs.tgz\"",
            ),
        ],
        archive,
    )
        .into_response())
}

/// `POST /api/certs/import`: the body is what the offline CA signed: a `.tgz` of certificate
/// files, or one file (DER, PEM with any number of certificates, PKCS#7 `.p7b`). Each
/// certificate is matched to its Pending request and checked against CAPF-trust on its own;
/// the answer is the per-certificate report (`imported`, `refused` with reasons), 422 when
/// nothing was imported and something was refused.
pub(crate) async fn import_certs(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let dir = data_dir(&state)?;
    let report = blocking(move || {
        let (inputs, mut refused) = if body.starts_with(&[0x1f, 0x8b]) {
            capf_admin::csr::read_tgz("upload.tgz", &body)
        } else if body.len() as u64 > capf_admin::csr::MAX_IMPORT_FILE_LEN {
            (
                Vec::new(),
                vec![capf_admin::csr::RefusedView {
                    source: UPLOAD.to_owned(),
                    reason: format!(
                        "larger than the {}-byte limit",
                        capf_admin::csr::MAX_IMPORT_FILE_LEN
                    ),
                }],
            )
        } else {
            (
                vec![ImportFile {
                    name: UPLOAD.to_owned(),
                    data: body.to_vec(),
                }],
                Vec::new(),
            )
        };
        let trust = load_trust(&dir)?;
        let mut report: ImportReport = capf_admin::csr::import_certificates(
            &*caller.store,
            &trust.store,
            &inputs,
            SystemTime::now(),
        )?;
        refused.append(&mut report.refused);
        report.refused = refused;
        Ok(report)
    })
    .await?;
    if report.imported.is_empty() && !report.refused.is_empty() {
        let error = format!(
            "{} certificate(s) or file(s) refused, none imported",
            report.refused.len()
        );
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({ "error": error, "imported": [], "refused": report.refused })),
        )
            .into_response());
    }
    Ok(Json(report).into_response())
}
