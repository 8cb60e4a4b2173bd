//! The store traits: [`SessionStore`] (what a CAPF server needs while phones enroll),
//! [`AdminStore`] (everything an administrator does), and [`DeviceStore`], both at once.

use std::time::{Duration, SystemTime};

use capf_lsc::{CertificateIssuer, DeviceName, OnlineCaConfig};

use crate::{
    Account, AccountName, ApiToken, AttemptEnd, AuditEntry, BulkChange, CaRequest, CaRequestState,
    CapfCertificate, Device, DeviceChange, DevicePage, DeviceQuery, DeviceTemplate, DeviceUpdate,
    DirectoryConfigRecord, DirectoryEntry, DirectorySyncOutcome, DirectorySyncState, Error,
    IssuedLsc, Job, JobResult, JobState, JobWork, KeepaliveMinutes, LscRecord, LscState,
    NewAccount, NewCaRequest, NewDevice, NewJob, Operation, Secret, Settings, StatusReport,
    TroubleshootResult,
};

/// The session lifecycle: what a CAPF server calls while phones enroll, and nothing else.
///
/// Look the device up, check its authentication string (and count a failure), begin an
/// attempt, record what the phone did (an EC key it could not generate, an LSC issued and
/// installed, a delete or a troubleshoot done), end an attempt that did not succeed, mark an
/// operation expired, read the run-time settings, and at start find the attempts a stopped
/// server left in progress.
///
/// Synchronous and object-safe (`dyn SessionStore`); an async server calls it through
/// `spawn_blocking`, or, for a store that [batches](SessionStore::batches), on one thread of
/// its own, batch by batch. Time is always passed in (`now`), never read inside. Every write is one
/// transaction that also appends an [`AuditEntry`], so a crash leaves a device either as it was
/// or as it became, never in between, and the audit log always matches.
///
/// Device names come typed ([`DeviceName`]): the caller validated them where they were given
/// (the session, a form, a CSV file), so the store never checks one again; the names it returns
/// it reads back from its own records (a stored name that does not parse is
/// [`Error::Corrupt`]). Device names are looked up case-insensitively. A call about a device that is not registered
/// fails with [`Error::UnknownDevice`], except [`SessionStore::device`], which returns `None`.
pub trait SessionStore: Send + Sync {
    /// The device, or `None` if it is not registered.
    ///
    /// # Errors
    /// A database error.
    fn device(&self, name: &DeviceName) -> Result<Option<Device>, Error>;

    /// Whether `candidate` is the device's authentication string (compared in constant time);
    /// `false` when the device has none. Changes nothing: record a failure with
    /// [`SessionStore::record_auth_failure`].
    ///
    /// # Errors
    /// [`Error::UnknownDevice`], or a database error.
    fn check_auth_string(&self, name: &DeviceName, candidate: &str) -> Result<bool, Error>;

    /// Counts a failed authentication-string attempt: `auth_failures` + 1, `last_auth_failure`
    /// = `now` (see [`Device::is_auth_locked_out`]).
    ///
    /// # Errors
    /// [`Error::UnknownDevice`], or a database error.
    fn record_auth_failure(&self, name: &DeviceName, now: SystemTime) -> Result<Device, Error>;

    /// A session for the device's operation has begun (the phone authenticated): status
    /// InProgress, attempts + 1, auth failures reset to 0.
    ///
    /// # Errors
    /// [`Error::NoOperationToRun`] unless [`Device::has_operation_to_run`] (the server checks
    /// the complete-by date first and calls [`SessionStore::mark_expired`]),
    /// [`Error::UnknownDevice`], or a database error.
    fn begin_attempt(&self, name: &DeviceName, now: SystemTime) -> Result<Device, Error>;

    /// The phone reported that it could not generate an EC key: later attempts of this
    /// operation ask for RSA (see [`Device::ec_key_generation_failed`]).
    ///
    /// # Errors
    /// [`Error::UnknownDevice`], or a database error.
    fn record_ec_key_generation_failure(
        &self,
        name: &DeviceName,
        now: SystemTime,
    ) -> Result<Device, Error>;

    /// Records an LSC signed for the device and sent to it, as Issued; every other Issued LSC of
    /// the device becomes Stale (it was never confirmed), and so does an Issued request to an
    /// external CA whose LSC that was.
    ///
    /// # Errors
    /// [`Error::InvalidLsc`] (empty serial or certificate, notAfter before notBefore),
    /// [`Error::DuplicateSerial`], [`Error::UnknownDevice`], or a database error.
    fn record_lsc_issued(
        &self,
        name: &DeviceName,
        lsc: &IssuedLsc,
        now: SystemTime,
    ) -> Result<LscRecord, Error>;

    /// The phone confirmed it stored the LSC (STORE_CERT_RESPONSE): the LSC becomes Installed,
    /// the device's previously Installed LSCs Superseded; the operation becomes None, the status
    /// Success, the last error and the (one-time) authentication string are cleared. An Issued
    /// request to an external CA whose LSC this is becomes Delivered.
    ///
    /// # Errors
    /// [`Error::UnknownLsc`], [`Error::LscOfAnotherDevice`], [`Error::LscWrongState`] (the LSC
    /// is not Issued), [`Error::UnknownDevice`], or a database error.
    fn confirm_lsc_installed(
        &self,
        name: &DeviceName,
        serial: &[u8],
        now: SystemTime,
    ) -> Result<Device, Error>;

