//! Reading AD CS Web Enrollment's HTML (the certsrv recipe): every outcome of `certfnsh.asp`
//! is status 200 with a page, told apart by its English text, so a CA server in another
//! language cannot be read (the guide: the Online CA works only with an English CA server).

/// What `certfnsh.asp` (or `certnew.cer` for a request not issued) said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// Issued: fetch it with `certnew.cer?ReqID=`.
    Issued {
        /// The request id.
        req_id: String,
    },
    /// Waiting for a CA administrator ("Certificate Pending", "Taken Under Submission").
    Pending {
        /// The request id, when the page gives it.
        req_id: Option<String>,
    },
    /// Denied, or an error: the CA's disposition message.
    Denied {
        /// The message, one line.
        message: String,
    },
}

/// A page that is none of the English AD CS pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NotEnglish {
    /// The language the page or its Content-Language header declares, if any.
    pub(crate) language: Option<String>,
}

/// The text AD CS shows for a request waiting for approval (certnew.cer's disposition).
const UNDER_SUBMISSION: &str = "Taken Under Submission";

fn find_ci(haystack: &str, needle: &str) -> Option<usize> {
    haystack
        .as_bytes()
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// The digits at the start of `text`, if any.
fn leading_digits(text: &str) -> Option<&str> {
    let end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    (end > 0).then(|| &text[..end])
}

/// The few entities IIS writes in messages, decoded; line breaks and runs of spaces made one
/// space, so the message is one line for a failure reason.
fn one_line(text: &str) -> String {
    let decoded = text
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&");
    decoded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The language a page declares: its Content-Language header, or `lang="xx"` in the page.
fn declared_language(html: &str, content_language: Option<&str>) -> Option<String> {
    if let Some(language) = content_language.map(str::trim).filter(|l| !l.is_empty()) {
        return Some(language.to_owned());
    }
    let at = find_ci(html, "lang=")? + "lang=".len();
    let value = html[at..].trim_start_matches(['"', '\'']);
    let end = value.find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))?;
    (end > 0).then(|| value[..end].to_owned())
}

fn is_english(language: Option<&str>) -> bool {
    language.is_none_or(|l| l.to_ascii_lowercase().starts_with("en"))
}

/// Reads the reply of `POST certfnsh.asp`.
pub(crate) fn certfnsh(
    html: &str,
    content_language: Option<&str>,
) -> Result<Disposition, NotEnglish> {
    let language = declared_language(html, content_language);
    // The link is the same in every language, but the guide rules other languages out, and
    // their pending and denied pages cannot be read: refuse them whatever the page says.
    if !is_english(language.as_deref()) {
        return Err(NotEnglish { language });
    }
    if let Some(at) = find_ci(html, "certnew.cer?ReqID=") {
        let rest = &html[at + "certnew.cer?ReqID=".len()..];
        if let Some(req_id) = leading_digits(rest)
            && rest[req_id.len()..].starts_with('&')
        {
            return Ok(Disposition::Issued {
                req_id: req_id.to_owned(),
            });
        }
    }
    if html.contains("Certificate Pending") {
        let req_id = html
            .find("Your Request Id is ")
            .and_then(|at| leading_digits(&html[at + "Your Request Id is ".len()..]))
            .map(str::to_owned);
        return Ok(Disposition::Pending { req_id });
    }
    const DENIED: &str = "The disposition message is \"";
    if let Some(at) = html.find(DENIED) {
        let rest = &html[at + DENIED.len()..];
        let end = rest.find('"').unwrap_or(rest.len());
        return Ok(Disposition::Denied {
            message: one_line(&rest[..end]),
        });
    }
    Err(NotEnglish { language })
}

/// Reads the HTML `certnew.cer` serves instead of a certificate:
/// `Disposition message:` ... two tabs, then the message to the end of the line.
pub(crate) fn certnew_error(
    html: &str,
    content_language: Option<&str>,
) -> Result<Disposition, NotEnglish> {
    let language = declared_language(html, content_language);
    if !is_english(language.as_deref()) {
        return Err(NotEnglish { language });
    }
    const LABEL: &str = "Disposition message:";
    let message = html.find(LABEL).and_then(|at| {
        let rest = &html[at + LABEL.len()..];
        let tabs = rest.find("\t\t")?;
        // The recipe's pattern wants at least one character between the label and the tabs.
        if tabs == 0 {
            return None;
        }
        let rest = &rest[tabs + 2..];
        let end = rest.find(['\r', '\n']).unwrap_or(rest.len());
        Some(one_line(&rest[..end]))
    });
    match message {
        Some(message) if message.contains(UNDER_SUBMISSION) => {
            Ok(Disposition::Pending { req_id: None })
        }
        Some(message) => Ok(Disposition::Denied { message }),
        None => Err(NotEnglish { language }),
    }
}

