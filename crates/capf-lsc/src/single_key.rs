//! The key policy that asks for exactly one key: what a load test or a demo schedules, so the
//! phones generate the key the run is about.

use crate::{Curve, KeyOrder, KeyPolicy, KeySpec, RsaBits};

impl KeyPolicy {
    /// Asks for `spec` and nothing else: RSA only at its size, or EC only on its curve (the
    /// other setting stays at UCM's default).
    pub fn only(spec: KeySpec) -> Self {
        match spec {
            KeySpec::Rsa(bits) => KeyPolicy {
                order: KeyOrder::RsaOnly,
                rsa: bits,
                curve: Curve::P256,
            },
            KeySpec::Ec(curve) => KeyPolicy {
                order: KeyOrder::EcOnly,
                rsa: RsaBits::B2048,
                curve,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks_for_exactly_the_spec() {
        for spec in [KeySpec::Rsa(RsaBits::B3072), KeySpec::Ec(Curve::P384)] {
            let policy = KeyPolicy::only(spec);
            for (ec_failed, ec_ok) in [(false, true), (true, true)] {
                let asked = policy.key_to_request(ec_failed, ec_ok);
                assert!(asked.is_none() || asked == Some(spec), "{spec}: {asked:?}");
            }
            assert_eq!(policy.key_to_request(false, true), Some(spec));
        }
    }
}