    /// The phone deleted its LSC (Delete operation): the device's Installed LSCs become Deleted;
    /// operation None, status Success, last error and authentication string cleared. Issued
    /// (unconfirmed) LSCs are left as they are.
    ///
    /// # Errors
    /// [`Error::UnknownDevice`], or a database error.
    fn record_delete_done(&self, name: &DeviceName, now: SystemTime) -> Result<Device, Error>;

    /// The phone answered a Troubleshoot (Fetch) operation with `certificate` (the type byte,
    /// 1 = LSC, 2 = MIC, and the DER; `None` when it had none): the result is stored; operation
    /// None, status Success, last error and authentication string cleared.
    ///
    /// # Errors
    /// [`Error::UnknownDevice`], or a database error.
    fn record_fetch_done(
        &self,
        name: &DeviceName,
        certificate: Option<(u8, Vec<u8>)>,
        now: SystemTime,
    ) -> Result<Device, Error>;

    /// An attempt ended without success: [`AttemptEnd::Interrupted`] puts the status back to
    /// Pending, [`AttemptEnd::Failed`] makes it Failed; both keep the operation and record the
    /// reason as the last error. Only a device that is InProgress changes (otherwise the device
    /// is returned unchanged and nothing is logged), so a late call never clobbers a Success.
    ///
    /// # Errors
    /// [`Error::UnknownDevice`], or a database error.
    fn end_attempt(
        &self,
        name: &DeviceName,
        end: AttemptEnd,
        now: SystemTime,
    ) -> Result<Device, Error>;

    /// The operation's complete-by date passed: status Expired (the operation is kept, for the
    /// administrator to see). Only a device with an operation to run changes.
    ///
    /// # Errors
    /// [`Error::UnknownDevice`], or a database error.
    fn mark_expired(&self, name: &DeviceName, now: SystemTime) -> Result<Device, Error>;

    /// Where the LSC with `serial` stands, when it was issued to the device `name` (compared
    /// ignoring case); `None` when the store holds no such LSC for that device. Authentication by
    /// existing certificate accepts only an [`LscState::Installed`](crate::LscState::Installed)
    /// one: current, neither superseded, deleted nor revoked.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for an unreadable record, or a database error.
    fn lsc_state(&self, name: &DeviceName, serial: &[u8]) -> Result<Option<LscState>, Error>;

    /// A session that named the device was refused before it authenticated (a failed
    /// certificate authentication, a device already being served): an audit entry with
    /// `reason`, and nothing else changes, so a stranger cannot change a device's status
    /// (issue 12 item 4).
    ///
    /// # Errors
    /// [`Error::UnknownDevice`], or a database error.
    fn record_refused_session(
        &self,
        name: &DeviceName,
        reason: &str,
        now: SystemTime,
    ) -> Result<(), Error>;

    /// The current settings (defaults for any not stored).
    ///
    /// # Errors
    /// [`Error::Corrupt`] for an unreadable stored value, or a database error.
    fn settings(&self) -> Result<Settings, Error>;

    /// The device's open request to an external CA: its newest one that is Pending (the phone
    /// is told to come back) or Issued (the certificate awaits delivery); `None` when it has
    /// none.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for an unreadable record, or a database error.
    fn open_ca_request(&self, name: &DeviceName) -> Result<Option<CaRequest>, Error>;

    /// The device's LSC with `serial` while it is Issued (signed, not yet confirmed by the
    /// phone): what the server delivers when the phone comes back for the certificate an
    /// external CA issued (spec 16.z); `None` for another device's LSC or one in another state.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for an unreadable record, or a database error.
    fn issued_lsc(&self, name: &DeviceName, serial: &[u8]) -> Result<Option<LscRecord>, Error>;

    /// Records the endpoint CSR the device signed, about to go to an external CA: a new request,
    /// Pending. In the same transaction every older open request of the device ends: a Pending
    /// one becomes Failed ("replaced by a new request"), an Issued one Stale; and every Issued
    /// LSC of the device (one such a request became, or one CAPF signed and the phone never
    /// confirmed) becomes [`LscState::Stale`]: the phone made a new key, so it can never install
    /// them (the guide's stale LSC, listed by [`AdminStore::stale_lscs`]).
    ///
    /// # Errors
    /// [`Error::InvalidCaRequest`] (the CAPF mode, an empty CSR or key),
    /// [`Error::UnknownDevice`], or a database error.
    fn record_ca_request(
        &self,
        name: &DeviceName,
        request: &NewCaRequest<'_>,
        now: SystemTime,
    ) -> Result<CaRequest, Error>;

