//! The guide's Online CA settings as one typed value, validated once: hostname, port, type,
//! username, password, template (Microsoft CA only) and Certificate Enrollment Profile Label
//! (EST only). The store keeps it (the password sealed), capfctl sets it, the online CA
//! clients read it.

use core::fmt;
use std::net::IpAddr;

use crate::Error;
use crate::policy::OnlineCaType;

/// A secret (the Online CA password): its `Debug` and `Display` print `********`, so it cannot
/// reach a log, an error message or a view by accident; [`Secret::expose`] is the one way to
/// read it, for the one place that sends it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// What `Debug` and `Display` print instead of the secret.
    pub const MASK: &'static str = "********";

    /// Wraps `secret`.
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    /// The secret itself, for the request that sends it (HTTP Basic, NTLM).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::MASK)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::MASK)
    }
}

/// The Online CA Hostname: a DNS name or an IP address. The guide: it must equal the name in the
/// CA's HTTPS certificate, which the TLS check enforces against the certificate's subjectAltName
/// (RFC 6125; not the CN).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OnlineCaHost(String);

impl OnlineCaHost {
    /// Validates `host`: an IP address, or a DNS name (labels of 1 to 63 letters, digits and
    /// hyphens, not starting or ending with a hyphen, 253 characters at most).
    ///
    /// # Errors
    /// [`Error::OnlineCaSetting`] naming the rule.
    pub fn new(host: &str) -> Result<Self, Error> {
        let bad = |rule: &'static str| Error::OnlineCaSetting {
            setting: "hostname",
            value: host.to_owned(),
            rule,
        };
        if host.parse::<IpAddr>().is_ok() {
            return Ok(OnlineCaHost(host.to_owned()));
        }
        let name = host.strip_suffix('.').unwrap_or(host);
        if name.is_empty() {
            return Err(bad("a DNS name or an IP address, not empty"));
        }
        if name.len() > 253 {
            return Err(bad("a DNS name of at most 253 characters"));
        }
        let label_ok = |l: &str| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if !name.split('.').all(label_ok) {
            return Err(bad(
                "a DNS name (labels of letters, digits and inner hyphens) or an IP address",
            ));
        }
        Ok(OnlineCaHost(name.to_owned()))
    }

    /// The hostname as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OnlineCaHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The Certificate Enrollment Profile Label (EST only): the optional label path segment of
/// RFC 7030 section 3.2.2, `/.well-known/est/<label>/simpleenroll`. One URI path segment: the
/// unreserved and sub-delimiter characters of RFC 3986 plus `:` and `@`, not `.` or `..`, so it
/// can never change the path it is put into.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EnrollmentLabel(String);

impl EnrollmentLabel {
    /// Validates `label` as one path segment (RFC 3986 `segment-nz`, without percent-encoding).
    ///
    /// # Errors
    /// [`Error::OnlineCaSetting`] naming the rule.
    pub fn new(label: &str) -> Result<Self, Error> {
        let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b);
        if label.is_empty() || label == "." || label == ".." || !label.bytes().all(allowed) {
            return Err(Error::OnlineCaSetting {
                setting: "certificate enrollment profile label",
                value: label.to_owned(),
                rule: "one URI path segment (letters, digits and -._~!$&'()*+,;=:@; not . or ..)",
            });
        }
        Ok(EnrollmentLabel(label.to_owned()))
    }

    /// The label.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EnrollmentLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The guide's Online CA settings, validated once ([`OnlineCaConfig::new`]). `Debug` masks the
/// password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnlineCaConfig {
    /// Online CA Hostname.
    pub host: OnlineCaHost,
    /// Online CA Port (1 to 65535; 443 usually).
    pub port: u16,
    /// Online CA Type.
    pub ca_type: OnlineCaType,
    /// Online CA Username (HTTP Basic, NTLM).
    pub username: String,
    /// Online CA Password.
    pub password: Secret,
    /// Online CA Template: Microsoft CA only.
    pub template: Option<String>,
    /// Certificate Enrollment Profile Label: EST only.
    pub label: Option<EnrollmentLabel>,
}

/// The settings as typed, before validation ([`OnlineCaConfig::new`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OnlineCaParams {
    /// Online CA Hostname.
    pub host: String,
    /// Online CA Port.
    pub port: u32,
    /// Online CA Type (`est`, `microsoft`, or the guide's labels).
    pub ca_type: String,
    /// Online CA Username.
    pub username: String,
    /// Online CA Password.
    pub password: Secret,
    /// Online CA Template (Microsoft CA only).
    pub template: Option<String>,
    /// Certificate Enrollment Profile Label (EST only).
    pub label: Option<String>,
}

