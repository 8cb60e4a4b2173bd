//! The server's side of IPv6: the Enable IPv6 parameters.

use core::fmt;
use core::net::IpAddr;

use crate::{AddressFamily, CannotConnect, ConnectionInput, ConnectionPlan, Error, Outcome};

/// The Enable IPv6 enterprise parameter as CAPF reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EnableIpv6 {
    /// "True": CAPF serves IPv4 and IPv6 peers.
    True,
    /// "False": CAPF ignores/rejects connections from phones that use IPv6 addresses (the guide).
    False,
}

impl From<bool> for EnableIpv6 {
    fn from(value: bool) -> Self {
        if value { Self::True } else { Self::False }
    }
}

/// Whether CAPF serves a connecting peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerAdmission {
    /// The peer is served.
    Admitted,
    /// The peer uses IPv6 and the Enable IPv6 enterprise parameter is False.
    RefusedIpv6Disabled,
}

/// Whether CAPF serves a peer connecting from `peer`, per the Enable IPv6 enterprise parameter.
///
/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a dual-stack listener reports for an IPv4
/// peer) is an IPv4 peer: the phone used IPv4.
pub fn admit_peer(enable_ipv6: EnableIpv6, peer: IpAddr) -> PeerAdmission {
    let uses_ipv6 = match peer {
        IpAddr::V4(_) => false,
        IpAddr::V6(v6) => v6.to_ipv4_mapped().is_none(),
    };
    match (enable_ipv6, uses_ipv6) {
        (EnableIpv6::False, true) => PeerAdmission::RefusedIpv6Disabled,
        (EnableIpv6::True, _) | (EnableIpv6::False, false) => PeerAdmission::Admitted,
    }
}

/// The device's signaling protocol; the guide has an IPv6 rule for SCCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignalingProtocol {
    /// SIP.
    Sip,
    /// SCCP (Skinny).
    Sccp,
}

/// Why a device's configuration cannot get a certificate from CAPF.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProvisioningProblem {
    /// The guide's Table 2 says the phone cannot connect.
    CannotConnect(CannotConnect),
    /// The phone can only use IPv6 and the Enable IPv6 enterprise parameter is False.
    Ipv6RefusedByCapf,
    /// An SCCP phone that can only use IPv6 needs the Enable IPv6 service parameter set to True.
    SccpIpv6NeedsServiceParameter,
}

impl fmt::Display for ProvisioningProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CannotConnect(why) => write!(f, "the phone cannot connect to CAPF: {why}"),
            Self::Ipv6RefusedByCapf => f.write_str(
                "the phone can only use IPv6 and the Enable IPv6 enterprise parameter is False, \
                 so CAPF refuses it",
            ),
            Self::SccpIpv6NeedsServiceParameter => f.write_str(
                "an SCCP phone on IPv6 needs the Enable IPv6 service parameter set to True",
            ),
        }
    }
}

/// Why a device's first attempt will fail although a fallback works.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProvisioningWarning {
    /// The IPv6 attempt is refused (Enable IPv6 enterprise parameter False); IPv4 is used instead.
    Ipv6RefusedFallsBackToIpv4,
    /// SCCP over IPv6 needs the Enable IPv6 service parameter; IPv4 is used instead.
    SccpIpv6FallsBackToIpv4,
}

impl fmt::Display for ProvisioningWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ipv6RefusedFallsBackToIpv4 => {
                "the IPv6 attempt is refused (Enable IPv6 enterprise parameter False); the phone \
                 falls back to IPv4"
            }
            Self::SccpIpv6FallsBackToIpv4 => {
                "SCCP over IPv6 needs the Enable IPv6 service parameter; the phone falls back to IPv4"
            }
        })
    }
}