    /// The CA's certificate for request `id` arrived (an online CA's answer, or an offline
    /// import), checked by the caller (capf-trust's `check_external_lsc`): the LSC is recorded
    /// as Issued for the request's device and the request becomes Issued with its serial, in
    /// one transaction. Other LSCs of the device are left as they are (a new request already made
    /// the older ones stale).
    ///
    /// # Errors
    /// [`Error::UnknownCsr`], [`Error::CaRequestWrongState`] for a request that is not Pending,
    /// [`Error::InvalidLsc`], [`Error::DuplicateSerial`], or a database error.
    fn ca_request_issued(
        &self,
        id: i64,
        lsc: &IssuedLsc,
        now: SystemTime,
    ) -> Result<CaRequest, Error>;

    /// Applies many CA certificates at once (an offline CA's import), each as
    /// [`SessionStore::ca_request_issued`] and each judged on its own: the answer has one result
    /// per input, in order, and a refused one ([`Error::is_ca_request_refusal`]) changes nothing
    /// while the others apply. A backend may apply them in one transaction (SQLite does: 10,000
    /// certificates then cost one sync, not 10,000); this default applies them one by one.
    ///
    /// # Errors
    /// A database error (nothing of the batch is then known to be applied by one transaction's
    /// backend; the default may have applied the ones before it).
    fn ca_requests_issued(
        &self,
        issued: &[(i64, IssuedLsc)],
        now: SystemTime,
    ) -> Result<Vec<Result<CaRequest, Error>>, Error> {
        let mut results = Vec::with_capacity(issued.len());
        for (id, lsc) in issued {
            match self.ca_request_issued(*id, lsc, now) {
                Err(e) if !e.is_ca_request_refusal() => return Err(e),
                result => results.push(result),
            }
        }
        Ok(results)
    }

    /// The CA refused request `id`, or it could not be sent: the request becomes Failed with
    /// `reason`.
    ///
    /// # Errors
    /// [`Error::UnknownCsr`], [`Error::CaRequestWrongState`] for a request that is not Pending,
    /// or a database error.
    fn ca_request_failed(&self, id: i64, reason: &str, now: SystemTime)
    -> Result<CaRequest, Error>;

    /// The Online CA settings (issue 14), the password unsealed; `None` until the
    /// administrator sets them. A running server re-reads them like the settings.
    ///
    /// # Errors
    /// [`Error::SealedPassword`] when the password cannot be unsealed with this data
    /// directory's key, [`Error::OnlineCaConfig`] for a row that no longer passes the rules, or
    /// a database error.
    fn online_ca_config(&self) -> Result<Option<OnlineCaConfig>, Error>;

    /// The online CA answered request `id` "pending": it stays Pending, with the CA's own
    /// handle of it when the CA gave one (an AD CS request id), for the poller.
    ///
    /// # Errors
    /// [`Error::UnknownCsr`], [`Error::CaRequestWrongState`] for a request that is not Pending,
    /// or a database error.
    fn ca_request_pending(
        &self,
        id: i64,
        ca_request_id: Option<&str>,
        now: SystemTime,
    ) -> Result<CaRequest, Error>;

    /// The Pending requests that `mode` took, oldest first: what the online CA poller asks
    /// about.
    ///
    /// # Errors
    /// A database error.
    fn pending_ca_requests(&self, mode: CertificateIssuer) -> Result<Vec<CaRequest>, Error>;

    /// The mode whose external CA issued the LSC `name` has installed now, or `None` (no LSC
    /// installed, or CAPF signed it): a phone with an Online CA LSC re-enrolls (EST
    /// `simplereenroll`).
    ///
    /// # Errors
    /// A database error.
    fn installed_lsc_mode(&self, name: &DeviceName) -> Result<Option<CertificateIssuer>, Error>;

    /// The devices whose status is InProgress, ordered by name (ignoring case): at start, the
    /// attempts a stopped server left running, to end as Interrupted with
    /// [`SessionStore::end_attempt`]. Reads only those devices (by status), not every device.
    ///
    /// # Errors
    /// A database error.
    fn devices_in_progress(&self) -> Result<Vec<Device>, Error>;

    /// At start: ends as Interrupted (`reason`) the attempts this server left in progress when
    /// it stopped, and returns those devices. One node alone (SQLite) owns every attempt in
    /// progress, so this default ends them all, one by one. A shared store (PostgreSQL) ends
    /// only this node's and those whose lease ran out (a node that stopped), in one
    /// transaction, never another running node's.
    ///
    /// # Errors
    /// A database error.
    fn recover_attempts(&self, reason: &str, now: SystemTime) -> Result<Vec<Device>, Error> {
        let interrupted = self.devices_in_progress()?;
        let mut ended = Vec::with_capacity(interrupted.len());
        for device in interrupted {
            ended.push(self.end_attempt(
                &device.name,
                AttemptEnd::Interrupted {
                    reason: reason.to_owned(),
                },
                now,
            )?);
        }
        Ok(ended)
    }

    /// While running, every few seconds: renews this node's leases on its attempts in
    /// progress, and ends as Interrupted (`reason`) the attempts of other nodes whose lease
    /// ran out, in one transaction; returns those. One node alone has no leases: the default
    /// does nothing.
    ///
    /// # Errors
    /// A database error.
    fn renew_leases(&self, reason: &str, now: SystemTime) -> Result<Vec<Device>, Error> {
        let _ = (reason, now);
        Ok(Vec::new())
    }

