//! The load generator: many simulated phones enrolling at a bounded concurrency, sessions
//! held open mid-install, latency percentiles, and a server's CPU time and memory from /proc.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use capf_lsc::der::Decode;
use capf_lsc::x509_cert::Certificate as X509;
use capf_lsc::{DeviceName, KeySpec, verify_signature};
use tokio::task::JoinSet;

use crate::{Error, KeyPool, KeySource, Phone, PhoneConfig, PhoneKey, TlsVersions};

/// How many keys of the run's spec the pool holds: phones share them, which a server cannot
/// tell apart from fresh keys, and making them is not timed.
const POOL_KEYS: usize = 4;

/// The device name of simulated phone `n`: `prefix` and `n` in upper-case hex, zero-padded to
/// 15 characters (`SEP` + 12 hex digits, as a phone's MAC address gives it).
pub fn simulated_device_name(prefix: &str, n: u32) -> String {
    let width = 15usize.saturating_sub(prefix.len());
    format!("{prefix}{n:0width$X}")
}

impl KeyPool {
    /// A pool of keys of `spec`, made now (before any timing starts).
    ///
    /// # Errors
    /// As [`PhoneKey::generate`].
    pub fn generate(spec: KeySpec) -> Result<Self, Error> {
        (0..POOL_KEYS)
            .map(|_| PhoneKey::generate(spec))
            .collect::<Result<_, _>>()
            .map(KeyPool)
    }
}

/// A [`KeySource`] that counts the phones asked for a key (that reached KEY_GEN_REQUEST).
#[derive(Debug)]
pub struct CountingKeys {
    keys: Arc<dyn KeySource>,
    asked: AtomicU32,
}

impl CountingKeys {
    /// Counts the requests it passes to `keys`.
    pub fn new(keys: Arc<dyn KeySource>) -> Self {
        CountingKeys {
            keys,
            asked: AtomicU32::new(0),
        }
    }

    /// How many keys were asked for so far.
    pub fn asked(&self) -> u32 {
        self.asked.load(Ordering::Relaxed)
    }
}

impl KeySource for CountingKeys {
    fn key(&self, spec: KeySpec) -> Result<PhoneKey, Error> {
        self.asked.fetch_add(1, Ordering::Relaxed);
        self.keys.key(spec)
    }
}

/// Where the simulated phones connect, and how.
#[derive(Clone, Debug)]
pub struct LoadTarget {
    /// CAPF's host.
    pub host: String,
    /// CAPF's port.
    pub port: u16,
    /// The CAPF certificate (PEM) the phones trust.
    pub trust_pem: Vec<u8>,
    /// The TLS versions the phones offer.
    pub tls_versions: TlsVersions,
}

impl LoadTarget {
    /// A phone for `name` that tries once (a load test counts failures, it does not retry).
    fn config(&self, name: &DeviceName) -> Result<PhoneConfig, Error> {
        let mut config = PhoneConfig::new(name.clone(), &self.host, &self.trust_pem)?;
        config.port = self.port;
        config.retries = 0;
        config.tls_versions = self.tls_versions;
        Ok(config)
    }
}

/// Sessions held open mid-install: each phone's key generation takes a long time, so the
/// server keeps the session while the others enroll. Dropping it ends them.
#[derive(Debug)]
pub struct IdleSessions {
    tasks: JoinSet<Result<crate::Enrollment, Error>>,
    keys: Arc<CountingKeys>,
    count: u32,
}

impl IdleSessions {
    /// Starts one phone per name, its key generation taking `key_generation`.
    ///
    /// # Errors
    /// As [`PhoneConfig::new`] and [`Phone::new`].
    pub fn start(
        target: &LoadTarget,
        names: &[DeviceName],
        keys: Arc<dyn KeySource>,
        key_generation: Duration,
    ) -> Result<Self, Error> {
        let keys = Arc::new(CountingKeys::new(keys));
        let mut tasks = JoinSet::new();
        for name in names {
            let mut config = target.config(name)?;
            config.key_generation_delay = key_generation;
            let mut phone = Phone::new(config, Arc::clone(&keys) as Arc<dyn KeySource>)?;
            tasks.spawn(async move { phone.run_once().await });
        }
        Ok(IdleSessions {
            tasks,
            keys,
            count: u32::try_from(names.len()).unwrap_or(u32::MAX),
        })
    }

