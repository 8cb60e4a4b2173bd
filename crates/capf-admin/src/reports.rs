//! Reports and monitoring over the store: the operation status report, expiring LSCs with
//! their notification email, revocation of expired LSCs, the CRL, exports, the keepalive.

use std::path::Path;
use std::time::{Duration, SystemTime};

use capf_lsc::Issuer;
use capf_lsc::der::pem::LineEnding;
use capf_store::{
    Device, DeviceQuery, DeviceStore, KeepaliveMinutes, LscRecord, OperationStatus, StatusKind,
};

use crate::views::{
    ExportedLscView, FailedDeviceView, LscView, PastCompleteByView, SettingView, StatusView,
};
use crate::{DeviceFilter, Error, read_text, rfc3339};

const DAY: u64 = 86_400;

/// The operation status report: counts, the failed devices and the devices past their
/// complete-by date.
///
/// # Errors
/// The store's.
pub fn status_report(store: &dyn DeviceStore, now: SystemTime) -> Result<StatusView, Error> {
    let report = store.status_report(now)?;
    let failed = store.query_devices(&DeviceQuery {
        status: Some(StatusKind::Failed),
        ..Default::default()
    })?;
    let past = store.query_devices(&DeviceQuery {
        complete_by_before: Some(now),
        ..Default::default()
    })?;
    let reason = |d: &Device| match &d.status {
        OperationStatus::Failed { reason } => reason.clone(),
        other => other.to_string(),
    };
    Ok(StatusView {
        pending: report.pending,
        in_progress: report.in_progress,
        succeeded: report.succeeded,
        failed: report.failed,
        expired: report.expired,
        no_operation: report.none,
        past_complete_by: report.past_complete_by,
        failed_devices: failed
            .iter()
            .map(|d| FailedDeviceView {
                name: d.name.to_string(),
                operation: d.operation.to_string(),
                reason: reason(d),
            })
            .collect(),
        past_complete_by_devices: past
            .iter()
            .map(|d| PastCompleteByView {
                name: d.name.to_string(),
                operation: d.operation.to_string(),
                complete_by: d.complete_by.map(rfc3339),
            })
            .collect(),
    })
}

/// Sets the CAPF keepalive, which the running server re-reads.
///
/// # Errors
/// The store's.
pub fn set_keepalive(
    store: &dyn DeviceStore,
    keepalive: KeepaliveMinutes,
    now: SystemTime,
) -> Result<(), Error> {
    Ok(store.set_keepalive(keepalive, now)?)
}

/// The CAPF keepalive.
///
/// # Errors
/// The store's.
pub fn keepalive(store: &dyn DeviceStore) -> Result<KeepaliveMinutes, Error> {
    Ok(store.settings()?.keepalive)
}

/// Every run-time setting, as (key, value) in the order of
/// [`capf_store::Settings::KEYS`] (`capfctl settings show`).
///
/// # Errors
/// The store's.
pub fn settings(store: &dyn DeviceStore) -> Result<Vec<SettingView>, Error> {
    Ok(store
        .settings()?
        .rows()
        .into_iter()
        .map(|(key, value)| SettingView::new(key, value))
        .collect())
}

/// Sets one run-time setting from its text (`capfctl settings set KEY VALUE`); the running
/// server picks it up within seconds (issue 12 item 2).
///
/// # Errors
/// [`capf_store::Error::UnknownSetting`] or [`capf_store::Error::InvalidSetting`] (as
/// [`Error::Store`]), or the store's.
pub fn set_setting(
    store: &dyn DeviceStore,
    key: &str,
    value: &str,
    now: SystemTime,
) -> Result<SettingView, Error> {
    let mut settings = store.settings()?;
    settings.set(key, value.trim())?;
    crate::check_online_ca_key_orders(store, &settings)?;
    store.update_settings(&settings, now)?;
    let (key, value) = settings
        .rows()
        .into_iter()
        .find(|(k, _)| *k == key)
        .ok_or_else(|| capf_store::Error::UnknownSetting {
            key: key.to_owned(),
        })?;
    Ok(SettingView::new(key, value))
}

/// What one monitor run found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MonitorReport {
    /// The look-ahead in days.
    pub days: u32,
    /// The installed LSCs expiring within it.
    pub expiring: Vec<LscRecord>,
    /// The expired LSCs this run marked revoked.
    pub revoked: Vec<LscRecord>,
}

impl MonitorReport {
    /// Whether there is anything to tell.
    pub fn is_empty(&self) -> bool {
        self.expiring.is_empty() && self.revoked.is_empty()
    }

