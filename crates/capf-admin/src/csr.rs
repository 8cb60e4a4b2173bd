//! The Offline CA (the guide's `utils capf csr list/count/delete/dump` and `utils capf cert
//! import`): requests to an external CA listed, counted, deleted and dumped; the pending ones
//! exported for the CA (PEM or DER files, with an `index.csv`, to a directory or one `.tgz`);
//! the certificates the CA signed imported (DER, PEM, PKCS#7 `.p7b`, a `.tgz` of them), each
//! judged on its own by capf-trust's [`check_external_lsc`] and applied with
//! [`SessionStore::ca_request_issued`](capf_store::SessionStore::ca_request_issued).

use std::collections::HashMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use capf_lsc::der::{self, Decode, Encode, Reader, SliceReader, Tag, TagNumber, Tagged};
use capf_lsc::x509_cert::Certificate;
use capf_store::{AdminStore, CaRequest, CaRequestState, DeviceStore};
use capf_trust::{Fingerprint, TrustStore, check_external_lsc};
use serde::Serialize;

use crate::Error;
use crate::files::write_new_file;
use crate::time::rfc3339;
use crate::views::CsrView;

/// The index file written next to exported CSRs.
pub const INDEX_FILE: &str = "index.csv";
/// The columns of [`INDEX_FILE`], in order.
pub const INDEX_COLUMNS: [&str; 6] = [
    "id",
    "device",
    "mode",
    "received_at",
    "public_key_sha256",
    "file",
];
/// The largest certificate file (or `.tgz` member) import reads: far above any certificate
/// chain (a p7b of a few certificates is a few kB), so a huge member is refused, not read.
pub const MAX_IMPORT_FILE_LEN: u64 = 1024 * 1024;
/// The most members a `.tgz` may hold (each one read is at most [`MAX_IMPORT_FILE_LEN`]).
pub const MAX_ARCHIVE_MEMBERS: usize = 200_000;
/// The most bytes all members of a `.tgz` may hold together once decompressed: bounds what an
/// archive that decompresses to much more than its size (a "gzip bomb") can make import read.
pub const MAX_ARCHIVE_LEN: u64 = 1024 * 1024 * 1024;
/// The most certificates one file (or PKCS#7 bundle) may hold.
pub const MAX_CERTIFICATES_PER_FILE: usize = 64;

/// The requests to an external CA, oldest first: all, or those in `state`.
///
/// # Errors
/// The store's.
pub fn list_csrs(
    store: &dyn AdminStore,
    state: Option<CaRequestState>,
) -> Result<Vec<CsrView>, Error> {
    Ok(store
        .ca_requests(state)?
        .iter()
        .map(CsrView::from)
        .collect())
}

/// How many requests there are: all, or those in `state` (the guide's `csr count`).
///
/// # Errors
/// The store's.
pub fn count_csrs(store: &dyn AdminStore, state: Option<CaRequestState>) -> Result<usize, Error> {
    Ok(store.ca_requests(state)?.len())
}

/// Which requests `csr delete` deletes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CsrSelection {
    /// The request with this id.
    One(i64),
    /// Every request (the guide's `csr delete all`).
    All,
}

/// Deletes the requests selected; returns how many.
///
/// # Errors
/// [`capf_store::Error::UnknownCsr`] (as [`Error::Store`]) for an unknown id, or the store's.
pub fn delete_csrs(
    store: &dyn AdminStore,
    which: CsrSelection,
    now: SystemTime,
) -> Result<usize, Error> {
    match which {
        CsrSelection::One(id) => store
            .delete_ca_request(id, now)
            .map(|_| 1)
            .map_err(Error::from),
        CsrSelection::All => Ok(store.delete_ca_requests(now)?),
    }
}

/// The request's CSR as PEM (`CERTIFICATE REQUEST`): the guide's `csr dump`.
///
/// # Errors
/// [`capf_store::Error::UnknownCsr`] (as [`Error::Store`]), or the store's.
pub fn csr_pem(store: &dyn AdminStore, id: i64) -> Result<String, Error> {
    let request = store
        .ca_request(id)?
        .ok_or(capf_store::Error::UnknownCsr { id })?;
    pem("CERTIFICATE REQUEST", &request.csr)
}

fn pem(label: &'static str, der: &[u8]) -> Result<String, Error> {
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).map_err(|e| {
        Error::Lsc(Box::new(capf_lsc::Error::Der {
            what: label,
            source: e.into(),
        }))
    })
}

