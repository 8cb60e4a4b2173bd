//! The guide's "Table 2. How IPv6 or IPv4 Phone Connects to CAPF", as const data.

use crate::AddressFamily::{Ipv4 as V4, Ipv6 as V6};
use crate::{
    Addresses, CannotConnect, ConnectionInput, ConnectionPlan, Error, Outcome, PhoneIpMode,
};

/// One row of the guide's Table 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Table2Row {
    /// The row's number in the guide (1-15, top to bottom).
    pub number: u8,
    /// "IP Mode of Phone".
    pub mode: PhoneIpMode,
    /// "IP Addresses on Phone".
    pub phone: Addresses,
    /// "CAPF IP Address".
    pub capf: Addresses,
    /// Our reading of "How Phone Connects to CAPF".
    pub outcome: Outcome,
    /// The guide's words for the outcome, verbatim (typos included).
    pub guide_text: &'static str,
}

impl Table2Row {
    /// The row's inputs.
    pub const fn input(&self) -> ConnectionInput {
        ConnectionInput {
            mode: self.mode,
            phone: self.phone,
            capf: self.capf,
        }
    }
}

const fn row(
    number: u8,
    mode: PhoneIpMode,
    phone: Addresses,
    capf: Addresses,
    outcome: Outcome,
    guide_text: &'static str,
) -> Table2Row {
    Table2Row {
        number,
        mode,
        phone,
        capf,
        outcome,
        guide_text,
    }
}

const fn connect(first: crate::AddressFamily, fallback: Option<crate::AddressFamily>) -> Outcome {
    Outcome::Connect(ConnectionPlan { first, fallback })
}

const fn cannot(phone: Addresses, capf: Addresses) -> Outcome {
    Outcome::CannotConnect(CannotConnect::NoCommonFamily { phone, capf })
}

use Addresses::{Both, Ipv4, Ipv6};
use PhoneIpMode::{Ipv4Stack, Ipv6Stack, TwoStack};

const USES_V4: &str = "Phone uses an IPv4 address to connect to CAPF.";
const USES_V6: &str = "Phone uses an IPv6 address to connect to CAPF.";
const CANNOT: &str = "Phone cannot connect to CAPF.";

/// All 15 rows of the guide's Table 2, in the guide's order.
///
/// Row 3 is reproduced literally: a two-stack phone with only an IPv6 address tries IPv4 when
/// IPv6 fails. Its IPv4 stack is up, so an IPv4 address (DHCPv4) may have arrived by then; row 2,
/// the mirror case, has no IPv6 fallback in the guide and gets none here.
pub const TABLE_2: [Table2Row; 15] = [
    row(
        1,
        TwoStack,
        Both,
        Both,
        connect(V6, Some(V4)),
        "Phone uses an IPv6 address to connect to CAPF; if the phone cannot connect via an IPv6 address, it attempts to connect by using an IPv4 address.",
    ),
    row(2, TwoStack, Ipv4, Both, connect(V4, None), USES_V4),
    row(
        3,
        TwoStack,
        Ipv6,
        Both,
        connect(V6, Some(V4)),
        "Phone uses an IPv6 address to connect to CAPF. If the attempt fails, the phone uses an IPv4 address to connect to CAPF.",
    ),
    row(4, TwoStack, Ipv4, Ipv4, connect(V4, None), USES_V4),
    row(
        5,
        TwoStack,
        Both,
        Ipv6,
        connect(V6, None),
        "Phone uses and IPv6 address to connect to CAPF.",
    ),
    row(6, TwoStack, Both, Ipv4, connect(V4, None), USES_V4),
    row(7, TwoStack, Ipv4, Ipv6, cannot(Ipv4, Ipv6), CANNOT),
    row(8, TwoStack, Ipv6, Ipv4, cannot(Ipv6, Ipv4), CANNOT),
    row(9, TwoStack, Ipv6, Ipv6, connect(V6, None), USES_V6),
    row(10, Ipv4Stack, Ipv4, Both, connect(V4, None), USES_V4),
    row(11, Ipv6Stack, Ipv6, Both, connect(V6, None), USES_V6),
    row(12, Ipv4Stack, Ipv4, Ipv4, connect(V4, None), USES_V4),
    row(13, Ipv4Stack, Ipv4, Ipv6, cannot(Ipv4, Ipv6), CANNOT),
    row(14, Ipv6Stack, Ipv6, Ipv6, connect(V6, None), USES_V6),
    row(15, Ipv6Stack, Ipv6, Ipv4, cannot(Ipv6, Ipv4), CANNOT),
];

