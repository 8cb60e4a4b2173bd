//! Requests to an external CA (the Online CA and Offline CA modes): the endpoint CSR a phone
//! signed, and where it stands until the certificate reaches the phone.

use core::fmt;
use std::time::SystemTime;

use capf_lsc::{CertificateIssuer, DeviceName};

use crate::Error;

/// Where a request to an external CA stands.
///
/// Stored as text in column `ca_requests.state`: `pending`, `issued`, `delivered`, `stale`,
/// `failed`. One name table: [`CaRequestState::as_str`], parsed by `FromStr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CaRequestState {
    /// Sent to (or waiting for) the CA; no certificate yet.
    Pending,
    /// The CA's certificate arrived and was recorded as an Issued LSC; awaiting delivery to the
    /// phone on its next session.
    Issued,
    /// The phone stored the certificate (STORE_CERT_RESPONSE).
    Delivered,
    /// The certificate arrived, but the phone made a new key and a new CSR before it was
    /// delivered: its LSC is a stale LSC (the guide's sense).
    Stale,
    /// The CA refused, the request was replaced by a newer one before any certificate arrived,
    /// or it failed otherwise ([`CaRequest::failure`] says why).
    Failed,
}

impl CaRequestState {
    /// Every state, in lifecycle order.
    pub const ALL: [CaRequestState; 5] = [
        CaRequestState::Pending,
        CaRequestState::Issued,
        CaRequestState::Delivered,
        CaRequestState::Stale,
        CaRequestState::Failed,
    ];

    /// The state's name, as stored and typed: `pending`, `issued`, `delivered`, `stale`,
    /// `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            CaRequestState::Pending => "pending",
            CaRequestState::Issued => "issued",
            CaRequestState::Delivered => "delivered",
            CaRequestState::Stale => "stale",
            CaRequestState::Failed => "failed",
        }
    }

    /// Whether the request is still open: Pending or Issued (the phone has more to do).
    pub fn is_open(self) -> bool {
        matches!(self, CaRequestState::Pending | CaRequestState::Issued)
    }
}

impl fmt::Display for CaRequestState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::str::FromStr for CaRequestState {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        CaRequestState::ALL
            .into_iter()
            .find(|s| s.as_str() == name)
            .ok_or_else(|| Error::UnknownName {
                what: "CA request state",
                name: name.to_owned(),
            })
    }
}

/// A request to an external CA, as the store holds it.
#[derive(Clone, PartialEq, Eq)]
pub struct CaRequest {
    /// The store's request id (the Offline CA's "request id": in exported file names).
    pub id: i64,
    /// The device.
    pub device: DeviceName,
    /// The mode that took the request: [`CertificateIssuer::OnlineCa`] or
    /// [`CertificateIssuer::OfflineCa`]. A later change of the setting does not change it.
    pub mode: CertificateIssuer,
    /// The endpoint CSR: PKCS#10 DER, signed by the phone.
    pub csr: Vec<u8>,
    /// The phone's SubjectPublicKeyInfo, DER: what an issued certificate must certify and what
    /// the phone must still hold for delivery.
    pub public_key: Vec<u8>,
    /// The CA's own handle of the request (an AD CS request id); `None` for the Offline CA.
    pub ca_request_id: Option<String>,
    /// Where it stands.
    pub state: CaRequestState,
    /// The serial of the LSC it became, once Issued (also when Delivered or Stale).
    pub lsc_serial: Option<Vec<u8>>,
    /// Why it failed, when Failed.
    pub failure: Option<String>,
    /// When the phone's CSR was recorded.
    pub received_at: SystemTime,
    /// When the state last changed.
    pub state_changed_at: SystemTime,
}

impl fmt::Debug for CaRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaRequest")
            .field("id", &self.id)
            .field("device", &self.device)
            .field("mode", &self.mode)
            .field("csr_len", &self.csr.len())
            .field("public_key_len", &self.public_key.len())
            .field("ca_request_id", &self.ca_request_id)
            .field("state", &self.state)
            .field("lsc_serial", &self.lsc_serial.as_deref().map(capf_lsc::hex))
            .field("failure", &self.failure)
            .field("received_at", &self.received_at)
            .field("state_changed_at", &self.state_changed_at)
            .finish()
    }
}

/// A request about to go to an external CA: what
/// [`SessionStore::record_ca_request`](crate::SessionStore::record_ca_request) records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewCaRequest<'a> {
    /// The mode taking it: Online CA or Offline CA (CAPF signs itself and records none).
    pub mode: CertificateIssuer,
    /// The endpoint CSR, PKCS#10 DER, verified by the caller.
    pub csr: &'a [u8],
    /// The phone's SubjectPublicKeyInfo, DER.
    pub public_key: &'a [u8],
    /// The CA's handle of the request, when it gave one.
    pub ca_request_id: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_request_state_names_round_trip() {
        for s in CaRequestState::ALL {
            assert_eq!(s.as_str().parse::<CaRequestState>().ok(), Some(s));
        }
        assert!("Pending".parse::<CaRequestState>().is_err());
        assert!(CaRequestState::Issued.is_open());
        assert!(!CaRequestState::Stale.is_open());
    }
}