    /// The report as text (the notification's body).
    pub fn text(&self) -> String {
        let mut text = format!(
            "{} LSCs expire within {} days:\n",
            self.expiring.len(),
            self.days
        );
        let line = |text: &mut String, l: &LscRecord| {
            text.push_str(&format!(
                "  {}  serial {}  notAfter {}\n",
                l.device,
                l.serial_hex(),
                rfc3339(l.not_after)
            ));
        };
        for l in &self.expiring {
            line(&mut text, l);
        }
        text.push_str(&format!(
            "{} expired LSCs were marked revoked:\n",
            self.revoked.len()
        ));
        for l in &self.revoked {
            line(&mut text, l);
        }
        text
    }

    /// The notification's subject.
    pub fn subject(&self) -> String {
        format!(
            "CAPF: {} LSCs expire within {} days, {} revoked",
            self.expiring.len(),
            self.days,
            self.revoked.len()
        )
    }

    /// The view for JSON.
    pub fn view(&self, mailed: bool) -> crate::MonitorView {
        crate::MonitorView {
            days: self.days,
            expiring: self.expiring.iter().map(LscView::from).collect(),
            revoked: self.revoked.iter().map(LscView::from).collect(),
            mailed,
        }
    }
}

/// One monitor run: marks the expired LSCs revoked, and lists the LSCs expiring within
/// `days`.
///
/// # Errors
/// [`Error::DaysTooFar`], or the store's.
pub fn monitor(
    store: &dyn DeviceStore,
    days: u32,
    now: SystemTime,
) -> Result<MonitorReport, Error> {
    let revoked = store.revoke_expired_lscs(now)?;
    let horizon = now
        .checked_add(Duration::from_secs(u64::from(days) * DAY))
        .ok_or(Error::DaysTooFar { days })?;
    let expiring = store.lscs_expiring_before(horizon)?;
    Ok(MonitorReport {
        days,
        expiring,
        revoked,
    })
}

/// Where the notification email goes: a plain SMTP relay (no TLS, no login: a local relay).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpRelay {
    /// `HOST` or `HOST:PORT` (port 25 by default).
    pub server: String,
    /// The sender address.
    pub from: String,
    /// The recipients.
    pub to: Vec<String>,
}

/// Sends the monitor's report by email through `relay`.
///
/// # Errors
/// [`Error::SmtpPort`], [`Error::MailAddress`], [`Error::MailBuild`], [`Error::MailSend`].
pub fn send_notification(relay: &SmtpRelay, report: &MonitorReport) -> Result<(), Error> {
    use lettre::message::header::ContentType;
    use lettre::{Message, SmtpTransport, Transport};

    let server = relay.server.as_str();
    let (host, port) = match server.rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse::<u16>().map_err(|_| Error::SmtpPort {
                server: server.to_owned(),
            })?,
        ),
        None => (server, 25),
    };
    let address = |field: &'static str, text: &str| {
        text.parse().map_err(|error| Error::MailAddress {
            field,
            address: text.to_owned(),
            error,
        })
    };
    let mut builder = Message::builder()
        .from(address("--mail-from", &relay.from)?)
        .subject(report.subject())
        .header(ContentType::TEXT_PLAIN);
    for to in &relay.to {
        builder = builder.to(address("--mail-to", to)?);
    }
    let message = builder
        .body(report.text())
        .map_err(|source| Error::MailBuild { source })?;
    SmtpTransport::builder_dangerous(host)
        .port(port)
        .timeout(Some(Duration::from_secs(30)))
        .build()
        .send(&message)
        .map_err(|error| Error::MailSend {
            server: server.to_owned(),
            error: Box::new(error),
        })?;
    Ok(())
}

/// The CAPF issuer from its certificate and key files.
///
/// # Errors
/// [`Error::Io`], [`Error::Issuer`].
pub fn load_issuer(cert: &Path, key: &Path) -> Result<Issuer, Error> {
    let pem = format!("{}\n{}", read_text(cert)?, read_text(key)?);
    Issuer::from_pem(&pem).map_err(|source| Error::Issuer {
        cert: cert.to_owned(),
        key: key.to_owned(),
        source: Box::new(source),
    })
}

/// A CRL of the store's revoked LSCs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Crl {
    /// The CRL, PEM.
    pub pem: String,
    /// The LSCs it lists.
    pub revoked: Vec<LscRecord>,
    /// thisUpdate.
    pub this_update: SystemTime,
    /// nextUpdate.
    pub next_update: SystemTime,
}

/// The CRL of the store's revoked LSCs, signed by `issuer` (capf-ca's
/// [`build_crl`](capf_ca::build_crl)), valid for `next_update_days` (at least 1).
///
/// # Errors
/// The store's, or capf-ca's.
pub fn revoked_lscs_crl(
    store: &dyn DeviceStore,
    issuer: &Issuer,
    next_update_days: u32,
    now: SystemTime,
) -> Result<Crl, Error> {
    let revoked = store.revoked_lscs()?;
    let next_update = now + Duration::from_secs(u64::from(next_update_days.max(1)) * DAY);
    let serials: Vec<capf_ca::RevokedSerial<'_>> = revoked
        .iter()
        .map(|l| capf_ca::RevokedSerial {
            serial: &l.serial,
            revoked_at: l.state_changed_at,
        })
        .collect();
    let pem = capf_ca::build_crl(issuer, &serials, now, next_update)?;
    Ok(Crl {
        pem,
        revoked,
        this_update: now,
        next_update,
    })
}

