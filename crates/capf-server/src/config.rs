//! How the service runs: listeners, Enable IPv6, timeouts, validity.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use capf_ipmode::EnableIpv6;
use capf_lsc::ValidityDays;

/// The CAPF port (spec rule T1).
pub const CAPF_PORT: u16 = 3804;

/// The service's static configuration. Settings the administrator changes while it runs
/// (keepalive, limits, throttling) live in the device store instead
/// ([`capf_store::Settings`]) and are re-read every [`Config::settings_refresh`].
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen: by default `0.0.0.0:3804` and `[::]:3804` (IPv6-only, so both bind).
    pub listen: Vec<SocketAddr>,
    /// The Enable IPv6 enterprise parameter: with `False` every IPv6 peer is refused.
    pub enable_ipv6: EnableIpv6,
    /// The CAPF certificate (PEM); checked against the CAPF certificate profile at start and at
    /// every reload.
    pub capf_certificate: PathBuf,
    /// Its PKCS#8 private key (PEM).
    pub capf_key: PathBuf,
    /// The trust-store directory (`capf-trust`'s layout: one folder per purpose) holding
    /// CAPF-trust, CAPF-trust-MIC and CAPF-trust-SUDI, for authentication by existing
    /// certificate. Reloaded when it changes. The CAPF certificate itself is always trusted
    /// as an LSC issuer.
    pub trust_dir: Option<PathBuf>,
    /// How often the certificate and key files are checked for changes (they are also reloaded
    /// on SIGHUP).
    pub reload_interval: Duration,
    /// How long a TLS handshake may take, so a silent peer holds nothing for long.
    pub tls_handshake_timeout: Duration,
    /// The protocol session's configuration (message deadlines, strictness).
    pub session: capf_session::ServerConfig,
    /// The validity of issued LSCs.
    pub lsc_validity: ValidityDays,
    /// The listen backlog.
    pub backlog: u32,
    /// How often the run-time settings are re-read from the store.
    pub settings_refresh: Duration,
}

impl Config {
    /// The defaults, serving the CAPF certificate and key at these paths.
    pub fn new(capf_certificate: impl Into<PathBuf>, capf_key: impl Into<PathBuf>) -> Self {
        Config {
            listen: vec![
                SocketAddr::from((Ipv4Addr::UNSPECIFIED, CAPF_PORT)),
                SocketAddr::from((Ipv6Addr::UNSPECIFIED, CAPF_PORT)),
            ],
            enable_ipv6: EnableIpv6::True,
            capf_certificate: capf_certificate.into(),
            capf_key: capf_key.into(),
            trust_dir: None,
            reload_interval: Duration::from_secs(2),
            tls_handshake_timeout: Duration::from_secs(10),
            session: capf_session::ServerConfig::default(),
            lsc_validity: ValidityDays::MAX,
            backlog: 4096,
            settings_refresh: Duration::from_secs(2),
        }
    }
}