    /// Whether this store batches ([`begin_batch`](Self::begin_batch)): its calls are best
    /// made one after another on one thread, batch by batch, rather than concurrently. The
    /// default: no (a batch then commits each write as it comes).
    fn batches(&self) -> bool {
        false
    }

    /// Opens a batch on the calling thread (issue 19): until
    /// [`end_batch`](Self::end_batch), this thread's writes share transactions instead of each
    /// committing before it returns, so a caller that runs many sessions' calls on one thread
    /// pays one sync for all of them. Until `end_batch` returns `Ok`, nothing the batch wrote
    /// is durable: the caller acts on none of the batch's answers before (other threads of
    /// the process that share the store's connection may read those writes meanwhile, as
    /// they may a group's before its commit). The default does nothing (each write commits
    /// as it comes).
    fn begin_batch(&self) {}

    /// Commits what this thread wrote since [`begin_batch`](Self::begin_batch), synced to
    /// disk when any of those writes is one the store syncs on its own, and ends the batch.
    ///
    /// # Errors
    /// A commit of the batch failed: some of its writes may not be kept, so none of its
    /// answers should be acted on.
    fn end_batch(&self) -> Result<(), Error> {
        Ok(())
    }
}

/// Administration: devices (one at a time and in bulk), schedules, authentication strings,
/// reports and monitoring, LSC records and revocation, settings changes, requests to an
/// external CA, device templates and the audit log.
///
/// The same contract as [`SessionStore`]: synchronous, object-safe (`dyn AdminStore`), time
/// passed in, every write one transaction with its audit entries. A call about a device that is
/// not registered fails with [`Error::UnknownDevice`], except the read-only listings
/// ([`AdminStore::lscs`], [`AdminStore::troubleshoot_results`], [`AdminStore::audit`]), which
/// return nothing.
pub trait AdminStore: Send + Sync {
    /// Registers a device. Its status is Pending when `device.operation` is not
    /// [`Operation::None`], None otherwise.
    ///
    /// # Errors
    /// [`Error::InvalidAuthString`], [`Error::DuplicateDevice`], or a database error.
    fn add_device(&self, device: &NewDevice, now: SystemTime) -> Result<Device, Error>;

    /// Removes a device and its troubleshoot results. Its LSC records stay (for the audit,
    /// and so [`AdminStore::lsc`] still finds a certificate a phone presents later); a device
    /// registered again under the name sees them in [`AdminStore::lscs`].
    ///
    /// # Errors
    /// [`Error::UnknownDevice`], or a database error.
    fn remove_device(&self, name: &DeviceName, now: SystemTime) -> Result<(), Error>;

    /// Every device, ordered by name (ignoring case).
    ///
    /// # Errors
    /// A database error.
    fn list_devices(&self) -> Result<Vec<Device>, Error>;

    /// Changes the descriptive fields that `update` sets. An empty update changes nothing and
    /// logs nothing.
    ///
    /// # Errors
    /// [`Error::UnknownDevice`], or a database error.
    fn update_device(
        &self,
        name: &DeviceName,
        update: &DeviceUpdate,
        now: SystemTime,
    ) -> Result<Device, Error>;

    /// Schedules `operation` (replacing any other): status Pending (None for
    /// [`Operation::None`]), attempts 0, the EC key-generation flag and the last error cleared.
    ///
    /// # Errors
    /// [`Error::UnknownDevice`], or a database error.
    fn schedule(
        &self,
        name: &DeviceName,
        operation: Operation,
        complete_by: Option<SystemTime>,
        now: SystemTime,
    ) -> Result<Device, Error>;

    /// Sets (`Some`) or clears (`None`) the device's one-time authentication string: 4 to 10
    /// ASCII digits, stored only as an HMAC.
    ///
    /// # Errors
    /// [`Error::InvalidAuthString`], [`Error::UnknownDevice`], or a database error.
    fn set_auth_string(
        &self,
        name: &DeviceName,
        auth_string: Option<&str>,
        now: SystemTime,
    ) -> Result<Device, Error>;

    /// The device's troubleshoot results, oldest first.
    ///
    /// # Errors
    /// A database error.
    fn troubleshoot_results(&self, name: &DeviceName) -> Result<Vec<TroubleshootResult>, Error>;

    /// Every LSC recorded for the device name, oldest first (including those of a removed
    /// device of that name).
    ///
    /// # Errors
    /// A database error.
    fn lscs(&self, name: &DeviceName) -> Result<Vec<LscRecord>, Error>;

    /// The LSC with this serial number.
    ///
    /// # Errors
    /// A database error.
    fn lsc(&self, serial: &[u8]) -> Result<Option<LscRecord>, Error>;

    /// Every Stale LSC (issued, never confirmed, then replaced), oldest first.
    ///
    /// # Errors
    /// A database error.
    fn stale_lscs(&self) -> Result<Vec<LscRecord>, Error>;

