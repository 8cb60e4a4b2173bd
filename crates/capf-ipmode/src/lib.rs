#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), no_std)]

mod server;
mod socket;
mod table;

pub use server::{
    EnableIpv6, PeerAdmission, Provisioning, ProvisioningProblem, ProvisioningWarning,
    SignalingProtocol, admit_peer, check_provisioning,
};
pub use socket::{OrderedSocketAddrs, order_socket_addrs};
pub use table::{TABLE_2, Table2Row, table_2_row};

use core::fmt;

/// The IP mode configured on the phone (the guide's "IP Mode of Phone" column).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PhoneIpMode {
    /// Only the IPv4 stack is enabled ("IPv4 stack").
    Ipv4Stack,
    /// Only the IPv6 stack is enabled ("IPv6 stack").
    Ipv6Stack,
    /// Both stacks are enabled ("Two stack").
    TwoStack,
}

impl PhoneIpMode {
    /// Every IP mode, in the guide's order of first appearance.
    pub const ALL: [Self; 3] = [Self::TwoStack, Self::Ipv4Stack, Self::Ipv6Stack];

    /// The guide's wording of this mode.
    pub const fn guide_name(self) -> &'static str {
        match self {
            Self::Ipv4Stack => "IPv4 stack",
            Self::Ipv6Stack => "IPv6 stack",
            Self::TwoStack => "Two stack",
        }
    }
}

impl fmt::Display for PhoneIpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.guide_name())
    }
}

/// Which address families a party (the phone, or CAPF) has addresses in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Addresses {
    /// IPv4 addresses only.
    Ipv4,
    /// IPv6 addresses only.
    Ipv6,
    /// Both IPv4 and IPv6 addresses.
    Both,
}

impl Addresses {
    /// Every value.
    pub const ALL: [Self; 3] = [Self::Ipv4, Self::Ipv6, Self::Both];

    /// Whether this set includes `family`.
    pub const fn has(self, family: AddressFamily) -> bool {
        matches!(
            (self, family),
            (Self::Both, _) | (Self::Ipv4, AddressFamily::Ipv4) | (Self::Ipv6, AddressFamily::Ipv6)
        )
    }
}

impl fmt::Display for Addresses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ipv4 => "IPv4",
            Self::Ipv6 => "IPv6",
            Self::Both => "IPv4 and IPv6",
        })
    }
}

/// The addresses the phone has (the guide's "IP Addresses on Phone" column).
pub type PhoneAddresses = Addresses;
/// The addresses CAPF listens on (the guide's "CAPF IP Address" column).
pub type CapfAddresses = Addresses;

/// An IP address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddressFamily {
    /// IPv4.
    Ipv4,
    /// IPv6.
    Ipv6,
}

impl AddressFamily {
    /// The family of a socket address. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is IPv6 here:
    /// connecting to it needs the IPv6 stack.
    pub const fn of(addr: &core::net::SocketAddr) -> Self {
        match addr {
            core::net::SocketAddr::V4(_) => Self::Ipv4,
            core::net::SocketAddr::V6(_) => Self::Ipv6,
        }
    }
}

impl fmt::Display for AddressFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ipv4 => "IPv4",
            Self::Ipv6 => "IPv6",
        })
    }
}

/// The inputs of the guide's Table 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionInput {
    /// The phone's IP mode.
    pub mode: PhoneIpMode,
    /// The addresses the phone has.
    pub phone: PhoneAddresses,
    /// The addresses CAPF has.
    pub capf: CapfAddresses,
}

/// How the phone connects to CAPF: the family it tries first and the one it tries if that fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionPlan {
    /// The family the phone tries first.
    pub first: AddressFamily,
    /// The family it tries if the first attempt fails, if any.
    pub fallback: Option<AddressFamily>,
}

impl ConnectionPlan {
    /// A plan with one family and no fallback.
    pub const fn only(family: AddressFamily) -> Self {
        Self {
            first: family,
            fallback: None,
        }
    }

    /// A plan trying `first`, then `fallback`.
    pub const fn then(first: AddressFamily, fallback: AddressFamily) -> Self {
        Self {
            first,
            fallback: Some(fallback),
        }
    }

    /// The families in the order they are tried.
    pub fn families(&self) -> impl Iterator<Item = AddressFamily> + use<> {
        core::iter::once(self.first).chain(self.fallback)
    }

    /// Whether the plan ever tries `family`.
    pub fn uses(&self, family: AddressFamily) -> bool {
        self.first == family || self.fallback == Some(family)
    }
}

impl fmt::Display for ConnectionPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.fallback {
            None => write!(f, "{}", self.first),
            Some(next) => write!(f, "{}, then {}", self.first, next),
        }
    }
}

/// Why a phone cannot connect to CAPF.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CannotConnect {
    /// The phone and CAPF have no address family in common.
    NoCommonFamily {
        /// The addresses the phone has.
        phone: PhoneAddresses,
        /// The addresses CAPF has.
        capf: CapfAddresses,
    },
}

impl fmt::Display for CannotConnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoCommonFamily { phone, capf } => write!(
                f,
                "the phone has only {phone} addresses and CAPF has only {capf} addresses"
            ),
        }
    }
}

/// The answer of the guide's Table 2 for one row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The phone connects following the plan.
    Connect(ConnectionPlan),
    /// "Phone cannot connect to CAPF."
    CannotConnect(CannotConnect),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(plan) => plan.fmt(f),
            Self::CannotConnect(_) => f.write_str("cannot connect"),
        }
    }
}

/// The crate's error: an input that contradicts itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A single-stack phone was said to have an address of the stack it does not run, such as an
    /// IPv4-stack phone with an IPv6 address. The guide's table has no row for it and we do not guess.
    #[error("a phone in {mode} mode cannot have {addresses} addresses")]
    ContradictoryPhoneAddresses {
        /// The phone's IP mode.
        mode: PhoneIpMode,
        /// The addresses it was said to have.
        addresses: PhoneAddresses,
    },
}

/// How a phone with these settings connects to CAPF, per the guide's Table 2.
///
/// ```
/// use capf_ipmode::*;
/// let input = ConnectionInput { mode: PhoneIpMode::TwoStack, phone: Addresses::Both, capf: Addresses::Both };
/// assert_eq!(
///     connection_plan(input),
///     Ok(Outcome::Connect(ConnectionPlan::then(AddressFamily::Ipv6, AddressFamily::Ipv4)))
/// );
/// ```
pub fn connection_plan(input: ConnectionInput) -> Result<Outcome, Error> {
    table_2_row(input).map(|row| row.outcome)
}