impl Crl {
    /// The view for JSON; `out` is where it was written.
    pub fn view(&self, out: Option<&Path>) -> crate::CrlView {
        crate::CrlView {
            out: out.map(|p| p.display().to_string()),
            this_update: rfc3339(self.this_update),
            next_update: rfc3339(self.next_update),
            revoked: self.revoked.iter().map(LscRecord::serial_hex).collect(),
            pem: self.pem.clone(),
        }
    }
}

/// A serial number in hex (colons allowed, as OpenSSL prints them).
///
/// # Errors
/// [`Error::SerialHex`].
pub fn parse_serial(text: &str) -> Result<Vec<u8>, Error> {
    let clean: String = text.chars().filter(|c| *c != ':').collect();
    hex::decode(&clean)
        .ok()
        .filter(|b| !b.is_empty())
        .ok_or_else(|| Error::SerialHex {
            text: text.to_owned(),
        })
}

/// Revokes the LSC whose serial is `serial` (hex, colons allowed): from then on it no longer
/// authenticates a phone (the server accepts only an installed, current LSC), and the next
/// [`revoked_lscs_crl`] lists it.
///
/// # Errors
/// [`Error::SerialHex`], [`Error::UnknownLsc`], or the store's (the LSC is already revoked:
/// [`capf_store::Error::LscWrongState`]).
pub fn revoke_lsc(
    store: &dyn DeviceStore,
    serial: &str,
    now: SystemTime,
) -> Result<LscRecord, Error> {
    let bytes = parse_serial(serial)?;
    if store.lsc(&bytes)?.is_none() {
        return Err(Error::UnknownLsc {
            text: serial.to_owned(),
        });
    }
    Ok(store.revoke_lsc(&bytes, now)?)
}

/// What to export: one LSC by serial (in whatever state), or the installed LSCs of the
/// devices a filter matches.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LscSelection {
    /// One LSC: its serial as given (hex).
    Serial(String),
    /// The installed LSCs of the matching devices.
    Installed(DeviceFilter),
}

/// The LSCs of a selection.
///
/// # Errors
/// [`Error::SerialHex`], [`Error::UnknownLsc`], or the store's.
pub fn select_lscs(
    store: &dyn DeviceStore,
    selection: &LscSelection,
    now: SystemTime,
) -> Result<Vec<LscRecord>, Error> {
    Ok(match selection {
        LscSelection::Serial(text) => {
            let serial = parse_serial(text)?;
            vec![
                store
                    .lsc(&serial)?
                    .ok_or_else(|| Error::UnknownLsc { text: text.clone() })?,
            ]
        }
        LscSelection::Installed(filter) => store.installed_lscs(&filter.to_query(now))?,
    })
}

/// An LSC as PEM (`CERTIFICATE`).
///
/// # Errors
/// [`Error::Pem`].
pub fn lsc_pem(l: &LscRecord) -> Result<String, Error> {
    capf_lsc::der::pem::encode_string("CERTIFICATE", LineEnding::LF, &l.der).map_err(|error| {
        Error::Pem {
            serial: l.serial_hex(),
            error,
        }
    })
}

/// The LSCs as PEM, one after another.
///
/// # Errors
/// [`Error::Pem`].
pub fn export_pem(lscs: &[LscRecord]) -> Result<String, Error> {
    lscs.iter().map(lsc_pem).collect()
}

/// The LSCs as a CSV report: `device_name,serial,state,not_before,not_after,issued_at`.
///
/// # Errors
/// [`Error::Csv`] (in memory, so only on a csv crate failure).
pub fn export_csv(lscs: &[LscRecord]) -> Result<String, Error> {
    let csv = |error| Error::Csv { error };
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer
        .write_record([
            "device_name",
            "serial",
            "state",
            "not_before",
            "not_after",
            "issued_at",
        ])
        .map_err(csv)?;
    for l in lscs {
        writer
            .write_record([
                l.device.to_string(),
                l.serial_hex(),
                l.state.as_str().to_owned(),
                rfc3339(l.not_before),
                rfc3339(l.not_after),
                rfc3339(l.issued_at),
            ])
            .map_err(csv)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| csv(csv::Error::from(e.into_error())))?;
    // Every field written is UTF-8, so the output is.
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The LSCs as views with their PEM (what JSON comes from).
///
/// # Errors
/// [`Error::Pem`].
pub fn export_views(lscs: &[LscRecord]) -> Result<Vec<ExportedLscView>, Error> {
    lscs.iter()
        .map(|l| {
            Ok(ExportedLscView {
                lsc: l.into(),
                pem: lsc_pem(l)?,
            })
        })
        .collect()
}