    /// Waits until every phone has been asked for its key (so every session is mid-install);
    /// false when `limit` passed first.
    pub async fn wait_until_mid_install(&self, limit: Duration) -> bool {
        let started = Instant::now();
        while self.keys.asked() < self.count {
            if started.elapsed() > limit {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        true
    }

    /// Ends every session now.
    pub fn abort(&mut self) {
        self.tasks.abort_all();
    }
}

/// What a load run came to.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Phones that installed an LSC.
    pub enrolled: usize,
    /// Phones that did not, each as `NAME: why`.
    pub failed: Vec<String>,
    /// Each enrolled phone's time from its turn to its LSC.
    pub latencies: Vec<Duration>,
    /// The whole run.
    pub elapsed: Duration,
    /// The LSCs installed (DER).
    pub lscs: Vec<Vec<u8>>,
    /// Each enrolled phone's wait from KEY_GEN_RESPONSE to its certificate
    /// ([`Enrollment::key_to_certificate`](crate::Enrollment::key_to_certificate)).
    pub certificate_waits: Vec<Duration>,
}

impl LoadReport {
    /// The `p` quantile (0.0 to 1.0) of the latencies, nearest rank; zero without any.
    pub fn percentile(&self, p: f64) -> Duration {
        quantile(&self.latencies, p)
    }

    /// The `p` quantile (0.0 to 1.0) of the certificate waits, nearest rank; zero without any.
    pub fn certificate_wait(&self, p: f64) -> Duration {
        quantile(&self.certificate_waits, p)
    }

    /// The mean latency; zero without any.
    pub fn mean(&self) -> Duration {
        let n = u32::try_from(self.latencies.len())
            .unwrap_or(u32::MAX)
            .max(1);
        self.latencies.iter().sum::<Duration>() / n
    }

    /// Enrollments per second over the whole run.
    pub fn rate(&self) -> f64 {
        self.enrolled as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Verifies every LSC's signature against the CAPF certificate `capf`; returns how many.
    ///
    /// # Errors
    /// The first LSC that does not parse or verify.
    pub fn verify_lscs(&self, capf: &X509) -> Result<usize, capf_lsc::Error> {
        let key = capf.tbs_certificate().subject_public_key_info();
        for der in &self.lscs {
            let lsc = X509::from_der(der).map_err(|source| capf_lsc::Error::Der {
                what: "LSC",
                source,
            })?;
            verify_signature(&lsc, key)?;
        }
        Ok(self.lscs.len())
    }
}

/// The `p` quantile (0.0 to 1.0) of `durations`, nearest rank; zero without any.
fn quantile(durations: &[Duration], p: f64) -> Duration {
    let mut v = durations.to_vec();
    v.sort();
    let Some(last) = v.len().checked_sub(1) else {
        return Duration::ZERO;
    };
    // A rank in 0..=last: the float-to-integer cast saturates, and `min` bounds it.
    let i = ((last as f64) * p).round() as usize;
    v.get(i.min(last)).copied().unwrap_or_default()
}

/// Enrolls one phone per name against `target`, at most `concurrency` at once, with keys
/// from `keys`; each phone tries once.
///
/// Each phone has its own TLS client configuration, so its own session cache: every phone's
/// handshake is a full one (the server signs with the CAPF key), as a fleet's first contacts
/// are, never a resumption of another simulated phone's session (capf-server's test
/// `the_load_generator_makes_full_handshakes_and_a_returning_phone_resumes`).
///
/// # Errors
/// As [`PhoneConfig::new`] and [`Phone::new`]; a phone that fails is in
/// [`LoadReport::failed`], not an error.
pub async fn enroll(
    target: &LoadTarget,
    names: Vec<DeviceName>,
    keys: Arc<dyn KeySource>,
    concurrency: usize,
) -> Result<LoadReport, Error> {
    let limit = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let mut task_names = std::collections::HashMap::new();
    let started = Instant::now();
    for name in names {
        let mut phone = Phone::new(target.config(&name)?, Arc::clone(&keys))?;
        let limit = Arc::clone(&limit);
        let handle = tasks.spawn(async move {
            let _slot = limit.acquire_owned().await;
            let t = Instant::now();
            let result = phone.run_once().await;
            (t.elapsed(), result)
        });
        task_names.insert(handle.id(), name);
    }
    let mut report = LoadReport::default();
    while let Some(joined) = tasks.join_next_with_id().await {
        let (id, outcome) = match joined {
            Ok((id, outcome)) => (id, Ok(outcome)),
            Err(err) => (err.id(), Err(err)),
        };
        let name = task_names
            .remove(&id)
            .map(|n: DeviceName| n.to_string())
            .unwrap_or_default();
        match outcome {
            Ok((latency, Ok(e))) if e.succeeded() && e.installed.is_some() => {
                report.enrolled += 1;
                report.latencies.push(latency);
                report.certificate_waits.extend(e.key_to_certificate);
                if let Some((der, _)) = e.installed {
                    report.lscs.push(der);
                }
            }
            Ok((_, Ok(e))) => report.failed.push(format!("{name}: {:?}", e.outcome)),
            Ok((_, Err(err))) => report.failed.push(format!("{name}: {err}")),
            // A phone task that panicked is a phone that did not enroll.
            Err(err) => report.failed.push(format!("{name}: {err}")),
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// A process's CPU time, resident memory and context switches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessStats {
    /// User + system CPU time.
    pub cpu: Duration,
    /// Resident memory (VmRSS), kB.
    pub rss_kb: u64,
    /// Context switches of its threads alive now, voluntary (a thread waits: a wake-up
    /// there and back between tokio's workers and its blocking pool, say) and not.
    pub context_switches: ContextSwitches,
}

/// Context switches, summed over a process's threads (`/proc/PID/task/*/status`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ContextSwitches {
    /// A thread gave up the CPU to wait.
    pub voluntary: u64,
    /// A thread was preempted.
    pub involuntary: u64,
}

impl ContextSwitches {
    /// The counts of one thread's `status` text.
    pub fn parse(status: &str) -> Self {
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        ContextSwitches {
            voluntary: field("voluntary_ctxt_switches:"),
            involuntary: field("nonvoluntary_ctxt_switches:"),
        }
    }

    /// The counts since `earlier` (zero where a thread that counted has exited).
    pub fn since(self, earlier: Self) -> Self {
        ContextSwitches {
            voluntary: self.voluntary.saturating_sub(earlier.voluntary),
            involuntary: self.involuntary.saturating_sub(earlier.involuntary),
        }
    }
}

impl ProcessStats {
    /// The stats of process `pid`, from /proc (Linux); `None` elsewhere or when it is gone.
    pub fn of(pid: u32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let mut stats = Self::parse(&stat, &status)?;
        let mut switches = ContextSwitches::default();
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))
            .ok()?
            .flatten()
        {
            // A thread that exits meanwhile is skipped.
            if let Ok(text) = std::fs::read_to_string(task.path().join("status")) {
                let one = ContextSwitches::parse(&text);
                switches.voluntary += one.voluntary;
                switches.involuntary += one.involuntary;
            }
        }
        stats.context_switches = switches;
        Some(stats)
    }

