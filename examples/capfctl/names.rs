//! Value parsers for the enum flags, built from the one name table of each enum
//! (capf-store's `AuthMode::as_str` and `StatusKind::label`, capf-admin's `OperationKind` and
//! `key_order_name`), with the help text shown for each value.

use capf_admin::{KEY_ORDERS, OperationKind, key_order_name, parse_key_order};
use capf_lsc::{Curve, KeyOrder, RsaBits};
use capf_store::{AuthMode, StatusKind};
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};

pub(crate) fn auth_mode() -> impl TypedValueParser<Value = AuthMode> {
    PossibleValuesParser::new(
        AuthMode::ALL.map(|m| PossibleValue::new(m.as_str()).help(m.to_string())),
    )
    .try_map(|s| s.parse::<AuthMode>())
}

fn status_help(kind: StatusKind) -> &'static str {
    match kind {
        StatusKind::None => "No operation, no result",
        StatusKind::Pending => "Scheduled, waiting for the phone",
        StatusKind::InProgress => "A session has begun",
        StatusKind::Success => "Succeeded",
        StatusKind::Failed => "The last attempt failed",
        StatusKind::Expired => "The complete-by date passed",
        _ => "",
    }
}

pub(crate) fn status() -> impl TypedValueParser<Value = StatusKind> {
    PossibleValuesParser::new(
        StatusKind::ALL.map(|k| PossibleValue::new(k.label()).help(status_help(k))),
    )
    .try_map(|s| s.parse::<StatusKind>())
}

fn operation_help(kind: OperationKind) -> &'static str {
    match kind {
        OperationKind::None => "No Pending Operation",
        OperationKind::Install => "Install/Upgrade an LSC",
        OperationKind::Delete => "Delete the phone's LSC",
        OperationKind::Troubleshoot => "Troubleshoot: fetch the phone's LSC or MIC",
        _ => "",
    }
}

pub(crate) fn operation() -> impl TypedValueParser<Value = OperationKind> {
    PossibleValuesParser::new(
        OperationKind::ALL.map(|k| PossibleValue::new(k.as_str()).help(operation_help(k))),
    )
    .try_map(|s| s.parse::<OperationKind>())
}

fn key_order_help(order: KeyOrder) -> &'static str {
    match order {
        KeyOrder::RsaOnly => "RSA Only",
        KeyOrder::EcOnly => "EC Only",
        KeyOrder::EcPreferredRsaBackup => "EC Preferred, RSA Backup",
    }
}

pub(crate) fn key_order() -> impl TypedValueParser<Value = KeyOrder> {
    PossibleValuesParser::new(
        KEY_ORDERS.map(|o| PossibleValue::new(key_order_name(o)).help(key_order_help(o))),
    )
    .try_map(|s| parse_key_order(&s).ok_or("unknown key order"))
}

pub(crate) fn rsa(s: &str) -> Result<RsaBits, String> {
    capf_admin::parse_rsa_bits(s).map_err(|e| e.to_string())
}

pub(crate) fn curve(s: &str) -> Result<Curve, String> {
    capf_admin::parse_curve(s).map_err(|e| e.to_string())
}