/// How exported CSRs are encoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CsrEncoding {
    /// PEM `CERTIFICATE REQUEST`, files named `<DEVICE>-<id>.csr`.
    #[default]
    Pem,
    /// DER, files named `<DEVICE>-<id>.der`.
    Der,
}

/// Where `csr export` writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExportTarget {
    /// A directory (created when missing; an existing file in it is never overwritten).
    Dir(PathBuf),
    /// One gzip-compressed tar archive, a new file.
    Tgz(PathBuf),
}

/// What `csr export` does: every Pending request, one file each, plus [`INDEX_FILE`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsrExport {
    /// Where.
    pub target: ExportTarget,
    /// PEM or DER.
    pub encoding: CsrEncoding,
}

/// One exported request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExportedCsrView {
    /// The request id.
    pub id: i64,
    /// The device.
    pub device: String,
    /// The file written (in the directory, or the member of the archive).
    pub file: String,
}

/// What `csr export` wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CsrExportView {
    /// The directory or archive.
    pub target: String,
    /// The requests, oldest first.
    pub exported: Vec<ExportedCsrView>,
}

/// A file's name and content, to write into a directory or an archive.
type NamedData = (String, Vec<u8>);

/// The exported files of `requests`, named, with `index.csv` last.
fn export_files(
    requests: &[CaRequest],
    encoding: CsrEncoding,
) -> Result<(Vec<NamedData>, Vec<ExportedCsrView>), Error> {
    let mut files = Vec::with_capacity(requests.len() + 1);
    let mut views = Vec::with_capacity(requests.len());
    let mut index = csv::Writer::from_writer(Vec::new());
    index.write_record(INDEX_COLUMNS).map_err(csv_error)?;
    for r in requests {
        let (name, data) = match encoding {
            CsrEncoding::Pem => (
                format!("{}-{}.csr", r.device, r.id),
                pem("CERTIFICATE REQUEST", &r.csr)?.into_bytes(),
            ),
            CsrEncoding::Der => (format!("{}-{}.der", r.device, r.id), r.csr.clone()),
        };
        index
            .write_record([
                r.id.to_string().as_str(),
                r.device.as_str(),
                r.mode.as_str(),
                rfc3339(r.received_at).as_str(),
                Fingerprint::of(&r.public_key).to_string().as_str(),
                name.as_str(),
            ])
            .map_err(csv_error)?;
        views.push(ExportedCsrView {
            id: r.id,
            device: r.device.to_string(),
            file: name.clone(),
        });
        files.push((name, data));
    }
    let index = index
        .into_inner()
        .map_err(|e| csv_error(csv::Error::from(e.into_error())))?;
    files.push((INDEX_FILE.to_owned(), index));
    Ok((files, views))
}

fn csv_error(error: csv::Error) -> Error {
    Error::Csv { error }
}

/// Exports every Pending request (the CSRs the offline CA is to sign), oldest first, with
/// [`INDEX_FILE`] (`id,device,mode,received_at,public_key_sha256,file`).
///
/// # Errors
/// [`Error::CreateNew`] for a file (or archive) that exists already, [`Error::Io`], or the
/// store's.
pub fn export_csrs(store: &dyn AdminStore, export: &CsrExport) -> Result<CsrExportView, Error> {
    let pending = store.ca_requests(Some(CaRequestState::Pending))?;
    let (files, exported) = export_files(&pending, export.encoding)?;
    let target = match &export.target {
        ExportTarget::Dir(dir) => {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                action: "creating",
                path: dir.clone(),
                source,
            })?;
            for (name, data) in &files {
                write_new_file(&dir.join(name), data, false)?;
            }
            dir
        }
        ExportTarget::Tgz(path) => {
            let mtime = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            write_new_file(path, &tgz(&files, mtime).map_err(io_error(path))?, false)?;
            path
        }
    };
    Ok(CsrExportView {
        target: target.display().to_string(),
        exported,
    })
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        action: "writing",
        path: path.to_owned(),
        source,
    }
}

/// A gzip-compressed tar archive of `files` (regular files, mode 0644), in memory.
fn tgz(files: &[NamedData], mtime: u64) -> std::io::Result<Vec<u8>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (name, data) in files {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(mtime);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, name, data.as_slice())?;
    }
    tar.into_inner()?.finish()
}

// ---------------------------------------------------------------------------------------------
// Import

/// One input of `cert import`: a file's name (as the administrator gave it) and its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportFile {
    /// How refusals name it: the path given, or `ARCHIVE:MEMBER` for a `.tgz` member.
    pub name: String,
    /// Its content.
    pub data: Vec<u8>,
}

