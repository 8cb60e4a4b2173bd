//! Administration in bulk over capf-store's SQLite store, on a database file with WAL, the
//! way capfctl uses it beside a running server: bulk insert of 100,000 devices, update by
//! query over 100,000, expiry and stale-LSC reports over 1,000,000 certificates. A second
//! handle on the same file (the server's) writes every millisecond throughout, and its worst
//! wait is printed at the end.
//!
//! `cargo bench --bench admin`

// A bench: a failing setup should stop it loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use capf_lsc::KeyPolicy;
use capf_store::{
    AdminStore, BulkChange, DeviceName, DeviceQuery, DeviceUpdate, LscRecord, LscState, NewDevice,
    Operation, SessionStore, SqliteStore,
};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

const DEVICES: usize = 100_000;
const CERTIFICATES: usize = 1_000_000;

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("capf-bench-admin-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn devices(prefix: &str) -> Vec<NewDevice> {
    (0..DEVICES)
        .map(|i| NewDevice {
            description: format!("phone {i}"),
            device_pool: format!("Pool{}", i % 10),
            model: "Cisco 8865".into(),
            operation: Operation::InstallUpgrade(KeyPolicy::default()),
            auth_string: (i % 2 == 0).then(|| format!("{:06}", i % 1_000_000)),
            ..NewDevice::new(DeviceName::new(&format!("SEP{prefix}{i:07}")).unwrap())
        })
        .collect()
}

/// The server's side: its own handle on the file, writing every millisecond, keeping its
/// worst wait.
struct Server {
    stop: Arc<AtomicBool>,
    worst_micros: Arc<AtomicU64>,
    writes: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let store = SqliteStore::open(dir).unwrap();
        let phone = DeviceName::new("SEPFFFFFFFFFFFF").unwrap();
        store
            .add_device(&NewDevice::new(phone.clone()), SystemTime::now())
            .ok();
        let stop = Arc::new(AtomicBool::new(false));
        let worst_micros = Arc::new(AtomicU64::new(0));
        let writes = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, worst, writes) = (stop.clone(), worst_micros.clone(), writes.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    store
                        .record_auth_failure(&phone, SystemTime::now())
                        .expect("the server's write failed");
                    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                    worst.fetch_max(micros, Ordering::Relaxed);
                    writes.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        };
        Server {
            stop,
            worst_micros,
            writes,
            thread: Some(thread),
        }
    }

    fn finish(mut self, what: &str) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("server thread");
        }
        println!(
            "{what}: the server's handle made {} writes meanwhile, none failed; worst wait {:.1} ms",
            self.writes.load(Ordering::Relaxed),
            self.worst_micros.load(Ordering::Relaxed) as f64 / 1000.0
        );
    }
}

fn bulk(c: &mut Criterion) {
    let mut group = c.benchmark_group("admin");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));

    // Bulk insert: a fresh database each time.
    let dir = scratch("insert");
    let server = Server::start(&dir);
    let mut round = 0u32;
    group.bench_function("bulk insert 100,000 devices (one transaction)", |b| {
        b.iter_batched(
            || {
                round += 1;
                devices(&format!("{round:05}"))
            },
            |batch| {
                let store = SqliteStore::open(&dir).unwrap();
                assert_eq!(
                    store.add_devices(&batch, SystemTime::now()).unwrap(),
                    DEVICES
                );
            },
            BatchSize::PerIteration,
        );
    });
    server.finish("bulk insert");
    let _ = std::fs::remove_dir_all(&dir);

    // Update by query over 100,000 devices (every device of the query changes every time).
    let dir = scratch("update");
    let store = SqliteStore::open(&dir).unwrap();
    store
        .add_devices(&devices("00000"), SystemTime::now())
        .unwrap();
    let server = Server::start(&dir);
    let query = DeviceQuery {
        name_pattern: Some("SEP00000*".into()),
        ..DeviceQuery::default()
    };
    let mut flip = false;
    group.bench_function("update by query over 100,000 devices", |b| {
        b.iter(|| {
            flip = !flip;
            let change = BulkChange {
                update: DeviceUpdate {
                    model: Some(if flip { "Cisco 8865NR" } else { "Cisco 8865" }.into()),
                    ..DeviceUpdate::default()
                },
                schedule: None,
            };
            let changed = store
                .update_devices(&query, &change, false, SystemTime::now())
                .unwrap();
            assert_eq!(changed.len(), DEVICES);
        });
    });
    group.bench_function("update by query over 100,000 devices, dry run", |b| {
        let change = BulkChange {
            update: DeviceUpdate {
                description: Some("fleet".into()),
                ..DeviceUpdate::default()
            },
            schedule: None,
        };
        b.iter(|| {
            let changed = store
                .update_devices(&query, &change, true, SystemTime::now())
                .unwrap();
            assert_eq!(changed.len(), DEVICES);
        });
    });
    server.finish("update by query");
    let _ = std::fs::remove_dir_all(&dir);
    group.finish();
}

/// 1,000,000 LSC records: 1% stale, 1% expiring within 30 days, the rest installed (or
/// superseded) far from expiry. Imported as records in one transaction
/// (`AdminStore::import_lscs`), since going through a million phone sessions would take hours.
fn certificates(dir: &Path, now: SystemTime) {
    let store = SqliteStore::open(dir).unwrap();
    let day = Duration::from_secs(86_400);
    let der = vec![0x30u8; 900];
    let mut records = (0..CERTIFICATES).map(|i| {
        let (state, not_after) = match i % 100 {
            0 => (LscState::Stale, now + 300 * day),
            1 => (
                LscState::Installed,
                now + (i as u32 % 30) * day + Duration::from_secs(60),
            ),
            2..=20 => (LscState::Superseded, now + 100 * day),
            _ => (
                LscState::Installed,
                now + 200 * day + Duration::from_secs(i as u64),
            ),
        };
        let issued = now - 100 * day;
        LscRecord {
            serial: (i as u64 + 1).to_be_bytes().to_vec(),
            device: DeviceName::new(&format!("SEP{:012}", i / 2)).unwrap(),
            der: der.clone(),
            not_before: issued,
            not_after,
            issued_at: issued,
            state,
            state_changed_at: issued,
        }
    });
    assert_eq!(store.import_lscs(&mut records, now).unwrap(), CERTIFICATES);
}

fn reports(c: &mut Criterion) {
    let dir = scratch("reports");
    let now = SystemTime::now();
    certificates(&dir, now);
    let store = SqliteStore::open(&dir).unwrap();
    let server = Server::start(&dir);
    let mut group = c.benchmark_group("admin");
    group.sample_size(20);
    let horizon = now + Duration::from_secs(30 * 86_400);
    group.bench_function("expiry report over 1,000,000 LSCs (30 days)", |b| {
        b.iter(|| {
            let soon = store.lscs_expiring_before(black_box(horizon)).unwrap();
            assert_eq!(soon.len(), CERTIFICATES / 100);
        });
    });
    group.bench_function("stale-LSC report over 1,000,000 LSCs", |b| {
        b.iter(|| {
            let stale = store.stale_lscs().unwrap();
            assert_eq!(stale.len(), CERTIFICATES / 100);
        });
    });
    group.finish();
    server.finish("reports");
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bulk, reports);
criterion_main!(benches);