    /// Marks an LSC Revoked (from any other state).
    ///
    /// # Errors
    /// [`Error::UnknownLsc`], [`Error::LscWrongState`] when it is already revoked, or a
    /// database error.
    fn revoke_lsc(&self, serial: &[u8], now: SystemTime) -> Result<LscRecord, Error>;

    /// Stores `settings`; the running server picks them up on its next read.
    ///
    /// # Errors
    /// A database error.
    fn update_settings(&self, settings: &Settings, now: SystemTime) -> Result<(), Error>;

    /// Stores the Online CA settings (the password sealed under the data directory's key),
    /// audited without the password. Which issuer mode is in use is the setting
    /// `certificate_issuer`; these say which Online CA that mode asks.
    ///
    /// # Errors
    /// A database error, or [`Error::Random`] when no nonce can be drawn.
    fn set_online_ca_config(&self, config: &OnlineCaConfig, now: SystemTime) -> Result<(), Error>;

    /// The newest `limit` audit entries, newest first: all of them, or those about `device`.
    ///
    /// # Errors
    /// A database error.
    fn audit(&self, device: Option<&DeviceName>, limit: usize) -> Result<Vec<AuditEntry>, Error>;

    /// Registers every device of `devices` in one transaction: all of them, or (on the first
    /// error) none. Each device gets its own audit entry.
    ///
    /// # Errors
    /// [`Error::BulkItem`] naming the first device that cannot be registered (its index in
    /// `devices`) and why (as [`AdminStore::add_device`], including a name given twice), or a
    /// database error.
    fn add_devices(&self, devices: &[NewDevice], now: SystemTime) -> Result<usize, Error>;

    /// The devices that match `query`, ordered by name (ignoring case).
    ///
    /// # Errors
    /// A database error.
    fn query_devices(&self, query: &DeviceQuery) -> Result<Vec<Device>, Error>;

    /// One page of the devices that match `query`, ordered by name: at most `limit` from
    /// position `offset`, with the number that match in all. What a person pages through (the
    /// web administration's list), so a page costs a page, not the whole registry.
    ///
    /// # Errors
    /// A database error.
    fn device_page(
        &self,
        query: &DeviceQuery,
        offset: usize,
        limit: usize,
    ) -> Result<DevicePage, Error>;

    /// Applies `change` to every device that matches `query`, in one transaction, with one
    /// audit entry per device changed; with `dry_run`, works out the same changes and rolls
    /// them back. Returns what changed (or would), ordered by name; a device the change leaves
    /// as it was is not listed.
    ///
    /// # Errors
    /// A database error.
    fn update_devices(
        &self,
        query: &DeviceQuery,
        change: &BulkChange,
        dry_run: bool,
        now: SystemTime,
    ) -> Result<Vec<DeviceChange>, Error>;

    /// Sets the authentication string of each (device, string) pair and the device's
    /// authentication mode to By Authentication String, in one transaction.
    ///
    /// # Errors
    /// [`Error::BulkItem`] naming the first pair that cannot be applied
    /// ([`Error::InvalidAuthString`], [`Error::UnknownDevice`]), or a database error.
    fn set_auth_strings(
        &self,
        strings: &[(DeviceName, String)],
        now: SystemTime,
    ) -> Result<(), Error>;

    /// How many devices stand where, with "past complete-by" counted at `now`.
    ///
    /// # Errors
    /// A database error.
    fn status_report(&self, now: SystemTime) -> Result<StatusReport, Error>;

    /// The Issued and Installed LSCs whose notAfter is before `before`, soonest first.
    ///
    /// # Errors
    /// A database error.
    fn lscs_expiring_before(&self, before: SystemTime) -> Result<Vec<LscRecord>, Error>;

    /// The Installed LSCs of the devices that match `query`, ordered by device and issue time.
    ///
    /// # Errors
    /// A database error.
    fn installed_lscs(&self, query: &DeviceQuery) -> Result<Vec<LscRecord>, Error>;

    /// Marks every Issued or Installed LSC whose notAfter has passed at `now` Revoked, in one
    /// transaction; returns them.
    ///
    /// # Errors
    /// A database error.
    fn revoke_expired_lscs(&self, now: SystemTime) -> Result<Vec<LscRecord>, Error>;

    /// Every Revoked LSC, oldest first (what a CRL lists).
    ///
    /// # Errors
    /// A database error.
    fn revoked_lscs(&self) -> Result<Vec<LscRecord>, Error>;

    /// Deletes every Stale LSC record (the guide's `utils capf stale-lsc delete all`), in one
    /// transaction with an audit entry per record; returns how many.
    ///
    /// # Errors
    /// A database error.
    fn delete_stale_lscs(&self, now: SystemTime) -> Result<usize, Error>;

    /// Stores the CAPF keepalive timer, leaving the other settings as they are (so two
    /// administrators changing different settings lose neither change).
    ///
    /// # Errors
    /// A database error.
    fn set_keepalive(&self, keepalive: KeepaliveMinutes, now: SystemTime) -> Result<(), Error>;

