//! LDAP directory sync with a device template: step 6 of the guide's task flow ("add CAPF
//! settings to a Universal Device Template and apply settings through the initial LDAP
//! sync").
//!
//! A [`DirectoryConfig`] names the server (`ldap://` or `ldaps://`), the bind DN and its
//! password (read from a file, never a command line), the search base and filter, how an entry gives its device name (an
//! attribute that holds it, or a prefix and an attribute, as UCM's self-provisioning makes
//! `CSF` + uid), and the device template whose CAPF settings the devices get.
//! [`sync_directory`] binds, reads every matching entry (paged, so a directory's size limit
//! does not cut the list), and applies the result in one store transaction
//! ([`AdminStore::sync_directory`](capf_store::AdminStore::sync_directory)):
//!
//! - the first sync registers every device with the template's settings; a later sync
//!   registers only the devices it has not seen (the template goes "to an LDAP directory that
//!   hasn't been synced": devices already brought in keep what they have);
//! - devices that left the directory are reported, never deleted;
//! - an entry without a valid device name is reported with its DN, and the rest proceed;
//! - a wrong bind password, a directory that is down or a failed search is one error, and
//!   nothing is applied.
//!
//! The configuration is stored ([`save_config`], [`stored_config`]; the password sealed in the
//! store as the Online CA password is, and never shown: [`DirectoryConfigView`]), so capfctl
//! and the web administration sync from the same one.
//!
//! `ldaps` verifies the directory's certificate against CAPF-trust and the system's trust
//! store (rustls with ring; the name in the URL must be the certificate's).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use capf_store::{DeviceStore, DirectoryConfigRecord, DirectoryEntry, Secret};
use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{LdapConn, LdapConnSettings, Scope, SearchEntry};
use serde::Serialize;

use crate::{Error, Progress, check_device_name};

/// How long connecting to the directory may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one directory operation (the bind, one page of the search) may take.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(60);
/// Entries per page of the search (the RFC 2696 control; a directory's own size limit, such
/// as slapd's 500 or Active Directory's 1000, bounds one page, not the sync).
pub const PAGE_SIZE: i32 = 500;

/// How a directory entry gives its device name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceNameRule {
    /// Put before the attribute's value (`CSF` for UCM's self-provisioning; empty when the
    /// attribute holds the whole name).
    pub prefix: String,
    /// The attribute (its first value), such as `uid`.
    pub attribute: String,
}

/// `ATTRIBUTE` or `PREFIX+ATTRIBUTE`, as [`DeviceNameRule::parse`] reads it.
impl core::fmt::Display for DeviceNameRule {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.prefix.is_empty() {
            f.write_str(&self.attribute)
        } else {
            write!(f, "{}+{}", self.prefix, self.attribute)
        }
    }
}

impl DeviceNameRule {
    /// `ATTRIBUTE` (it holds the device name) or `PREFIX+ATTRIBUTE` (`CSF+uid`).
    ///
    /// # Errors
    /// [`Error::DeviceNameRule`] for an empty attribute.
    pub fn parse(text: &str) -> Result<DeviceNameRule, Error> {
        let (prefix, attribute) = text.rsplit_once('+').unwrap_or(("", text));
        let attribute = attribute.trim();
        if attribute.is_empty() || attribute.contains(char::is_whitespace) {
            return Err(Error::DeviceNameRule {
                text: text.to_owned(),
            });
        }
        Ok(DeviceNameRule {
            prefix: prefix.trim().to_owned(),
            attribute: attribute.to_owned(),
        })
    }
}

/// The directory to sync from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectoryConfig {
    /// `ldap://HOST[:PORT]` or `ldaps://HOST[:PORT]`.
    pub url: String,
    /// The DN to bind as.
    pub bind_dn: String,
    /// The bind password (from a file: [`read_password`]; `Debug` masks it).
    pub password: Secret,
    /// The search base.
    pub base: String,
    /// The search filter, such as `(objectClass=inetOrgPerson)`.
    pub filter: String,
    /// How an entry gives its device name.
    pub device_name: DeviceNameRule,
    /// The device template whose settings the devices get.
    pub template: String,
}

