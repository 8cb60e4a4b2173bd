//! capfd's TOML configuration file: every key optional, unknown keys refused, a bad file
//! reported as `FILE:LINE: what`. Command-line flags override it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::{CapfFiles, Config, Error};

/// How long running sessions may finish after a shutdown signal, by default.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Why a top-level `lsc_validity_days` is refused.
const MOVED_LSC_VALIDITY: &str = "`lsc_validity_days` moved to `[settings] lsc_validity_days` (a run-time setting, next to `certificate_issuer`; `capfctl settings set lsc_validity_days DAYS` changes it without a restart)";

/// The signer names this build has, for an error message.
fn available_signers() -> String {
    capf_lsc::SignerBackend::ALL
        .into_iter()
        .filter(|b| b.is_available())
        .map(capf_lsc::SignerBackend::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}
/// How long a node's lease on an attempt in progress lasts by default (`lease_secs`).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(120);

/// The range of `lease_secs`: well above the 10 s renewal, at most an hour.
pub const LEASE_SECS: std::ops::RangeInclusive<u64> = 30..=3600;

/// The data directory without any configuration.
pub const DEFAULT_DATA_DIR: &str = "capf-data";

/// The configuration file, as read (nothing checked beyond its syntax yet; see
/// [`ConfigFile::server_config`]).
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ConfigFile {
    /// The data directory (store, CAPF certificate and key).
    pub data_dir: Option<PathBuf>,
    /// The store: `sqlite:DIR` (default: the data directory's) or `postgres://user@host/db`
    /// (a cluster's; never with a password in it).
    pub store: Option<String>,
    /// A file whose first line is the PostgreSQL password (else `PGPASSWORD`).
    pub store_password_file: Option<PathBuf>,
    /// This node's name in a cluster (1 to 64 letters, digits, `.`, `_`, `-`; default the host
    /// name and the process id). A node restarted under its name ends its own interrupted
    /// attempts at once instead of waiting for their lease to run out.
    pub node: Option<String>,
    /// How long a node's lease on an attempt in progress lasts unless renewed (renewed every
    /// 10 s; default 120, at least 30): when a node dies, its attempts are pending again this
    /// long after.
    pub lease_secs: Option<u64>,
    /// Listen addresses.
    pub listen: Option<Vec<SocketAddr>>,
    /// The opt-in legacy TLS listener's addresses (TLS 1.0 to 1.2, AES-CBC-SHA; the
    /// `legacy-tls` feature).
    pub legacy_tls_listen: Option<Vec<SocketAddr>>,
    /// The Enable IPv6 enterprise parameter.
    pub enable_ipv6: Option<bool>,
    /// Which library signs LSCs: `aws-lc-rs`, `ring` or `rustcrypto` (issue 19); the fastest
    /// built in by default.
    pub lsc_signer: Option<String>,
    /// The CAPF certificate, instead of the data directory's.
    pub capf_certificate: Option<PathBuf>,
    /// The CAPF key, instead of the data directory's.
    pub capf_key: Option<PathBuf>,
    /// The trust-store directory, instead of `<data_dir>/trust`.
    pub trust_dir: Option<PathBuf>,
    /// The old place of the LSC validity: refused with a message naming its new place, the
    /// run-time setting `[settings] lsc_validity_days` (issue 13: the guide's "Duration Of
    /// Certificate Validity" sits next to the certificate issuer mode).
    lsc_validity_days: Option<toml::Value>,
    /// How long a TLS handshake may take.
    pub tls_handshake_timeout_secs: Option<u64>,
    /// How long the phone may take to answer a message.
    pub message_timeout_secs: Option<u64>,
    /// How long the phone may take to generate its key.
    pub key_generation_timeout_secs: Option<u64>,
    /// How long running sessions may finish after a shutdown signal.
    pub shutdown_grace_secs: Option<u64>,
    /// The web administration's HTTPS listener inside capfd (capf-web's API, `/metrics`,
    /// `/healthz`, `/readyz`); off unless given. Keep it on loopback (`127.0.0.1:8443`) or a
    /// management network: only the health checks answer without a login or an API token.
    pub admin_listen: Option<SocketAddr>,
    /// How log lines are written: `text` (the default) or `json` (one JSON object a line).
    pub log_format: Option<LogFormat>,
    /// Run-time settings (`[settings]`, keys as `capfctl settings show` lists them), stored at
    /// start; capfctl changes them later without a restart.
    pub settings: Option<std::collections::BTreeMap<String, toml::Value>>,
    /// The built-in certificate monitor job (`[monitor]`), run by capfd's job scheduler.
    pub monitor: Option<MonitorSection>,
}

/// `[monitor]`: the built-in certificate monitor job (issue 17), which capfd runs daily, and
/// hourly while an LSC expires within a day: it revokes the LSCs past their notAfter and mails
/// one notification per run of those expiring soon. Every key optional.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MonitorSection {
    /// Whether the monitor runs (default true; `false` switches it off).
    pub enabled: Option<bool>,
    /// The notification's look-ahead in days (default 30).
    pub days: Option<u32>,
    /// The SMTP relay, `HOST` or `HOST:PORT` (plain SMTP, port 25 by default); without it the
    /// report goes only to the job's result and the log.
    pub smtp_server: Option<String>,
    /// The notification's sender address (with `smtp_server`).
    pub mail_from: Option<String>,
    /// The notification's recipients (with `smtp_server`).
    pub mail_to: Option<Vec<String>>,
}

