//! Checks that the README's copy of the guide's Table 2 agrees with the code, and that the
//! guide itself (when the seed copy is present) agrees with both.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use capf_ipmode::{
    AddressFamily, Addresses, ConnectionInput, ConnectionPlan, Outcome, PhoneIpMode, TABLE_2,
    connection_plan,
};

fn mode(s: &str) -> PhoneIpMode {
    match s {
        "Two stack" => PhoneIpMode::TwoStack,
        "IPv4 stack" => PhoneIpMode::Ipv4Stack,
        "IPv6 stack" => PhoneIpMode::Ipv6Stack,
        other => panic!("unknown IP mode {other:?}"),
    }
}

fn addresses(s: &str) -> Addresses {
    match s {
        "IPv4" => Addresses::Ipv4,
        "IPv6" => Addresses::Ipv6,
        "IPv4 and IPv6" | "IPv4 and IPv6 available" | "IPv4, IPv6" => Addresses::Both,
        other => panic!("unknown addresses {other:?}"),
    }
}

fn family(s: &str) -> AddressFamily {
    match s {
        "IPv4" => AddressFamily::Ipv4,
        "IPv6" => AddressFamily::Ipv6,
        other => panic!("unknown family {other:?}"),
    }
}

fn plan(s: &str) -> Option<ConnectionPlan> {
    if s == "cannot connect" {
        return None;
    }
    Some(match s.split_once(", then ") {
        Some((a, b)) => ConnectionPlan::then(family(a), family(b)),
        None => ConnectionPlan::only(family(s)),
    })
}

/// The rows of the README's table: `| # | mode | phone | capf | plan | guide text |`.
fn readme_rows() -> Vec<Vec<String>> {
    let readme = include_str!("../README.md");
    readme
        .lines()
        .filter(|l| l.starts_with("| ") && l.chars().nth(2).is_some_and(|c| c.is_ascii_digit()))
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_owned())
                .collect()
        })
        .collect()
}

#[test]
fn readme_table_agrees_with_code() {
    let rows = readme_rows();
    assert_eq!(rows.len(), TABLE_2.len(), "README must show all 15 rows");
    for (cells, row) in rows.iter().zip(TABLE_2.iter()) {
        assert_eq!(cells.len(), 6, "row {cells:?}");
        let number: u8 = cells[0].parse().unwrap();
        assert_eq!(number, row.number);
        let input = ConnectionInput {
            mode: mode(&cells[1]),
            phone: addresses(&cells[2]),
            capf: addresses(&cells[3]),
        };
        assert_eq!(input, row.input(), "row {number} inputs");
        let outcome = connection_plan(input).unwrap();
        match (plan(&cells[4]), outcome) {
            (Some(p), Outcome::Connect(q)) => assert_eq!(p, q, "row {number} plan"),
            (None, Outcome::CannotConnect(_)) => {}
            (p, o) => panic!("row {number}: README says {p:?}, code says {o:?}"),
        }
        assert_eq!(cells[4], outcome.to_string(), "row {number} plan text");
        assert_eq!(cells[5], row.guide_text, "row {number} guide text");
    }
}

/// The seed copy of the operator guide lives outside the repository; when it is there, its
/// Table 2 must match ours word for word.
#[test]
fn guide_table_agrees_with_code_when_available() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/seed/configure-capf.txt"
    );
    let Ok(guide) = std::fs::read_to_string(path) else {
        return;
    };
    let start = guide
        .find("Table 2. How IPv6 or IPv4 Phone Connects to CAPF")
        .unwrap();
    let cells: Vec<&str> = guide[start..]
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .skip(5)
        .collect();
    let rows: Vec<&[&str]> = cells.chunks(4).take(15).collect();
    assert_eq!(rows.len(), 15);
    for (cells, row) in rows.iter().zip(TABLE_2.iter()) {
        assert_eq!(mode(cells[0]), row.mode, "row {}", row.number);
        assert_eq!(addresses(cells[1]), row.phone, "row {}", row.number);
        assert_eq!(addresses(cells[2]), row.capf, "row {}", row.number);
        assert_eq!(cells[3], row.guide_text, "row {}", row.number);
    }
}

#[test]
fn every_input_combination_is_answered() {
    for m in PhoneIpMode::ALL {
        for p in Addresses::ALL {
            for c in Addresses::ALL {
                let input = ConnectionInput {
                    mode: m,
                    phone: p,
                    capf: c,
                };
                let contradictory = matches!(
                    (m, p),
                    (PhoneIpMode::Ipv4Stack, Addresses::Ipv6 | Addresses::Both)
                        | (PhoneIpMode::Ipv6Stack, Addresses::Ipv4 | Addresses::Both)
                );
                assert_eq!(connection_plan(input).is_err(), contradictory, "{input:?}");
            }
        }
    }
}