impl DirectoryConfig {
    /// The configuration as the store keeps it.
    pub fn to_record(&self) -> DirectoryConfigRecord {
        DirectoryConfigRecord {
            url: self.url.clone(),
            bind_dn: self.bind_dn.clone(),
            password: self.password.clone(),
            base: self.base.clone(),
            filter: self.filter.clone(),
            device_name: self.device_name.to_string(),
            template: self.template.clone(),
        }
    }

    /// The stored configuration, its rule parsed.
    ///
    /// # Errors
    /// [`Error::DeviceNameRule`] for a rule that does not parse.
    pub fn from_record(record: DirectoryConfigRecord) -> Result<DirectoryConfig, Error> {
        Ok(DirectoryConfig {
            device_name: DeviceNameRule::parse(&record.device_name)?,
            url: record.url,
            bind_dn: record.bind_dn,
            password: record.password,
            base: record.base,
            filter: record.filter,
            template: record.template,
        })
    }

    /// Checks what can be checked without the directory: the URL's scheme and the fields
    /// that must not be empty.
    ///
    /// # Errors
    /// [`Error::DirectoryConfig`] naming the field.
    pub fn check(&self) -> Result<(), Error> {
        let bad =
            |field: &'static str, reason: &'static str| Error::DirectoryConfig { field, reason };
        if !(self.url.starts_with("ldap://") || self.url.starts_with("ldaps://")) {
            return Err(bad("url", "must start with ldap:// or ldaps://"));
        }
        for (field, value) in [
            ("bind_dn", &self.bind_dn),
            ("base", &self.base),
            ("filter", &self.filter),
            ("template", &self.template),
        ] {
            if value.trim().is_empty() {
                return Err(bad(field, "is empty"));
            }
        }
        if self.password.is_empty() {
            return Err(bad("password", "is empty"));
        }
        Ok(())
    }
}

/// The bind password: the first line of `file`.
///
/// # Errors
/// [`Error::Io`] naming the file.
pub fn read_password(file: &Path) -> Result<Secret, Error> {
    let text = crate::read_text(file)?;
    Ok(Secret::new(text.lines().next().unwrap_or_default()))
}

/// Stores the directory configuration (checked first), replacing the stored one; audited
/// without the password.
///
/// # Errors
/// [`Error::DirectoryConfig`], [`Error::UnknownTemplate`], or the store's.
pub fn save_config(
    store: &dyn DeviceStore,
    config: &DirectoryConfig,
    now: SystemTime,
) -> Result<(), Error> {
    config.check()?;
    if store.template(&config.template)?.is_none() {
        return Err(Error::UnknownTemplate {
            name: config.template.clone(),
        });
    }
    Ok(store.set_directory_config(&config.to_record(), now)?)
}

/// The stored directory configuration, or `None` before one is saved.
///
/// # Errors
/// [`Error::DeviceNameRule`], or the store's.
pub fn stored_config(store: &dyn DeviceStore) -> Result<Option<DirectoryConfig>, Error> {
    store
        .directory_config()?
        .map(DirectoryConfig::from_record)
        .transpose()
}

/// The directory configuration for people and programs (`capfctl ldap config show`, the web
/// administration): everything but the password, which is only said to be set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DirectoryConfigView {
    /// The directory's URL.
    pub url: String,
    /// The DN to bind as.
    pub bind_dn: String,
    /// Whether a password is stored (never the password).
    pub password_set: bool,
    /// The search base.
    pub base: String,
    /// The search filter.
    pub filter: String,
    /// The device-name rule (`uid`, `CSF+uid`).
    pub device_name: String,
    /// The device template.
    pub template: String,
}

impl From<&DirectoryConfig> for DirectoryConfigView {
    fn from(c: &DirectoryConfig) -> Self {
        DirectoryConfigView {
            url: c.url.clone(),
            bind_dn: c.bind_dn.clone(),
            password_set: !c.password.is_empty(),
            base: c.base.clone(),
            filter: c.filter.clone(),
            device_name: c.device_name.to_string(),
            template: c.template.clone(),
        }
    }
}

