//! `capfctl lsc revoke SERIAL`: revoke an LSC, so it no longer authenticates a phone and the
//! next `capfctl crl` lists it (the rule is capf-admin's `revoke_lsc`).

use std::time::SystemTime;

use anyhow::Result;
use capf_admin::{LscView, rfc3339};

use crate::device::DataArgs;
use crate::print_json;

/// `lsc revoke`'s arguments.
#[derive(clap::Args)]
pub(crate) struct RevokeArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The LSC's serial number, hex (colons allowed).
    serial: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: RevokeArgs) -> Result<()> {
    let store = args.data.open_existing()?;
    let lsc = capf_admin::revoke_lsc(&*store, &args.serial, SystemTime::now())?;
    if args.json {
        return print_json(&LscView::from(&lsc));
    }
    outln!(
        "revoked LSC {} of {} at {}",
        lsc.serial_hex(),
        lsc.device,
        rfc3339(lsc.state_changed_at)
    );
    Ok(())
}
