//! Turning a plan and resolved addresses into the order a client tries them in.

use core::net::SocketAddr;

use crate::{AddressFamily, ConnectionPlan};

/// Orders `resolved` (for example the output of `ToSocketAddrs` for CAPF's name) for a client
/// following `plan`: every address of the plan's first family, in resolution order, then every
/// address of the fallback family. Addresses of a family the plan does not use are left out.
///
/// ```
/// use capf_ipmode::{AddressFamily, ConnectionPlan, order_socket_addrs};
/// let resolved: [std::net::SocketAddr; 2] = ["192.0.2.1:3804".parse()?, "[2001:db8::1]:3804".parse()?];
/// let plan = ConnectionPlan::then(AddressFamily::Ipv6, AddressFamily::Ipv4);
/// let order: Vec<_> = order_socket_addrs(plan, &resolved).collect();
/// assert_eq!(order, [resolved[1], resolved[0]]);
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
pub fn order_socket_addrs(plan: ConnectionPlan, resolved: &[SocketAddr]) -> OrderedSocketAddrs<'_> {
    OrderedSocketAddrs {
        plan,
        resolved,
        pass: 0,
        index: 0,
    }
}

/// The iterator returned by [`order_socket_addrs`]; it allocates nothing.
#[derive(Clone, Debug)]
pub struct OrderedSocketAddrs<'a> {
    plan: ConnectionPlan,
    resolved: &'a [SocketAddr],
    /// 0: the first family, 1: the fallback family, 2: done.
    pass: u8,
    index: usize,
}

impl OrderedSocketAddrs<'_> {
    fn family(&self) -> Option<AddressFamily> {
        match self.pass {
            0 => Some(self.plan.first),
            1 => self.plan.fallback.filter(|f| *f != self.plan.first),
            _ => None,
        }
    }
}

impl Iterator for OrderedSocketAddrs<'_> {
    type Item = SocketAddr;

    fn next(&mut self) -> Option<SocketAddr> {
        loop {
            let Some(family) = self.family() else {
                if self.pass >= 2 {
                    return None;
                }
                self.pass += 1;
                self.index = 0;
                continue;
            };
            match self.resolved.get(self.index) {
                Some(addr) => {
                    self.index += 1;
                    if AddressFamily::of(addr) == family {
                        return Some(*addr);
                    }
                }
                None => {
                    self.pass += 1;
                    self.index = 0;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn addrs() -> Vec<SocketAddr> {
        [
            "192.0.2.1:3804",
            "[2001:db8::1]:3804",
            "192.0.2.2:3804",
            "[2001:db8::2]:3804",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect()
    }

    #[test]
    fn puts_ipv6_first_then_ipv4_in_resolution_order() {
        let a = addrs();
        let plan = ConnectionPlan::then(AddressFamily::Ipv6, AddressFamily::Ipv4);
        let got: Vec<_> = order_socket_addrs(plan, &a).collect();
        assert_eq!(got, [a[1], a[3], a[0], a[2]]);
    }

    #[test]
    fn drops_family_the_plan_does_not_use() {
        let a = addrs();
        let got: Vec<_> =
            order_socket_addrs(ConnectionPlan::only(AddressFamily::Ipv4), &a).collect();
        assert_eq!(got, [a[0], a[2]]);
    }

    #[test]
    fn yields_nothing_for_no_matching_address() {
        let a: Vec<SocketAddr> = ["192.0.2.1:3804".parse().unwrap()].into();
        let got: Vec<_> =
            order_socket_addrs(ConnectionPlan::only(AddressFamily::Ipv6), &a).collect();
        assert!(got.is_empty());
        assert_eq!(
            order_socket_addrs(ConnectionPlan::only(AddressFamily::Ipv6), &[]).count(),
            0
        );
    }

    #[test]
    fn never_repeats_an_address_for_a_degenerate_plan() {
        let a = addrs();
        let plan = ConnectionPlan::then(AddressFamily::Ipv4, AddressFamily::Ipv4);
        assert_eq!(order_socket_addrs(plan, &a).count(), 2);
    }
}