/// An entry the sync refused, with its DN: the rest proceed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BadEntry {
    /// The entry's DN.
    pub dn: String,
    /// Why.
    pub reason: String,
}

impl core::fmt::Display for BadEntry {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.dn, self.reason)
    }
}

/// A device that left the directory (reported; it stays registered).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DepartedView {
    /// The device.
    pub name: String,
    /// Its entry's DN when last seen.
    pub dn: String,
    /// When a sync last found it.
    pub last_seen: String,
}

/// What a sync did (or, in a dry run, would do): capfctl's `--json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Whether nothing was applied.
    pub dry_run: bool,
    /// Whether this was the directory's first sync.
    pub first_sync: bool,
    /// The template applied to the devices added.
    pub template: String,
    /// The entries the search returned.
    pub entries: usize,
    /// The devices registered.
    pub added: Vec<String>,
    /// Entries whose device was registered already, left as they are.
    pub already_registered: Vec<String>,
    /// Devices an earlier sync brought in that the directory no longer lists.
    pub departed: Vec<DepartedView>,
    /// Entries refused, with their DN.
    pub bad_entries: Vec<BadEntry>,
}

/// The directory's trust anchors for `ldaps`: CAPF-trust's certificates (DER) and the
/// system's trust store.
fn tls_config(capf_trust: &[Vec<u8>]) -> Result<Arc<rustls::ClientConfig>, Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(
        capf_trust
            .iter()
            .map(|der| rustls::pki_types::CertificateDer::from(der.clone())),
    );
    // The system store may be missing or partly unreadable: CAPF-trust alone then decides.
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|source| Error::DirectoryTls { source })?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

fn directory_error(what: String) -> impl FnOnce(ldap3::LdapError) -> Error {
    move |source| Error::Directory {
        what,
        source: Box::new(source),
    }
}

/// Binds and reads every entry of the search: (DN, the name attribute's first value).
fn read_entries(
    config: &DirectoryConfig,
    password: &str,
    capf_trust: &[Vec<u8>],
    progress: &mut dyn Progress,
) -> Result<Vec<(String, Option<String>)>, Error> {
    let settings = LdapConnSettings::new()
        .set_conn_timeout(CONNECT_TIMEOUT)
        .set_config(tls_config(capf_trust)?);
    let mut conn = LdapConn::with_settings(settings, &config.url)
        .map_err(directory_error(format!("connecting to {}", config.url)))?;
    conn.with_timeout(OPERATION_TIMEOUT)
        .simple_bind(&config.bind_dn, password)
        .and_then(ldap3::LdapResult::success)
        .map_err(directory_error(format!(
            "binding to {} as {}",
            config.url, config.bind_dn
        )))?;
    let searching = || format!("searching {} under {}", config.url, config.base);
    let adapters: Vec<Box<dyn Adapter<'_, &str, Vec<&str>>>> = vec![
        Box::new(EntriesOnly::new()),
        Box::new(PagedResults::new(PAGE_SIZE)),
    ];
    let attribute = config.device_name.attribute.as_str();
    let mut stream = conn
        .streaming_search_with(
            adapters,
            &config.base,
            Scope::Subtree,
            &config.filter,
            vec![attribute],
        )
        .map_err(directory_error(searching()))?;
    progress.start("reading the directory", None);
    let mut entries = Vec::new();
    loop {
        let next = stream.next().map_err(directory_error(searching()));
        let entry = match next {
            Ok(Some(entry)) => entry,
            Ok(None) => break,
            Err(e) => {
                progress.finish();
                return Err(e);
            }
        };
        let entry = SearchEntry::construct(entry);
        let value = entry
            .attrs
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(attribute))
            .and_then(|(_, values)| values.first().cloned());
        entries.push((entry.dn, value));
        progress.advance(1);
    }
    progress.finish();
    stream
        .result()
        .success()
        .map_err(directory_error(searching()))?;
    let _ = conn.unbind();
    Ok(entries)
}

