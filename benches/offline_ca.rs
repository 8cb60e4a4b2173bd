//! The Offline CA (issue 13) at scale: `csr export` of 10,000 pending requests (PEM files with
//! index.csv to a directory, and one .tgz) and `cert import` of their 10,000 certificates from
//! one .tgz (read in memory, each certificate matched by key, checked by capf-trust's
//! `check_external_lsc` through a root and an intermediate, and applied in its own
//! transaction), through capf-admin on a SQLite store file, as capfctl runs them.
//!
//! Setup (not measured): 10,000 devices, each with a P-256 key (EC keys are generated: RSA keys
//! never are), a CSR and a pending request; the certificates are signed once, by an
//! intermediate of capf-test-support's fixture root. Each import starts from a copy of the
//! store as it was with every request pending.
//!
//! `cargo bench --bench offline_ca`

// A bench: a failing setup should stop it loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use capf_admin::csr::{
    CsrEncoding, CsrExport, ExportTarget, ImportFile, export_csrs, import_certificates, read_tgz,
};
use capf_lsc::der::Encode;
use capf_lsc::x509_cert::name::Name;
use capf_lsc::{Curve, IssuerKey, KeyPolicy, KeySpec, LscSigner, PhonePublicKey, ValidityDays};
use capf_store::{
    AdminStore, CertificateIssuer, DeviceName, NewCaRequest, NewDevice, Operation, SessionStore,
    SqliteStore,
};
use capf_test_support::{now, root_and_intermediate, serials};
use capf_trust::{Cert, Purpose, Release, TrustStore};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

const REQUESTS: usize = 10_000;

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "capf-bench-offline-ca-{tag}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

struct Fixture {
    /// The store with every request pending (closed, so its files can be copied).
    pending: PathBuf,
    trust: TrustStore,
    /// The CA's answer: one .tgz of 10,000 PEM files, each the LSC and the intermediate.
    answer: Vec<u8>,
}

fn fixture() -> Fixture {
    let dir = scratch("pending");
    let store = SqliteStore::open(&dir).unwrap();
    let (root, intermediate) =
        root_and_intermediate(KeySpec::Ec(Curve::P256), KeySpec::Ec(Curve::P256));
    let inter_pem = capf_lsc::certificate_to_pem(intermediate.certificate()).unwrap();
    let devices: Vec<NewDevice> = (0..REQUESTS)
        .map(|i| NewDevice {
            operation: Operation::InstallUpgrade(KeyPolicy::default()),
            ..NewDevice::new(DeviceName::new(&format!("SEP{i:012X}")).unwrap())
        })
        .collect();
    store.add_devices(&devices, now()).unwrap();
    let mut files = Vec::with_capacity(REQUESTS);
    let mut next = serials();
    for device in &devices {
        let key = IssuerKey::generate(KeySpec::Ec(Curve::P256), &mut getrandom::SysRng).unwrap();
        let subject = Name::from_str(&format!("CN={}", device.name)).unwrap();
        let csr = capf_lsc::capf_csr(&subject, &key)
            .unwrap()
            .to_der()
            .unwrap();
        let spki = key.public_key().to_der().unwrap();
        store
            .record_ca_request(
                &device.name,
                &NewCaRequest {
                    mode: CertificateIssuer::OfflineCa,
                    csr: &csr,
                    public_key: &spki,
                    ca_request_id: None,
                },
                now(),
            )
            .unwrap();
        let lsc = intermediate
            .issue_lsc_for(
                &PhonePublicKey::from_der(&spki).unwrap(),
                &device.name,
                ValidityDays::MAX,
                now(),
                &mut next,
            )
            .unwrap();
        let pem = capf_lsc::certificate_to_pem(&lsc).unwrap() + &inter_pem;
        files.push((format!("{}.pem", device.name), pem.into_bytes()));
    }
    drop(store);
    let mut trust = TrustStore::new(Release::default());
    trust.insert_unchecked(&Purpose::CAPF_TRUST, Cert::from_certificate(root).unwrap());
    Fixture {
        pending: dir,
        trust,
        answer: tgz(&files),
    }
}

fn tgz(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (name, data) in files {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, data.as_slice()).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

/// A copy of the store with every request pending.
fn copy_store(from: &Path, tag: &str) -> PathBuf {
    let to = scratch(tag);
    std::fs::create_dir_all(&to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
    to
}

fn bench(c: &mut Criterion) {
    let f = fixture();
    let store = SqliteStore::open(&f.pending).unwrap();
    let mut group = c.benchmark_group("offline_ca");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    let mut n = 0;
    group.bench_function(
        "csr export 10,000 pending to a directory (PEM + index.csv)",
        |b| {
            b.iter_batched(
                || {
                    n += 1;
                    scratch(&format!("export-{n}"))
                },
                |dir| {
                    let view = export_csrs(
                        &store,
                        &CsrExport {
                            target: ExportTarget::Dir(dir.clone()),
                            encoding: CsrEncoding::Pem,
                        },
                    )
                    .unwrap();
                    assert_eq!(view.exported.len(), REQUESTS);
                    std::fs::remove_dir_all(dir).unwrap();
                },
                BatchSize::PerIteration,
            );
        },
    );
    group.bench_function("csr export 10,000 pending to one .tgz", |b| {
        b.iter_batched(
            || {
                n += 1;
                let dir = scratch(&format!("export-tgz-{n}"));
                std::fs::create_dir_all(&dir).unwrap();
                dir
            },
            |dir| {
                export_csrs(
                    &store,
                    &CsrExport {
                        target: ExportTarget::Tgz(dir.join("csrs.tgz")),
                        encoding: CsrEncoding::Pem,
                    },
                )
                .unwrap();
                std::fs::remove_dir_all(dir).unwrap();
            },
            BatchSize::PerIteration,
        );
    });
    drop(store);
    group.bench_function(
        "cert import 10,000 from one .tgz (match, check, apply)",
        |b| {
            b.iter_batched(
                || {
                    n += 1;
                    let dir = copy_store(&f.pending, &format!("import-{n}"));
                    (SqliteStore::open(&dir).unwrap(), dir)
                },
                |(store, dir)| {
                    let (files, refused): (Vec<ImportFile>, _) = read_tgz("answer.tgz", &f.answer);
                    assert!(refused.is_empty());
                    let report =
                        import_certificates(&store, &f.trust, &files, SystemTime::now()).unwrap();
                    assert_eq!(
                        report.imported.len(),
                        REQUESTS,
                        "{:?}",
                        report.refused.first()
                    );
                    drop(store);
                    std::fs::remove_dir_all(dir).unwrap();
                },
                BatchSize::PerIteration,
            );
        },
    );
    group.finish();
    let _ = std::fs::remove_dir_all(&f.pending);
}

criterion_group!(benches, bench);
criterion_main!(benches);