    /// The requests to an external CA, oldest first: all of them, or those in `state` (the
    /// guide's `csr list`; Pending ones are what an offline CA exports).
    ///
    /// # Errors
    /// [`Error::Corrupt`] for an unreadable record, or a database error.
    fn ca_requests(&self, state: Option<CaRequestState>) -> Result<Vec<CaRequest>, Error>;

    /// The request to an external CA with this id.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for an unreadable record, or a database error.
    fn ca_request(&self, id: i64) -> Result<Option<CaRequest>, Error>;

    /// Deletes the request `id` (the guide's `csr delete`), audited. Deleting an Issued one
    /// makes its LSC Stale: it will never be delivered.
    ///
    /// # Errors
    /// [`Error::UnknownCsr`], or a database error.
    fn delete_ca_request(&self, id: i64, now: SystemTime) -> Result<CaRequest, Error>;

    /// Deletes every request (the guide's `csr delete all`), in one transaction with an audit
    /// entry per request, each as [`AdminStore::delete_ca_request`]; returns how many.
    ///
    /// # Errors
    /// A database error.
    fn delete_ca_requests(&self, now: SystemTime) -> Result<usize, Error>;

    /// Stores a device template, replacing one of the same name.
    ///
    /// # Errors
    /// [`Error::EmptyTemplateName`], or a database error.
    fn save_template(&self, template: &DeviceTemplate, now: SystemTime) -> Result<(), Error>;

    /// The device template with this name (ignoring case).
    ///
    /// # Errors
    /// A database error.
    fn template(&self, name: &str) -> Result<Option<DeviceTemplate>, Error>;

    /// Every device template, ordered by name.
    ///
    /// # Errors
    /// A database error.
    fn templates(&self) -> Result<Vec<DeviceTemplate>, Error>;

    /// Removes a device template (devices made with it keep their settings).
    ///
    /// # Errors
    /// [`Error::UnknownTemplate`], or a database error.
    fn remove_template(&self, name: &str, now: SystemTime) -> Result<(), Error>;

    /// Imports LSC records as they are (serial, device, certificate, validity, issue time, state
    /// and when it changed), in one transaction: all of them, or (on the first error) none. Each
    /// gets an audit entry ([`action::LSC_IMPORTED`](crate::action::LSC_IMPORTED)). For
    /// certificates signed elsewhere (an offline CA), records moved from another store, and
    /// fixtures; the device need not be registered (a removed device's LSCs stay too). Records
    /// are read from the iterator one at a time, so a million need not be in memory at once.
    /// Returns how many were imported.
    ///
    /// # Errors
    /// [`Error::BulkItem`] naming the first record that cannot be imported (its index) and why
    /// ([`Error::InvalidLsc`], [`Error::DuplicateSerial`], including a serial given twice), or a
    /// database error.
    fn import_lscs(
        &self,
        records: &mut dyn Iterator<Item = LscRecord>,
        now: SystemTime,
    ) -> Result<usize, Error>;

    // Administrator accounts of the web administration (issue 18).

    /// Adds an administrator account, audited.
    ///
    /// # Errors
    /// [`Error::DuplicateAccount`] (names compare ignoring case), [`Error::InvalidAccount`] for
    /// an empty password hash, or a database error.
    fn add_account(&self, account: &NewAccount, now: SystemTime) -> Result<Account, Error>;

    /// The account with this name (ignoring case).
    ///
    /// # Errors
    /// [`Error::Corrupt`] for an unreadable record, or a database error.
    fn account(&self, name: &AccountName) -> Result<Option<Account>, Error>;

    /// Every account, ordered by name (ignoring case).
    ///
    /// # Errors
    /// [`Error::Corrupt`] for an unreadable record, or a database error.
    fn accounts(&self) -> Result<Vec<Account>, Error>;

    /// Removes an account and its API tokens, audited.
    ///
    /// # Errors
    /// [`Error::UnknownAccount`], or a database error.
    fn remove_account(&self, name: &AccountName, now: SystemTime) -> Result<(), Error>;

    /// Counts a failed login of the account (`login_failures` + 1, `last_login_failure` =
    /// `now`), audited.
    ///
    /// # Errors
    /// [`Error::UnknownAccount`], or a database error.
    fn record_login_failure(&self, name: &AccountName, now: SystemTime) -> Result<Account, Error>;

    /// A successful login: `last_login` = `now`, the failure count back to 0, audited.
    ///
    /// # Errors
    /// [`Error::UnknownAccount`], or a database error.
    fn record_login(&self, name: &AccountName, now: SystemTime) -> Result<Account, Error>;

    /// Stores a new API token of the account as its SHA-256 hash (the token itself is shown
    /// once, by the caller, and never stored), audited.
    ///
    /// # Errors
    /// [`Error::UnknownAccount`], [`Error::InvalidAccount`] for a hash that is not
    /// [`TOKEN_HASH_LEN`](crate::TOKEN_HASH_LEN) bytes or is already stored, or a database
    /// error.
    fn add_api_token(
        &self,
        name: &AccountName,
        token_hash: &[u8],
        label: &str,
        now: SystemTime,
    ) -> Result<ApiToken, Error>;