    /// The stats from the text of `/proc/PID/stat` and `/proc/PID/status`.
    pub fn parse(stat: &str, status: &str) -> Option<Self> {
        // The fields after the command name (which may hold spaces and parentheses) follow
        // the last ')'; utime and stime are the 12th and 13th of them (proc(5)).
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        let rss_kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        // USER_HZ is 100 on Linux.
        Some(ProcessStats {
            cpu: Duration::from_millis(ticks * 10),
            rss_kb,
            context_switches: ContextSwitches::parse(status),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn names_simulated_phones_like_mac_addresses() {
        assert_eq!(simulated_device_name("SEP", 1), "SEP000000000001");
        assert_eq!(simulated_device_name("SEP", 0x8000_0001), "SEP000080000001");
        assert_eq!(simulated_device_name("CSF", 255), "CSF0000000000FF");
        assert_eq!(
            simulated_device_name("LONGPREFIX12345", 7),
            "LONGPREFIX123457"
        );
    }

    #[test]
    fn percentiles_and_mean_of_latencies() {
        let report = LoadReport {
            latencies: (1..=100).rev().map(Duration::from_millis).collect(),
            ..LoadReport::default()
        };
        assert_eq!(report.percentile(0.0), Duration::from_millis(1));
        assert_eq!(report.percentile(0.5), Duration::from_millis(51));
        assert_eq!(report.percentile(0.99), Duration::from_millis(99));
        assert_eq!(report.percentile(1.0), Duration::from_millis(100));
        assert_eq!(report.mean(), Duration::from_micros(50_500));
        let empty = LoadReport::default();
        assert_eq!(empty.percentile(0.99), Duration::ZERO);
        assert_eq!(empty.mean(), Duration::ZERO);
    }

    #[test]
    fn reads_cpu_and_memory_from_proc_text() {
        let stat = "42 (capf d) S 1 42 42 0 -1 4194560 100 0 0 0 150 50 0 0 20 0 9 0 1 2 3";
        let status = "Name:\tcapfd\nVmRSS:\t   12345 kB\nThreads:\t9\n";
        let s = ProcessStats::parse(stat, status).unwrap();
        assert_eq!(s.cpu, Duration::from_millis(2000));
        assert_eq!(s.rss_kb, 12345);
        assert_eq!(ProcessStats::parse("garbage", status), None);
        assert!(ProcessStats::of(std::process::id()).is_some());
        let status = "Name:\tcapfd\nvoluntary_ctxt_switches:\t28\nnonvoluntary_ctxt_switches:\t3\n";
        let switches = ContextSwitches::parse(status);
        assert_eq!(
            switches,
            ContextSwitches {
                voluntary: 28,
                involuntary: 3
            }
        );
        assert_eq!(
            switches.since(ContextSwitches {
                voluntary: 20,
                involuntary: 5
            }),
            ContextSwitches {
                voluntary: 8,
                involuntary: 0
            }
        );
    }
}