/// A certificate (or a whole input) refused: one line `SOURCE: REASON`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RefusedView {
    /// The file, `ARCHIVE:MEMBER`, or either with `#N` for the N-th certificate (from 1) of a
    /// file holding several.
    pub source: String,
    /// Why, for an administrator.
    pub reason: String,
}

/// A certificate imported: recorded as Issued, awaiting delivery to the phone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImportedView {
    /// Where it came from.
    pub source: String,
    /// The request it answered.
    pub request: i64,
    /// The device.
    pub device: String,
    /// The LSC's serial, hex.
    pub serial: String,
    /// notAfter, RFC 3339.
    pub not_after: String,
}

/// What `cert import` did: each certificate judged on its own.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// The certificates applied.
    pub imported: Vec<ImportedView>,
    /// The certificates (or inputs) refused, nothing of which was applied.
    pub refused: Vec<RefusedView>,
}

impl ImportReport {
    fn refuse(&mut self, source: impl Into<String>, reason: impl Into<String>) {
        self.refused.push(RefusedView {
            source: source.into(),
            reason: reason.into(),
        });
    }
}

/// The members of a `.tgz` named `archive`, read in memory (nothing is written anywhere): each
/// regular file as an [`ImportFile`] named `ARCHIVE:MEMBER`. A member whose path is absolute or
/// climbs out (`..`), a link, a special file, or one larger than [`MAX_IMPORT_FILE_LEN`], is
/// refused with the reason; directories are passed over. An archive that does not decompress or
/// parse is refused whole, after the members read so far.
pub fn read_tgz(archive: &str, data: &[u8]) -> (Vec<ImportFile>, Vec<RefusedView>) {
    let mut files = Vec::new();
    let mut refused = Vec::new();
    let mut refuse = |source: String, reason: String| refused.push(RefusedView { source, reason });
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(data));
    let entries = match tar.entries() {
        Ok(entries) => entries,
        Err(e) => {
            refuse(archive.to_owned(), format!("not a .tgz archive: {e}"));
            return (files, refused);
        }
    };
    let mut total: u64 = 0;
    for (count, entry) in entries.enumerate() {
        if count >= MAX_ARCHIVE_MEMBERS {
            refuse(
                archive.to_owned(),
                format!("more than {MAX_ARCHIVE_MEMBERS} members; the rest was not read"),
            );
            break;
        }
        let mut entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                refuse(
                    archive.to_owned(),
                    format!("not a .tgz archive, or damaged: {e}"),
                );
                break;
            }
        };
        let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let source = format!("{archive}:{raw_path}");
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            continue;
        }
        if kind.is_symlink() || kind.is_hard_link() {
            refuse(
                source,
                "a link, not a file: links are not followed".to_owned(),
            );
            continue;
        }
        if !(kind.is_file() || kind == tar::EntryType::Continuous) {
            refuse(source, "not a regular file".to_owned());
            continue;
        }
        let path = Path::new(&raw_path);
        if raw_path.is_empty()
            || path
                .components()
                .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            refuse(
                source,
                "its path leaves the archive (absolute, or with ..): refused".to_owned(),
            );
            continue;
        }
        let size = entry.size();
        if size > MAX_IMPORT_FILE_LEN {
            refuse(
                source,
                format!("{size} bytes, more than the {MAX_IMPORT_FILE_LEN}-byte limit"),
            );
            continue;
        }
        total = total.saturating_add(size);
        if total > MAX_ARCHIVE_LEN {
            refuse(
                archive.to_owned(),
                format!("more than {MAX_ARCHIVE_LEN} bytes in all; the rest was not read"),
            );
            break;
        }
        let mut data = Vec::new();
        if let Err(e) = (&mut entry)
            .take(MAX_IMPORT_FILE_LEN + 1)
            .read_to_end(&mut data)
        {
            refuse(source, format!("cannot be read: {e}"));
            break;
        }
        files.push(ImportFile { name: source, data });
    }
    (files, refused)
}