/// `var nRenewals=N;` of `certcarc.asp`: the CA certificate's renewal count.
pub(crate) fn renewals(html: &str) -> Option<u32> {
    const VAR: &str = "var nRenewals=";
    let at = html.find(VAR)? + VAR.len();
    leading_digits(&html[at..])?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_page_gives_its_request_id() {
        let page = r#"<P ID=locPageTitle> <B> Certificate Issued </B>
<A Href="certnew.cer?ReqID=1234&amp;Enc=bin">Download certificate</A>"#;
        assert_eq!(
            certfnsh(page, None),
            Ok(Disposition::Issued {
                req_id: "1234".into()
            })
        );
        // Without the entity, as the recipe's pattern reads it too.
        let page = r#"<a href="certnew.cer?ReqID=7&Enc=b64">"#;
        assert_eq!(
            certfnsh(page, Some("en-US")),
            Ok(Disposition::Issued { req_id: "7".into() })
        );
    }

    #[test]
    fn a_pending_page_gives_its_request_id() {
        let page = "<P ID=locPageTitle> <B> Certificate Pending </B>\n<P> Your certificate request has been received. \
                    However, you must wait for an administrator to issue the certificate you requested.\n<P> Your Request Id is 1017.\n";
        assert_eq!(
            certfnsh(page, None),
            Ok(Disposition::Pending {
                req_id: Some("1017".into())
            })
        );
    }

    #[test]
    fn a_denied_page_gives_the_disposition_message_on_one_line() {
        let page = "<B> Certificate Request Denied </B>\n<P>Your certificate request was denied.\n\
                    <P ID=locDisposition>The disposition message is \"Denied by Policy Module  0x80094800, The request was for a certificate template that is not supported by the Active Directory Certificate Services policy: Nope.\r\n\".\n";
        assert_eq!(
            certfnsh(page, None),
            Ok(Disposition::Denied {
                message: "Denied by Policy Module 0x80094800, The request was for a certificate template that is not supported by the Active Directory Certificate Services policy: Nope.".into()
            })
        );
        let page = "The disposition message is \"Error Parsing Request  ASN1 bad tag value met. 0x8009310b (ASN: 267 CRYPT_E_ASN1_BADTAG)\".";
        assert_eq!(
            certfnsh(page, None),
            Ok(Disposition::Denied {
                message: "Error Parsing Request ASN1 bad tag value met. 0x8009310b (ASN: 267 CRYPT_E_ASN1_BADTAG)".into()
            })
        );
    }

    #[test]
    fn a_non_english_page_is_refused_with_its_language() {
        let german = "<HTML lang=\"de\"><P> <B> Zertifikatanforderung verweigert </B>\n<P>Die Dispositionsmeldung ist \"Verweigert\".";
        assert_eq!(
            certfnsh(german, None),
            Err(NotEnglish {
                language: Some("de".into())
            })
        );
        // Declared by the header only; even an issued link is not read.
        let issued = r#"<A Href="certnew.cer?ReqID=12&amp;Enc=bin">Zertifikat herunterladen</A>"#;
        assert_eq!(
            certfnsh(issued, Some("de-DE")),
            Err(NotEnglish {
                language: Some("de-DE".into())
            })
        );
        // No language declared and none of the English pages.
        assert_eq!(
            certfnsh(
                "<P> Ausstehendes Zertifikat <P> Ihre Anforderungs-ID ist 5.",
                None
            ),
            Err(NotEnglish { language: None })
        );
        assert_eq!(
            certnew_error(
                "<html lang='fr'>Message de disposition :\t\tEn attente",
                None
            ),
            Err(NotEnglish {
                language: Some("fr".into())
            })
        );
    }

    #[test]
    fn certnew_errors_tell_pending_from_denied() {
        let pending = "<TR><TD>Disposition message:</TD>\t\tTaken Under Submission\r\n</Table>";
        assert_eq!(
            certnew_error(pending, None),
            Ok(Disposition::Pending { req_id: None })
        );
        let denied = "<TD>Disposition message:</TD>\t\tDenied by CAPFLAB\\admin\r\n";
        assert_eq!(
            certnew_error(denied, None),
            Ok(Disposition::Denied {
                message: "Denied by CAPFLAB\\admin".into()
            })
        );
        assert_eq!(
            certnew_error("<html>nothing</html>", None),
            Err(NotEnglish { language: None })
        );
    }

    #[test]
    fn renewals_are_read_from_certcarc() {
        assert_eq!(
            renewals("<Script>\n    var nRenewals=3;\n</Script>"),
            Some(3)
        );
        assert_eq!(renewals("var nRenewals=;"), None);
        assert_eq!(renewals("nothing"), None);
    }
}