    /// The account whose API token has this hash, with the token; `None` for an unknown hash.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for an unreadable record, or a database error.
    fn api_token_account(&self, token_hash: &[u8]) -> Result<Option<(Account, ApiToken)>, Error>;

    /// The API tokens of the account, oldest first.
    ///
    /// # Errors
    /// A database error.
    fn api_tokens(&self, name: &AccountName) -> Result<Vec<ApiToken>, Error>;

    /// Removes the API token `id`, audited.
    ///
    /// # Errors
    /// [`Error::InvalidAccount`] for an unknown token, or a database error.
    fn remove_api_token(&self, id: i64, now: SystemTime) -> Result<(), Error>;

    /// Appends an audit entry for an administrative change that is not a device's and that the
    /// store does not make itself (a trust-store upload or delete, the CAPF certificate replaced
    /// or regenerated: files of the data directory), with no device. Through a handle from
    /// [`AdminStore::acting_as`] the entry names the account, like every other change. `action`
    /// is one of the [`action`](crate::action) names for such changes
    /// ([`action::TRUST_UPLOADED`](crate::action::TRUST_UPLOADED), ...).
    ///
    /// # Errors
    /// A database error.
    fn record_admin_action(&self, action: &str, detail: &str, now: SystemTime)
    -> Result<(), Error>;

    // Scheduled jobs and the directory sync (issue 17).

    /// Stores a job, Scheduled, audited ([`action::JOB_SCHEDULED`](crate::action::JOB_SCHEDULED)).
    ///
    /// # Errors
    /// [`Error::InvalidJob`] for an empty kind, [`Error::JobAlreadyScheduled`] for a singleton
    /// whose kind has a job Scheduled or Running, or a database error.
    fn add_job(&self, job: &NewJob, now: SystemTime) -> Result<Job, Error>;

    /// The jobs, ordered by number: all of them, or those in `state`.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for an unreadable record, or a database error.
    fn jobs(&self, state: Option<JobState>) -> Result<Vec<Job>, Error>;

    /// The job with this number.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for an unreadable record, or a database error.
    fn job(&self, id: i64) -> Result<Option<Job>, Error>;

    /// Cancels a Scheduled job: it becomes Cancelled and never runs. Audited.
    ///
    /// # Errors
    /// [`Error::UnknownJob`], [`Error::JobWrongState`] for a job that is not Scheduled (it is
    /// running or over), or a database error.
    fn cancel_job(&self, id: i64, now: SystemTime) -> Result<Job, Error>;

    /// Claims one job for `node` to run, leased to it until `now + lease`: the Scheduled job
    /// with the earliest due time at or before `now` (then the lowest number), or a Running job
    /// whose lease ran out (its node died) or was released
    /// ([`AdminStore::release_running_jobs`]: its node restarted). It becomes Running with
    /// `node` and `now` as its start and one more claim ([`Job::claims`]); `None` when none is
    /// due. Audited.
    ///
    /// The claim is one conditional change (`UPDATE ... WHERE state = 'scheduled' AND due <=
    /// now OR state = 'running' AND lease_until < now`) in one transaction, so of any number of
    /// callers, in any processes or on any nodes sharing the store, exactly one gets each
    /// claim; a backend with row locks skips the rows another caller holds rather than waiting
    /// for them. Running a job again is safe because its store work commits with its end
    /// ([`AdminStore::finish_job_with_work`]).
    ///
    /// # Errors
    /// [`Error::Corrupt`] for an unreadable record, or a database error.
    fn claim_due_job(
        &self,
        node: &str,
        lease: Duration,
        now: SystemTime,
    ) -> Result<Option<Job>, Error>;

    /// Extends the leases of the jobs `node` is running to `now + lease`; returns how many. A
    /// node calls it well within the lease while it runs jobs, so that a long job is not
    /// claimed by another node.
    ///
    /// # Errors
    /// A database error.
    fn renew_job_leases(
        &self,
        node: &str,
        lease: Duration,
        now: SystemTime,
    ) -> Result<usize, Error>;

    /// Records the end of the run `claimed` (as [`AdminStore::claim_due_job`] returned it)
    /// with its result: Succeeded, or Failed when [`JobResult::failure`] is set. Audited. For a
    /// job whose work is not a store change, or whose work failed (nothing of it was applied).
    ///
    /// # Errors
    /// [`Error::UnknownJob`], [`Error::JobWrongState`] for a job that is not Running,
    /// [`Error::JobClaimLost`] when another claim holds it now, or a database error.
    fn finish_job(&self, claimed: &Job, result: &JobResult, now: SystemTime) -> Result<Job, Error>;

    /// Does the run's store work and records its end, Succeeded with the devices changed, in
    /// one transaction: a crash before the commit leaves the job Running with nothing applied
    /// (so it is claimed again and run again), and a run whose claim was taken over applies
    /// nothing. When the work fails, nothing is applied and the job stays Running: the caller
    /// records the failure with [`AdminStore::finish_job`].
    ///
    /// # Errors
    /// As [`AdminStore::finish_job`]; the work's errors as [`AdminStore::add_devices`] and
    /// [`AdminStore::update_devices`] return them.
    fn finish_job_with_work(
        &self,
        claimed: &Job,
        work: &JobWork<'_>,
        now: SystemTime,
    ) -> Result<Job, Error>;