/// The certificates of one input, DER: PEM (any number of CERTIFICATE or PKCS7 blocks; text
/// between them is allowed), one DER certificate, or a DER PKCS#7 SignedData (`.p7b`).
fn certificates_of(data: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let text = std::str::from_utf8(data).ok();
    let certs = match text.filter(|t| t.contains("-----BEGIN ")) {
        Some(text) => {
            let mut certs = Vec::new();
            for block in pem_blocks(text) {
                let (label, der) = der::pem::decode_vec(block.as_bytes())
                    .map_err(|e| format!("a PEM block does not decode: {e}"))?;
                match label {
                    "CERTIFICATE" | "X509 CERTIFICATE" => certs.push(der),
                    "PKCS7" | "CMS" => certs.extend(pkcs7_certificates(&der)?),
                    other => {
                        return Err(format!(
                            "holds a PEM {other:?} block; expected CERTIFICATE or PKCS7"
                        ));
                    }
                }
            }
            certs
        }
        None if Certificate::from_der(data).is_ok() => vec![data.to_vec()],
        None => pkcs7_certificates(data).map_err(|_| {
            "not a certificate: neither PEM, a DER certificate, nor PKCS#7 (.p7b)".to_owned()
        })?,
    };
    if certs.is_empty() {
        return Err("holds no certificate".to_owned());
    }
    if certs.len() > MAX_CERTIFICATES_PER_FILE {
        return Err(format!(
            "holds more than {MAX_CERTIFICATES_PER_FILE} certificates"
        ));
    }
    Ok(certs)
}

/// The `-----BEGIN ...-----` to `-----END ...-----` blocks of `text`.
fn pem_blocks(text: &str) -> Vec<&str> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start..];
        let Some(end) = after.find("-----END ") else {
            // An unterminated block decodes to an error below.
            blocks.push(after);
            break;
        };
        let tail = &after[end + 9..];
        let close = tail.find("-----").map_or(tail.len(), |i| i + 5);
        let len = end + 9 + close;
        blocks.push(&after[..len]);
        rest = &after[len..];
    }
    blocks
}

/// id-signedData (RFC 5652 section 5.1).
const SIGNED_DATA: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");

/// The certificates of a DER PKCS#7 / CMS ContentInfo holding SignedData (RFC 5652: a
/// "certs-only" `.p7b` as `openssl crl2pkcs7` or AD CS write): the `certificates [0] IMPLICIT
/// SET OF` field, walked with der's reader (other CertificateChoices are skipped).
fn pkcs7_certificates(der_bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let bad = |e: der::Error| format!("not PKCS#7 SignedData: {e}");
    let mut outer = SliceReader::new(der_bytes).map_err(bad)?;
    let certs = outer
        .sequence(|info| {
            let content_type = der::asn1::ObjectIdentifier::decode(info)?;
            if content_type != SIGNED_DATA {
                return Err(der::Tag::ObjectIdentifier.value_error().into());
            }
            let explicit = der::asn1::AnyRef::decode(info)?;
            if explicit.tag()
                != (Tag::ContextSpecific {
                    constructed: true,
                    number: TagNumber(0),
                })
            {
                return Err(explicit.tag().unexpected_error(None).into());
            }
            let mut content = SliceReader::new(explicit.value())?;
            let certs = content.sequence(|signed| {
                let mut certs = Vec::new();
                while !signed.is_finished() {
                    let field = der::asn1::AnyRef::decode(signed)?;
                    if field.tag()
                        == (Tag::ContextSpecific {
                            constructed: true,
                            number: TagNumber(0),
                        })
                    {
                        let mut set = SliceReader::new(field.value())?;
                        while !set.is_finished() {
                            let choice = der::asn1::AnyRef::decode(&mut set)?;
                            if choice.tag() == Tag::Sequence {
                                certs.push(choice.to_der()?);
                            }
                        }
                    }
                }
                Ok::<_, der::Error>(certs)
            })?;
            content.finish()?;
            Ok::<_, der::Error>(certs)
        })
        .map_err(bad)?;
    outer.finish().map_err(bad)?;
    Ok(certs)
}