/// The answer of [`check_provisioning`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Provisioning {
    /// The device can reach CAPF with this family, after the plan's other attempts.
    Works {
        /// The plan from the guide's Table 2.
        plan: ConnectionPlan,
        /// The family that will succeed.
        family: AddressFamily,
        /// Set when the plan's first family cannot work.
        warning: Option<ProvisioningWarning>,
    },
    /// The device cannot get a certificate with this configuration.
    CannotWork(ProvisioningProblem),
}

/// Says whether a device's configuration can work: the guide's Table 2, the Enable IPv6
/// enterprise parameter (CAPF refuses IPv6 peers when False) and, for SCCP phones on IPv6, the
/// Enable IPv6 service parameter.
pub fn check_provisioning(
    input: ConnectionInput,
    protocol: SignalingProtocol,
    enterprise_enable_ipv6: EnableIpv6,
    service_enable_ipv6: EnableIpv6,
) -> Result<Provisioning, Error> {
    let plan = match crate::connection_plan(input)? {
        Outcome::Connect(plan) => plan,
        Outcome::CannotConnect(why) => {
            return Ok(Provisioning::CannotWork(
                ProvisioningProblem::CannotConnect(why),
            ));
        }
    };
    // Why IPv6 cannot work, if it cannot: CAPF's refusal comes first because it applies to all.
    let ipv6_blocked = match (enterprise_enable_ipv6, protocol, service_enable_ipv6) {
        (EnableIpv6::False, _, _) => Some(ProvisioningProblem::Ipv6RefusedByCapf),
        (EnableIpv6::True, SignalingProtocol::Sccp, EnableIpv6::False) => {
            Some(ProvisioningProblem::SccpIpv6NeedsServiceParameter)
        }
        (EnableIpv6::True, SignalingProtocol::Sip, _)
        | (EnableIpv6::True, SignalingProtocol::Sccp, EnableIpv6::True) => None,
    };
    let mut first_problem = None;
    for family in plan.families() {
        match (family, ipv6_blocked) {
            (AddressFamily::Ipv6, Some(problem)) => {
                first_problem.get_or_insert(problem);
            }
            (AddressFamily::Ipv4, _) | (AddressFamily::Ipv6, None) => {
                let warning = first_problem.map(|problem| match problem {
                    ProvisioningProblem::SccpIpv6NeedsServiceParameter => {
                        ProvisioningWarning::SccpIpv6FallsBackToIpv4
                    }
                    _ => ProvisioningWarning::Ipv6RefusedFallsBackToIpv4,
                });
                return Ok(Provisioning::Works {
                    plan,
                    family,
                    warning,
                });
            }
        }
    }
    // Every family of the plan is blocked; a plan always has a first family, so this is set.
    Ok(Provisioning::CannotWork(
        first_problem.unwrap_or(ProvisioningProblem::Ipv6RefusedByCapf),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Addresses, PhoneIpMode};
    use core::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn refuses_ipv6_peer_when_enable_ipv6_is_false() {
        let peer = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert_eq!(
            admit_peer(EnableIpv6::False, peer),
            PeerAdmission::RefusedIpv6Disabled
        );
        assert_eq!(admit_peer(EnableIpv6::True, peer), PeerAdmission::Admitted);
    }

    #[test]
    fn admits_ipv4_peer_either_way() {
        let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(admit_peer(EnableIpv6::False, peer), PeerAdmission::Admitted);
        assert_eq!(admit_peer(EnableIpv6::True, peer), PeerAdmission::Admitted);
    }

    #[test]
    fn treats_ipv4_mapped_peer_as_ipv4() {
        let peer = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
        assert_eq!(admit_peer(EnableIpv6::False, peer), PeerAdmission::Admitted);
    }

    fn input(mode: PhoneIpMode, phone: Addresses, capf: Addresses) -> ConnectionInput {
        ConnectionInput { mode, phone, capf }
    }

    #[test]
    fn sccp_ipv6_only_phone_needs_service_parameter() {
        let got = check_provisioning(
            input(PhoneIpMode::Ipv6Stack, Addresses::Ipv6, Addresses::Both),
            SignalingProtocol::Sccp,
            EnableIpv6::True,
            EnableIpv6::False,
        );
        assert_eq!(
            got,
            Ok(Provisioning::CannotWork(
                ProvisioningProblem::SccpIpv6NeedsServiceParameter
            ))
        );
    }

    #[test]
    fn sip_ipv6_only_phone_ignores_service_parameter() {
        let got = check_provisioning(
            input(PhoneIpMode::Ipv6Stack, Addresses::Ipv6, Addresses::Both),
            SignalingProtocol::Sip,
            EnableIpv6::True,
            EnableIpv6::False,
        );
        assert!(matches!(
            got,
            Ok(Provisioning::Works {
                family: AddressFamily::Ipv6,
                warning: None,
                ..
            })
        ));
    }

    #[test]
    fn ipv6_only_phone_fails_when_enterprise_parameter_is_false() {
        let got = check_provisioning(
            input(PhoneIpMode::TwoStack, Addresses::Ipv6, Addresses::Ipv6),
            SignalingProtocol::Sip,
            EnableIpv6::False,
            EnableIpv6::True,
        );
        assert_eq!(
            got,
            Ok(Provisioning::CannotWork(
                ProvisioningProblem::Ipv6RefusedByCapf
            ))
        );
    }

    #[test]
    fn two_stack_sccp_phone_falls_back_to_ipv4_with_warning() {
        let got = check_provisioning(
            input(PhoneIpMode::TwoStack, Addresses::Both, Addresses::Both),
            SignalingProtocol::Sccp,
            EnableIpv6::True,
            EnableIpv6::False,
        );
        assert!(matches!(
            got,
            Ok(Provisioning::Works {
                family: AddressFamily::Ipv4,
                warning: Some(ProvisioningWarning::SccpIpv6FallsBackToIpv4),
                ..
            })
        ));
    }

    #[test]
    fn reports_table_cannot_connect() {
        let got = check_provisioning(
            input(PhoneIpMode::Ipv4Stack, Addresses::Ipv4, Addresses::Ipv6),
            SignalingProtocol::Sip,
            EnableIpv6::True,
            EnableIpv6::True,
        );
        assert!(matches!(
            got,
            Ok(Provisioning::CannotWork(
                ProvisioningProblem::CannotConnect(_)
            ))
        ));
    }

    #[test]
    fn contradictory_input_is_an_error() {
        let got = check_provisioning(
            input(PhoneIpMode::Ipv6Stack, Addresses::Both, Addresses::Both),
            SignalingProtocol::Sip,
            EnableIpv6::True,
            EnableIpv6::True,
        );
        assert!(got.is_err());
    }

    #[test]
    fn every_combination_gives_a_consistent_answer() {
        for mode in PhoneIpMode::ALL {
            for phone in Addresses::ALL {
                for capf in Addresses::ALL {
                    for protocol in [SignalingProtocol::Sip, SignalingProtocol::Sccp] {
                        for ent in [EnableIpv6::True, EnableIpv6::False] {
                            for svc in [EnableIpv6::True, EnableIpv6::False] {
                                let i = input(mode, phone, capf);
                                match check_provisioning(i, protocol, ent, svc) {
                                    Err(_) => assert!(crate::connection_plan(i).is_err()),
                                    Ok(Provisioning::Works {
                                        plan,
                                        family,
                                        warning,
                                    }) => {
                                        assert!(plan.uses(family));
                                        let ipv6_ok = ent == EnableIpv6::True
                                            && (protocol == SignalingProtocol::Sip
                                                || svc == EnableIpv6::True);
                                        assert!(family == AddressFamily::Ipv4 || ipv6_ok);
                                        assert_eq!(warning.is_some(), plan.first != family);
                                    }
                                    Ok(Provisioning::CannotWork(_)) => {}
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