/// The row of Table 2 that answers `input`, or the reason the input contradicts itself.
///
/// The match is exhaustive without a wildcard, so every combination is decided here, on purpose.
pub fn table_2_row(input: ConnectionInput) -> Result<&'static Table2Row, Error> {
    let ConnectionInput { mode, phone, capf } = input;
    let index = match (mode, phone, capf) {
        (TwoStack, Both, Both) => 0,
        (TwoStack, Ipv4, Both) => 1,
        (TwoStack, Ipv6, Both) => 2,
        (TwoStack, Ipv4, Ipv4) => 3,
        (TwoStack, Both, Ipv6) => 4,
        (TwoStack, Both, Ipv4) => 5,
        (TwoStack, Ipv4, Ipv6) => 6,
        (TwoStack, Ipv6, Ipv4) => 7,
        (TwoStack, Ipv6, Ipv6) => 8,
        (Ipv4Stack, Ipv4, Both) => 9,
        (Ipv6Stack, Ipv6, Both) => 10,
        (Ipv4Stack, Ipv4, Ipv4) => 11,
        (Ipv4Stack, Ipv4, Ipv6) => 12,
        (Ipv6Stack, Ipv6, Ipv6) => 13,
        (Ipv6Stack, Ipv6, Ipv4) => 14,
        // A single-stack phone cannot hold an address of the other family.
        (Ipv4Stack, Ipv6 | Both, _) | (Ipv6Stack, Ipv4 | Both, _) => {
            return Err(Error::ContradictoryPhoneAddresses {
                mode,
                addresses: phone,
            });
        }
    };
    Ok(&TABLE_2[index])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_inputs() -> impl Iterator<Item = ConnectionInput> {
        PhoneIpMode::ALL.into_iter().flat_map(|mode| {
            Addresses::ALL.into_iter().flat_map(move |phone| {
                Addresses::ALL
                    .into_iter()
                    .map(move |capf| ConnectionInput { mode, phone, capf })
            })
        })
    }

    #[test]
    fn rows_are_numbered_in_order() {
        for (i, row) in TABLE_2.iter().enumerate() {
            assert_eq!(usize::from(row.number), i + 1);
        }
    }

    #[test]
    fn match_returns_the_row_with_the_same_inputs() {
        for input in all_inputs() {
            if let Ok(row) = table_2_row(input) {
                assert_eq!(row.input(), input);
            }
        }
    }

    #[test]
    fn every_row_is_reachable_exactly_once() {
        let mut hits = [0u8; 15];
        for input in all_inputs() {
            if let Ok(row) = table_2_row(input) {
                hits[usize::from(row.number - 1)] += 1;
            }
        }
        assert_eq!(hits, [1; 15]);
    }

    #[test]
    fn every_combination_is_a_row_or_a_contradiction() {
        let mut rows = 0;
        let mut contradictions = 0;
        for input in all_inputs() {
            match table_2_row(input) {
                Ok(_) => rows += 1,
                Err(Error::ContradictoryPhoneAddresses { mode, addresses }) => {
                    assert_eq!((mode, addresses), (input.mode, input.phone));
                    assert!(matches!(
                        (mode, addresses),
                        (Ipv4Stack, Ipv6 | Both) | (Ipv6Stack, Ipv4 | Both)
                    ));
                    contradictions += 1;
                }
            }
        }
        assert_eq!((rows, contradictions), (15, 12));
    }

    #[test]
    fn rejects_ipv4_stack_phone_with_ipv6_address() {
        let input = ConnectionInput {
            mode: Ipv4Stack,
            phone: Ipv6,
            capf: Both,
        };
        assert_eq!(
            table_2_row(input),
            Err(Error::ContradictoryPhoneAddresses {
                mode: Ipv4Stack,
                addresses: Ipv6
            })
        );
    }

    #[test]
    fn outcome_follows_from_common_families() {
        // Cross-check the literal table against first principles: a plan only ever uses families
        // both sides have, except row 3's literal IPv4 fallback.
        for row in &TABLE_2 {
            match row.outcome {
                Outcome::Connect(plan) => {
                    assert!(row.capf.has(plan.first) && row.phone.has(plan.first));
                    if let Some(next) = plan.fallback {
                        assert!(row.capf.has(next));
                        assert!(row.phone.has(next) || row.number == 3);
                    }
                }
                Outcome::CannotConnect(CannotConnect::NoCommonFamily { phone, capf }) => {
                    assert_eq!((phone, capf), (row.phone, row.capf));
                    let common = |f| phone.has(f) && capf.has(f);
                    assert!(!common(V4) && !common(V6));
                }
            }
        }
    }

    #[test]
    fn row_3_falls_back_to_ipv4_literally() {
        let input = ConnectionInput {
            mode: TwoStack,
            phone: Ipv6,
            capf: Both,
        };
        assert_eq!(
            crate::connection_plan(input),
            Ok(Outcome::Connect(ConnectionPlan::then(V6, V4)))
        );
    }

    #[test]
    fn guide_texts_match_outcomes() {
        for row in &TABLE_2 {
            let text = row.guide_text;
            match row.outcome {
                Outcome::CannotConnect(_) => assert_eq!(text, CANNOT),
                Outcome::Connect(plan) => {
                    let first = match plan.first {
                        V4 => "IPv4",
                        V6 => "IPv6",
                    };
                    assert!(
                        text.starts_with("Phone uses an") || text.starts_with("Phone uses and")
                    );
                    assert!(text[..30].contains(first), "row {}", row.number);
                    assert_eq!(
                        plan.fallback.is_some(),
                        text.contains("IPv4") && text.contains("IPv6")
                    );
                }
            }
        }
    }
}