/// How capfd writes its log lines (`--log-format`, `log_format`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object a line (timestamp, level, fields, spans), for a log collector.
    Json,
}

impl LogFormat {
    /// Every format, by its name.
    pub const ALL: [LogFormat; 2] = [LogFormat::Text, LogFormat::Json];

    /// The format's name: `text`, `json`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

impl std::str::FromStr for LogFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        LogFormat::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| Error::LogFormat {
                given: s.to_owned(),
            })
    }
}

impl ConfigFile {
    /// Reads and parses the file at `path`.
    ///
    /// # Errors
    /// [`Error::ConfigRead`], [`Error::ConfigParse`].
    pub fn read(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigRead {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses `text`, the content of the file `path` (named in errors).
    ///
    /// # Errors
    /// [`Error::ConfigParse`]: the file, the line and what is wrong, on one line.
    pub fn parse(text: &str, path: &Path) -> Result<Self, Error> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(1, |span| {
                let before = text.as_bytes().get(..span.start.min(text.len()));
                1 + before
                    .unwrap_or_default()
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count()
            });
            Error::ConfigParse {
                path: path.to_owned(),
                line,
                // toml's own text draws the line; the message alone fits one line.
                message: e.message().trim().to_owned(),
            }
        })?;
        if file.lsc_validity_days.is_some() {
            let line = text
                .lines()
                .position(|l| l.trim_start().starts_with("lsc_validity_days"))
                .map_or(1, |i| i + 1);
            return Err(Error::ConfigParse {
                path: path.to_owned(),
                line,
                message: MOVED_LSC_VALIDITY.to_owned(),
            });
        }
        Ok(file)
    }

    /// The data directory: `flag` (the command line's) first, then the file's, then
    /// [`DEFAULT_DATA_DIR`].
    pub fn data_dir(&self, flag: Option<PathBuf>) -> PathBuf {
        flag.or_else(|| self.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
    }

    /// The server's configuration from this file, over the data directory `data` and its CAPF
    /// files: the trust stores in `<data>/trust` unless the file says otherwise (a missing
    /// directory is an empty store).
    ///
    /// # Errors
    /// [`Error::ConfigValue`] for a value out of range.
    pub fn server_config(&self, data: &Path, files: &CapfFiles) -> Result<Config, Error> {
        let mut config = Config::new(
            self.capf_certificate
                .clone()
                .unwrap_or_else(|| files.certificate.clone()),
            self.capf_key.clone().unwrap_or_else(|| files.key.clone()),
        );
        config.trust_dir = Some(self.trust_dir.clone().unwrap_or_else(|| data.join("trust")));
        if let Some(listen) = &self.listen {
            config.listen.clone_from(listen);
        }
        if let Some(legacy) = &self.legacy_tls_listen {
            config.legacy_tls_listen.clone_from(legacy);
        }
        if let Some(signer) = &self.lsc_signer {
            let backend = signer
                .parse::<capf_lsc::SignerBackend>()
                .ok()
                .filter(|b| b.is_available())
                .ok_or_else(|| Error::Config {
                    key: "lsc_signer",
                    value: signer.clone(),
                    allowed: available_signers(),
                })?;
            config.lsc_signer = Some(backend);
        }
        if let Some(v6) = self.enable_ipv6 {
            config.enable_ipv6 = v6.into();
        }
        if let Some(s) = self.tls_handshake_timeout_secs {
            config.tls_handshake_timeout = Duration::from_secs(s);
        }
        if let Some(s) = self.message_timeout_secs {
            config.session.timeouts.message = Duration::from_secs(s);
        }
        if let Some(s) = self.key_generation_timeout_secs {
            config.session.timeouts.key_generation = Duration::from_secs(s);
        }
        config.shutdown_grace = self.shutdown_grace();
        Ok(config)
    }

    /// Applies the file's `[settings]` to `settings`; `false` when the file has none.
    ///
    /// # Errors
    /// [`Error::Store`] naming `[settings]`, for an unknown key or a value it does not take.
    pub fn apply_settings(&self, settings: &mut capf_store::Settings) -> Result<bool, Error> {
        let Some(values) = &self.settings else {
            return Ok(false);
        };
        for (key, value) in values {
            let text = match value {
                toml::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            // The store's error names the key.
            settings.set(key, &text).map_err(|source| Error::Store {
                context: "[settings] in the configuration file",
                source,
            })?;
        }
        Ok(true)
    }

    /// This node's name and lease in a cluster: `flag` (the command line's `--node`) first,
    /// then the file's `node`, else the host name and process id; the lease from `lease_secs`
    /// ([`DEFAULT_LEASE`] by default, [`LEASE_SECS`] the range).
    ///
    /// # Errors
    /// [`Error::Store`] naming the key, for a bad name or a lease out of range.
    pub fn node(&self, flag: Option<&str>) -> Result<(capf_store::NodeId, Duration), Error> {
        let invalid = |key, source| Error::Store {
            context: key,
            source,
        };
        let node = match flag.or(self.node.as_deref()) {
            Some(name) => capf_store::NodeId::new(name).map_err(|e| invalid("node", e))?,
            None => capf_store::NodeId::default_for_process(),
        };
        let lease = match self.lease_secs {
            None => DEFAULT_LEASE,
            Some(secs) if LEASE_SECS.contains(&secs) => Duration::from_secs(secs),
            Some(secs) => {
                return Err(invalid(
                    "lease_secs (30 to 3600)",
                    capf_store::Error::InvalidSetting {
                        key: "lease_secs",
                        value: secs.to_string(),
                    },
                ));
            }
        };
        Ok((node, lease))
    }

    /// Every key the file takes, as the derived parser knows them (so the list cannot drift
    /// from the type): the top-level keys (among them the tables `settings` and `monitor`, and
    /// the refused `lsc_validity_days`), then `settings.KEY` for each run-time setting and
    /// `monitor.KEY` for each key of `[monitor]`. The configuration reference names each.
    pub fn keys() -> Vec<String> {
        let mut keys: Vec<String> = field_names::<ConfigFile>()
            .iter()
            .map(|k| (*k).to_owned())
            .collect();
        keys.extend(
            capf_store::Settings::KEYS
                .iter()
                .map(|k| format!("settings.{k}")),
        );
        keys.extend(
            field_names::<MonitorSection>()
                .iter()
                .map(|k| format!("monitor.{k}")),
        );
        keys
    }

    /// How long running sessions may finish after a shutdown signal.
    pub fn shutdown_grace(&self) -> Duration {
        self.shutdown_grace_secs
            .map_or(DEFAULT_SHUTDOWN_GRACE, Duration::from_secs)
    }
}

/// The field names a struct's derived `Deserialize` reads, which it hands to
/// `deserialize_struct`: a deserializer that only keeps them.
fn field_names<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    // Always an error: the names are all it wants.
    let _ = T::deserialize(FieldNames(&mut fields));
    fields
}