/// Syncs the directory into the store (see the [module documentation](self)): one
/// transaction with an audit entry per device added, or, with `dry_run`, the same worked out
/// and rolled back. `capf_trust` are CAPF-trust's certificates (DER), the `ldaps` anchors
/// beside the system's.
///
/// # Errors
/// [`Error::UnknownTemplate`],
/// [`Error::OnlineCaRefusesEc`] (the template asks for EC in the Online CA mode),
/// [`Error::Directory`] (connecting, binding, searching: nothing is applied),
/// [`Error::DirectoryTls`], or the store's.
pub fn sync_directory(
    store: &dyn DeviceStore,
    config: &DirectoryConfig,
    capf_trust: &[Vec<u8>],
    dry_run: bool,
    progress: &mut dyn Progress,
    now: SystemTime,
) -> Result<SyncReport, Error> {
    let password = config.password.expose();
    let template = store
        .template(&config.template)?
        .ok_or_else(|| Error::UnknownTemplate {
            name: config.template.clone(),
        })?;
    crate::online_ca::refuse_ec(&store.settings()?, &template.operation, || {
        format!("device template {}", template.name)
    })?;
    let found = read_entries(config, password, capf_trust, progress)?;

    let mut bad_entries = Vec::new();
    let mut first_dn: HashMap<String, String> = HashMap::with_capacity(found.len());
    let mut entries = Vec::with_capacity(found.len());
    for (dn, value) in &found {
        let bad = |reason: String| BadEntry {
            dn: dn.clone(),
            reason,
        };
        let Some(value) = value else {
            bad_entries.push(bad(format!(
                "no {} attribute",
                config.device_name.attribute
            )));
            continue;
        };
        let text = format!("{}{value}", config.device_name.prefix);
        let name = match check_device_name(&text) {
            Ok(name) => name,
            Err(e) => {
                bad_entries.push(bad(format!(
                    "device name {text:?}: {}",
                    crate::error_chain(&e)
                )));
                continue;
            }
        };
        if let Some(first) = first_dn.insert(name.to_ascii_lowercase(), dn.clone()) {
            bad_entries.push(bad(format!("device {name} is also entry {first}")));
            first_dn.insert(name.to_ascii_lowercase(), first);
            continue;
        }
        entries.push(DirectoryEntry {
            device: template.new_device(name),
            dn: dn.clone(),
        });
    }

    progress.start(
        &format!(
            "{} {} devices",
            if dry_run { "checking" } else { "applying" },
            entries.len()
        ),
        None,
    );
    let outcome = store.sync_directory(&entries, dry_run, now);
    progress.finish();
    let outcome = outcome?;
    Ok(SyncReport {
        dry_run,
        first_sync: outcome.first_sync,
        template: template.name,
        entries: found.len(),
        added: outcome.added.iter().map(ToString::to_string).collect(),
        already_registered: outcome
            .already_registered
            .iter()
            .map(ToString::to_string)
            .collect(),
        departed: outcome
            .departed
            .iter()
            .map(|d| DepartedView {
                name: d.name.to_string(),
                dn: d.dn.clone(),
                last_seen: crate::rfc3339(d.last_seen),
            })
            .collect(),
        bad_entries,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_rule_is_an_attribute_or_a_prefix_and_an_attribute() {
        assert_eq!(
            DeviceNameRule::parse("CSF+uid").unwrap(),
            DeviceNameRule {
                prefix: "CSF".to_owned(),
                attribute: "uid".to_owned()
            }
        );
        assert_eq!(DeviceNameRule::parse("description").unwrap().prefix, "");
        for bad in ["", "CSF+", "a b"] {
            assert!(DeviceNameRule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tls_config_builds_with_and_without_capf_trust() {
        tls_config(&[]).unwrap();
        tls_config(&[vec![0x30, 0x00]]).unwrap();
    }
}