/// Imports the certificates of `files` (each: DER, PEM with any number of certificates, or
/// PKCS#7 `.p7b`, DER or PEM). Each certificate is judged on its own: matched to a Pending
/// request by its public key, checked by [`check_external_lsc`] against CAPF-trust in `trust`
/// (the other certificates of its file are offered as intermediates), and applied with
/// `ca_request_issued`. A CA certificate that answers no request is taken as part of a chain,
/// not refused. A refused one gets one [`RefusedView`]; nothing of it is applied.
///
/// # Errors
/// Only the store's failures that are not about one certificate (a database error); every
/// certificate's own problem is a refusal in the report.
pub fn import_certificates(
    store: &dyn DeviceStore,
    trust: &TrustStore,
    files: &[ImportFile],
    now: SystemTime,
) -> Result<ImportReport, Error> {
    let mut pending: HashMap<Vec<u8>, CaRequest> = HashMap::new();
    for request in store.ca_requests(Some(CaRequestState::Pending))? {
        // Oldest first: a newer request with the same key wins.
        pending.insert(request.public_key.clone(), request);
    }
    let mut report = ImportReport::default();
    // The certificates that passed the checks, and where each came from.
    let (mut sources, mut batch) = (Vec::new(), Vec::new());
    for file in files {
        let certs = match certificates_of(&file.data) {
            Ok(certs) => certs,
            Err(reason) => {
                report.refuse(file.name.clone(), reason);
                continue;
            }
        };
        for (i, der) in certs.iter().enumerate() {
            let source = if certs.len() == 1 {
                file.name.clone()
            } else {
                format!("{}#{}", file.name, i + 1)
            };
            let Ok(cert) = Certificate::from_der(der) else {
                report.refuse(source, "not a certificate: the DER does not parse");
                continue;
            };
            let tbs = cert.tbs_certificate();
            let key = tbs.subject_public_key_info().to_der().unwrap_or_default();
            let Some(request) = pending.get(&key) else {
                let is_ca = tbs
                    .get_extension::<capf_lsc::x509_cert::ext::pkix::BasicConstraints>()
                    .ok()
                    .flatten()
                    .is_some_and(|(_, bc)| bc.ca);
                if !is_ca {
                    report.refuse(
                        source,
                        "certifies a key no pending request has (unknown key, or already \
                         imported)",
                    );
                }
                continue;
            };
            let intermediates: Vec<Vec<u8>> = certs
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, d)| d.clone())
                .collect();
            let checked = match check_external_lsc(
                der,
                &request.device,
                &request.public_key,
                &intermediates,
                trust,
                now,
            ) {
                Ok(checked) => checked,
                Err(refusal) => {
                    report.refuse(source, refusal.to_string());
                    continue;
                }
            };
            let id = request.id;
            // Taken: a second certificate for the same key in this import is refused.
            pending.remove(&key);
            sources.push(source);
            batch.push((id, checked.issued));
        }
    }
    // Applied in one call (one transaction in SQLite), each still judged on its own.
    let results = store.ca_requests_issued(&batch, now)?;
    for ((source, (_, issued)), result) in sources.into_iter().zip(&batch).zip(results) {
        match result {
            Ok(applied) => report.imported.push(ImportedView {
                source,
                request: applied.id,
                device: applied.device.to_string(),
                serial: capf_lsc::hex(&issued.serial),
                not_after: rfc3339(issued.not_after),
            }),
            Err(e) => report.refuse(source, e.to_string()),
        }
    }
    Ok(report)
}

/// Reads the import inputs: each path of `files` as one input, and each member of each `.tgz`
/// of `archives` (in memory, see [`read_tgz`]). A file that cannot be read, or that is larger
/// than [`MAX_IMPORT_FILE_LEN`] (an archive: [`MAX_ARCHIVE_LEN`]), is a refusal.
pub fn read_import_inputs(
    files: &[PathBuf],
    archives: &[PathBuf],
) -> (Vec<ImportFile>, Vec<RefusedView>) {
    let mut inputs = Vec::new();
    let mut refused = Vec::new();
    let mut read = |path: &Path, limit: u64| -> Option<Vec<u8>> {
        let name = path.display().to_string();
        let result = std::fs::File::open(path).and_then(|f| {
            let mut data = Vec::new();
            f.take(limit + 1).read_to_end(&mut data)?;
            Ok(data)
        });
        match result {
            Ok(data) if data.len() as u64 > limit => {
                refused.push(RefusedView {
                    source: name,
                    reason: format!("larger than the {limit}-byte limit"),
                });
                None
            }
            Ok(data) => Some(data),
            Err(e) => {
                refused.push(RefusedView {
                    source: name,
                    reason: format!("cannot be read: {e}"),
                });
                None
            }
        }
    };
    for path in files {
        if let Some(data) = read(path, MAX_IMPORT_FILE_LEN) {
            inputs.push(ImportFile {
                name: path.display().to_string(),
                data,
            });
        }
    }
    let mut archive_refusals = Vec::new();
    for path in archives {
        if let Some(data) = read(path, MAX_ARCHIVE_LEN) {
            let (members, bad) = read_tgz(&path.display().to_string(), &data);
            inputs.extend(members);
            archive_refusals.extend(bad);
        }
    }
    refused.extend(archive_refusals);
    (inputs, refused)
}