    /// The jobs `node` left Running (it restarted while they ran) are released: their lease
    /// ends now, so the next claim (this node's or another's) runs them again, each audited
    /// ([`action::JOB_RELEASED`](crate::action::JOB_RELEASED)); returns them. A server calls it
    /// at start for its own node. Their work was not applied: it commits with their end.
    ///
    /// # Errors
    /// A database error.
    fn release_running_jobs(&self, node: &str, now: SystemTime) -> Result<Vec<Job>, Error>;

    /// Applies one directory sync in one transaction: every entry whose device is not
    /// registered is registered as given (an audit entry each,
    /// [`action::DEVICE_DIRECTORY_ADDED`](crate::action::DEVICE_DIRECTORY_ADDED), naming its
    /// DN); every entry is remembered as a directory device (its DN and when it was seen); the
    /// directory devices of earlier syncs that `entries` no longer lists are reported as
    /// departed and kept (never deleted); the first sync is recorded. With `dry_run`, works the
    /// same out and rolls it back.
    ///
    /// # Errors
    /// [`Error::BulkItem`] naming an entry that cannot be registered (its index: a name given
    /// twice, say), so nothing is applied; or a database error.
    fn sync_directory(
        &self,
        entries: &[DirectoryEntry],
        dry_run: bool,
        now: SystemTime,
    ) -> Result<DirectorySyncOutcome, Error>;

    /// Stores the directory configuration, replacing the one stored; the password sealed under
    /// the data directory's key. Audited without the password.
    ///
    /// # Errors
    /// A database error, or [`Error::Random`] when no nonce can be drawn.
    fn set_directory_config(
        &self,
        config: &DirectoryConfigRecord,
        now: SystemTime,
    ) -> Result<(), Error>;

    /// The stored directory configuration, its password opened; `None` before one is set.
    ///
    /// # Errors
    /// [`Error::SealedPassword`] (sealed under another key), or a database error.
    fn directory_config(&self) -> Result<Option<DirectoryConfigRecord>, Error>;

    /// Where the directory sync stands: whether and when the first sync ran, and the devices
    /// the syncs found.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for an unreadable record, or a database error.
    fn directory_sync_state(&self) -> Result<DirectorySyncState, Error>;

    /// The CAPF certificate the store holds for a cluster of nodes, or `None`: a store for one
    /// node (SQLite) holds none (the certificate lives in the node's data directory, which is
    /// this default), a cluster's (PostgreSQL) none before the first node stored one.
    ///
    /// # Errors
    /// A database error, or a key that cannot be unsealed with this node's key file.
    fn cluster_capf_certificate(&self) -> Result<Option<CapfCertificate>, Error> {
        Ok(None)
    }

    /// On a cluster's store: the cluster's CAPF certificate, or, when there is none yet,
    /// `certificate_pem` and `key_pem` (this node's candidate) become it, under a database
    /// lock so of nodes starting at once exactly one candidate wins. `None` for a store that
    /// holds no CAPF certificate (this default).
    ///
    /// # Errors
    /// As [`AdminStore::cluster_capf_certificate`].
    fn cluster_capf_certificate_or_insert(
        &self,
        certificate_pem: &str,
        key_pem: &Secret,
        now: SystemTime,
    ) -> Result<Option<CapfCertificate>, Error> {
        let _ = (certificate_pem, key_pem, now);
        Ok(None)
    }

    /// On a cluster's store: replaces the cluster's CAPF certificate (audited; its generation
    /// goes up by one, and every node loads it on its next look). `None` for a store that
    /// holds no CAPF certificate (this default: the caller replaces the data directory's
    /// files).
    ///
    /// # Errors
    /// As [`AdminStore::cluster_capf_certificate`].
    fn replace_cluster_capf_certificate(
        &self,
        certificate_pem: &str,
        key_pem: &Secret,
        now: SystemTime,
    ) -> Result<Option<CapfCertificate>, Error> {
        let _ = (certificate_pem, key_pem, now);
        Ok(None)
    }

    /// A handle on the same store whose changes are audited as made by `account`
    /// ([`AuditEntry::actor`](crate::AuditEntry::actor)), in the same transaction as each
    /// change: what the web administration calls on behalf of a logged-in account.
    fn acting_as(&self, account: &AccountName) -> std::sync::Arc<dyn DeviceStore>;
}

/// Both store traits at once: the whole store, as a backend implements it and an administration
/// tool that also plays the server's part (tests, the phone simulator) holds it.
///
/// A convenience only: every type that implements [`SessionStore`] and [`AdminStore`] is a
/// `DeviceStore` (a blanket implementation), and `dyn DeviceStore` coerces to either
/// `dyn SessionStore` or `dyn AdminStore`. Methods come from the two traits, so a caller with a
/// concrete store (not `dyn DeviceStore` or a generic) imports the trait whose methods it calls.
pub trait DeviceStore: SessionStore + AdminStore {}

impl<T: SessionStore + AdminStore + ?Sized> DeviceStore for T {}