impl OnlineCaConfig {
    /// Validates `params`: the host a DNS name or IP address, the port 1 to 65535, a known
    /// type, a username without `:` or control characters (HTTP Basic cannot carry them), a
    /// template only for the Microsoft CA (and required there), a label only for EST (one
    /// path segment).
    ///
    /// # Errors
    /// [`Error::OnlineCaSetting`] naming the setting and the rule; never the password.
    pub fn new(params: &OnlineCaParams) -> Result<Self, Error> {
        let host = OnlineCaHost::new(&params.host)?;
        let port = u16::try_from(params.port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| Error::OnlineCaSetting {
                setting: "port",
                value: params.port.to_string(),
                rule: "1 to 65535",
            })?;
        let ca_type: OnlineCaType = params.ca_type.parse().map_err(|_| Error::OnlineCaSetting {
            setting: "type",
            value: params.ca_type.clone(),
            rule: "`est` (EST Supported CA) or `microsoft` (Microsoft CA)",
        })?;
        if params.username.is_empty()
            || params.username.contains(':')
            || params.username.chars().any(char::is_control)
        {
            return Err(Error::OnlineCaSetting {
                setting: "username",
                value: params.username.clone(),
                rule: "not empty, without `:` or control characters",
            });
        }
        if params.password.is_empty() || params.password.expose().chars().any(char::is_control) {
            return Err(Error::OnlineCaSetting {
                setting: "password",
                value: Secret::MASK.to_owned(),
                rule: "not empty, without control characters",
            });
        }
        let template = match (ca_type, params.template.as_deref()) {
            (OnlineCaType::Microsoft, Some(t))
                if !t.is_empty() && !t.chars().any(|c| c.is_control() || c == '&') =>
            {
                Some(t.to_owned())
            }
            (OnlineCaType::Microsoft, other) => {
                return Err(Error::OnlineCaSetting {
                    setting: "template",
                    value: other.unwrap_or_default().to_owned(),
                    rule: "required for the Microsoft CA: a certificate template name",
                });
            }
            (_, None) => None,
            (_, Some(t)) => {
                return Err(Error::OnlineCaSetting {
                    setting: "template",
                    value: t.to_owned(),
                    rule: "for the Microsoft CA only",
                });
            }
        };
        let label = match (ca_type, params.label.as_deref()) {
            (_, None | Some("")) => None,
            (OnlineCaType::Est, Some(l)) => Some(EnrollmentLabel::new(l)?),
            (_, Some(l)) => {
                return Err(Error::OnlineCaSetting {
                    setting: "certificate enrollment profile label",
                    value: l.to_owned(),
                    rule: "for the EST Supported CA only",
                });
            }
        };
        Ok(OnlineCaConfig {
            host,
            port,
            ca_type,
            username: params.username.clone(),
            password: params.password.clone(),
            template,
            label,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn est() -> OnlineCaParams {
        OnlineCaParams {
            host: "est.example.com".into(),
            port: 8443,
            ca_type: "est".into(),
            username: "estuser".into(),
            password: Secret::new("estpwd"),
            template: None,
            label: Some("cucm-lsc".into()),
        }
    }

    #[test]
    fn a_valid_est_config_parses_and_never_shows_its_password() {
        let config = OnlineCaConfig::new(&est()).unwrap();
        assert_eq!(config.ca_type, OnlineCaType::Est);
        assert_eq!(config.label.as_ref().unwrap().as_str(), "cucm-lsc");
        let shown = format!("{config:?} {}", config.password);
        assert!(!shown.contains("estpwd"), "{shown}");
        assert!(shown.contains("********"), "{shown}");
        assert_eq!(config.password.expose(), "estpwd");
    }

    #[test]
    fn hosts_are_dns_names_or_ip_addresses() {
        for ok in [
            "127.0.0.1",
            "::1",
            "ca",
            "ca-1.example.com",
            "ca.example.com.",
        ] {
            assert!(OnlineCaHost::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-ca", "ca_1.example", "ca..example", "ca/x", "a b"] {
            assert!(OnlineCaHost::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_label_is_one_path_segment() {
        for ok in ["cucm-lsc", "a.b", "x~y", "p@1"] {
            assert!(EnrollmentLabel::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a?b", "a#b", "a%2f", "a b"] {
            assert!(EnrollmentLabel::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn port_type_template_and_label_are_checked_per_type() {
        let with = |f: &dyn Fn(&mut OnlineCaParams)| {
            let mut p = est();
            f(&mut p);
            OnlineCaConfig::new(&p)
        };
        assert!(with(&|p| p.port = 0).is_err());
        assert!(with(&|p| p.port = 65_536).is_err());
        assert!(with(&|p| p.ca_type = "scep".into()).is_err());
        assert!(with(&|p| p.template = Some("User".into())).is_err());
        assert!(with(&|p| p.username = "a:b".into()).is_err());
        let err = with(&|p| p.password = Secret::new("x\ny")).unwrap_err();
        assert!(!err.to_string().contains("x\ny"), "{err}");
        // Microsoft: a template is required, a label refused.
        assert!(
            with(&|p| {
                p.ca_type = "Microsoft CA".into();
                p.label = None;
            })
            .is_err()
        );
        let ms = with(&|p| {
            p.ca_type = "microsoft".into();
            p.label = None;
            p.template = Some("CiscoRA".into());
        })
        .unwrap();
        assert_eq!(ms.template.as_deref(), Some("CiscoRA"));
        assert!(
            with(&|p| {
                p.ca_type = "microsoft".into();
                p.template = Some("CiscoRA".into());
            })
            .is_err()
        );
    }
}