/// See [`field_names`].
struct FieldNames<'a>(&'a mut &'static [&'static str]);

impl<'de> serde::Deserializer<'de> for FieldNames<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom(
            "only a struct's field names are read",
        ))
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(serde::de::Error::custom(
            "only a struct's field names are read",
        ))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn files() -> CapfFiles {
        CapfFiles {
            certificate: PathBuf::from("d/capf.pem"),
            key: PathBuf::from("d/capf.key"),
            created: false,
        }
    }

    #[test]
    fn an_empty_file_gives_the_defaults() {
        let file = ConfigFile::parse("", Path::new("capfd.toml")).unwrap();
        assert_eq!(file.data_dir(None), PathBuf::from("capf-data"));
        assert_eq!(file.shutdown_grace(), Duration::from_secs(30));
        let config = file.server_config(Path::new("d"), &files()).unwrap();
        assert_eq!(config.capf_certificate, PathBuf::from("d/capf.pem"));
        assert_eq!(config.trust_dir, Some(PathBuf::from("d/trust")));
        assert_eq!(config.listen, Config::new("a", "b").listen);
    }

    #[test]
    fn reads_every_key_and_flags_win() {
        let text = "data_dir = \"/srv/capf\"\nlisten = [\"127.0.0.1:3805\"]\n\
                    enable_ipv6 = false\nmessage_timeout_secs = 5\n\
                    shutdown_grace_secs = 3\n[settings]\nlsc_validity_days = 365\n";
        let file = ConfigFile::parse(text, Path::new("capfd.toml")).unwrap();
        assert_eq!(file.data_dir(None), PathBuf::from("/srv/capf"));
        assert_eq!(file.data_dir(Some(PathBuf::from("x"))), PathBuf::from("x"));
        assert_eq!(file.shutdown_grace(), Duration::from_secs(3));
        let config = file.server_config(Path::new("d"), &files()).unwrap();
        assert_eq!(config.listen, ["127.0.0.1:3805".parse().unwrap()]);
        let mut settings = capf_store::Settings::default();
        assert!(file.apply_settings(&mut settings).unwrap());
        assert_eq!(settings.lsc_validity_days.days(), 365);
        assert_eq!(config.session.timeouts.message, Duration::from_secs(5));
    }

    #[test]
    fn reads_the_cluster_keys_and_checks_the_node_and_lease() {
        let text = "store = \"postgres://capf@db1/capf\"\nstore_password_file = \"/etc/pw\"\n\
                    node = \"capf1\"\nlease_secs = 60\n";
        let file = ConfigFile::parse(text, Path::new("capfd.toml")).unwrap();
        assert_eq!(file.store.as_deref(), Some("postgres://capf@db1/capf"));
        assert_eq!(file.store_password_file, Some(PathBuf::from("/etc/pw")));
        let (node, lease) = file.node(None).unwrap();
        assert_eq!((node.as_str(), lease), ("capf1", Duration::from_secs(60)));
        // The flag wins over the file.
        assert_eq!(file.node(Some("capf2")).unwrap().0.as_str(), "capf2");
        let (_, lease) = ConfigFile::default().node(None).unwrap();
        assert_eq!(lease, DEFAULT_LEASE);
        let bad = ConfigFile::parse("lease_secs = 10\n", Path::new("c")).unwrap();
        assert!(
            bad.node(None)
                .unwrap_err()
                .to_string()
                .contains("lease_secs")
        );
        let bad = ConfigFile::parse("node = \"a b\"\n", Path::new("c")).unwrap();
        assert!(bad.node(None).unwrap_err().to_string().contains("node"));
    }

    #[test]
    fn reads_the_admin_listener_and_the_log_format() {
        let file = ConfigFile::parse(
            "admin_listen = \"127.0.0.1:8443\"\nlog_format = \"json\"\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(file.admin_listen, Some("127.0.0.1:8443".parse().unwrap()));
        assert_eq!(file.log_format, Some(LogFormat::Json));
        assert_eq!(ConfigFile::default().admin_listen, None);
        let err = ConfigFile::parse("log_format = \"xml\"\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("c.toml:1: unknown variant `xml`"), "{err}");
        assert_eq!("json".parse::<LogFormat>().unwrap(), LogFormat::Json);
        let err = "xml".parse::<LogFormat>().unwrap_err().to_string();
        assert!(err.contains("text, json"), "{err}");
    }

    #[test]
    fn names_the_line_of_an_unknown_key_and_refuses_a_bad_validity() {
        let err = ConfigFile::parse("listen = []\nlisten_port = 1\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("c.toml:2: unknown field `listen_port`"),
            "{err}"
        );
        let file =
            ConfigFile::parse("[settings]\nlsc_validity_days = 0\n", Path::new("c.toml")).unwrap();
        let err = file
            .apply_settings(&mut capf_store::Settings::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("lsc_validity_days"), "{err}");
    }

    #[test]
    fn lsc_signer_names_a_backend_this_build_has() {
        let parse = |text: &str| {
            ConfigFile::parse(text, Path::new("c.toml"))
                .unwrap()
                .server_config(Path::new("d"), &files())
        };
        assert_eq!(parse("").unwrap().lsc_signer, None);
        for backend in capf_lsc::SignerBackend::ALL
            .into_iter()
            .filter(|b| b.is_available())
        {
            let config = parse(&format!("lsc_signer = \"{backend}\"\n")).unwrap();
            assert_eq!(config.lsc_signer, Some(backend));
        }
        let err = parse("lsc_signer = \"openssl\"\n").unwrap_err().to_string();
        assert!(err.contains("lsc_signer") && err.contains("ring"), "{err}");
    }

    /// The configured signer signs the LSCs (an RSA key: every backend signs it).
    #[test]
    fn the_configured_signer_signs() {
        use capf_lsc::{KeySpec, RsaBits, SignerBackend};
        let (identity, _) = crate::identity::fixture("signer", KeySpec::Rsa(RsaBits::B2048));
        assert_eq!(
            identity.lsc_signer(),
            Some(SignerBackend::default_backend())
        );
        let dir = std::env::temp_dir().join(format!("capf-server-signer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let spec = KeySpec::Rsa(RsaBits::B2048);
        let issuer = capf_test_support::capf_issuer(spec);
        let (cert, key) = (dir.join("capf.pem"), dir.join("capf.key"));
        std::fs::write(
            &cert,
            capf_lsc::certificate_to_pem(issuer.certificate()).unwrap(),
        )
        .unwrap();
        std::fs::write(&key, capf_test_support::key_pem(spec)).unwrap();
        for backend in SignerBackend::ALL.into_iter().filter(|b| b.is_available()) {
            let identity = crate::CapfIdentity::load_with(
                &cert,
                &key,
                capf_test_support::now(),
                Some(backend),
            )
            .unwrap();
            assert_eq!(identity.lsc_signer(), Some(backend));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_old_lsc_validity_key_names_its_new_place() {
        let err = ConfigFile::parse(
            "listen = []\nlsc_validity_days = 365\n",
            Path::new("c.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with(
                "c.toml:2: `lsc_validity_days` moved to `[settings] lsc_validity_days`"
            ),
            "{err}"
        );
    }

    /// The keys a table of docs/configuration.md's section `heading` names: the first cell of
    /// each row, in backquotes.
    fn documented(doc: &str, heading: &str) -> Vec<String> {
        let Some(start) = doc.find(heading) else {
            panic!("docs/configuration.md has no section {heading:?}");
        };
        let section = &doc[start + heading.len()..];
        let section = &section[..section.find("\n## ").unwrap_or(section.len())];
        section
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split_once('`'))
            .map(|(key, _)| key.to_owned())
            .collect()
    }

    #[test]
    fn the_configuration_reference_names_every_key_and_only_those() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
        let doc = std::fs::read_to_string(&path).unwrap();
        let keys = ConfigFile::keys();
        assert!(keys.iter().any(|k| k == "lease_secs"), "{keys:?}");
        assert!(keys.iter().any(|k| k == "monitor.smtp_server"), "{keys:?}");
        assert!(
            keys.iter().any(|k| k == "settings.keepalive_minutes"),
            "{keys:?}"
        );
        let mut documented: Vec<String> = documented(&doc, "## Top-level keys")
            .into_iter()
            .chain(["settings".to_owned(), "monitor".to_owned()])
            .chain(
                documented(&doc, "## `[settings]`")
                    .into_iter()
                    .map(|k| format!("settings.{k}")),
            )
            .chain(
                documented(&doc, "## `[monitor]`")
                    .into_iter()
                    .map(|k| format!("monitor.{k}")),
            )
            .collect();
        documented.sort();
        let mut keys = keys;
        keys.sort();
        assert_eq!(documented, keys, "docs/configuration.md against ConfigFile");
        // The tables themselves are documented as sections.
        assert!(doc.contains("## `[settings]`") && doc.contains("## `[monitor]`"));
    }
}
