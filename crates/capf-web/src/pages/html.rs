//! The pages' HTML: escaping, the layout (one inline style sheet, nothing fetched from
//! elsewhere), and small form and table helpers. Every value from a user or the store goes
//! through [`esc`].

use std::fmt::Write as _;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Escapes text for an HTML element or a quoted attribute.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a path segment or a query value.
pub(crate) fn url_part(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// What a page says about the last action: nothing, a success, or a refusal.
pub(crate) enum Notice {
    None,
    Done(String),
    Refused(ApiError),
}

impl Notice {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Notice::Refused(e) => e.status,
            _ => StatusCode::OK,
        }
    }

    pub(crate) fn html(&self) -> String {
        match self {
            Notice::None => String::new(),
            Notice::Done(text) => {
                format!(
                    r#"<p class="notice ok" role="status" id="notice">{}</p>"#,
                    esc(text)
                )
            }
            Notice::Refused(e) => format!(
                r#"<p class="notice error" role="alert" id="notice">{}</p>"#,
                esc(&e.message)
            ),
        }
    }
}

impl From<ApiError> for Notice {
    fn from(e: ApiError) -> Notice {
        Notice::Refused(e)
    }
}

/// Who is looking, for the header: the account, its role and the CSRF token of the logout
/// form.
pub(crate) struct Viewer<'a> {
    pub(crate) account: &'a str,
    pub(crate) role: &'a str,
    pub(crate) csrf: &'a str,
    pub(crate) can_write: bool,
}

/// The pages' one style sheet, served as `/assets/capf.css` (no inline style: see
/// [`CONTENT_SECURITY_POLICY`]).
pub(crate) const STYLE: &str = r#"
:root{--fg:#1d2733;--muted:#5b6b7c;--line:#d5dde6;--bg:#f4f6f9;--card:#fff;--accent:#0b5fa5;--ok:#1f7a3a;--bad:#b3261e}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header{background:#14324f;color:#fff;padding:.5rem 1rem;display:flex;flex-wrap:wrap;align-items:center;gap:.5rem 1.25rem}
header .brand{font-weight:600;margin-right:auto}
header nav{display:flex;flex-wrap:wrap;gap:.25rem .9rem}
header a{color:#fff;text-decoration:none}
header a[aria-current]{text-decoration:underline}
header form{margin:0}
header button{background:transparent;color:#fff;border:1px solid #9fb6cc;padding:.2rem .6rem}
main{max-width:1200px;margin:0 auto;padding:1rem}
h1{font-size:1.4rem;margin:.25rem 0 1rem}
h2{font-size:1.1rem;margin:1.5rem 0 .5rem}
section,.card{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:1rem;margin-bottom:1rem}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(16rem,1fr));gap:.6rem 1rem;align-items:end}
label{display:block;font-size:.85rem;color:var(--muted)}
input,select,button{font:inherit;padding:.35rem .5rem;border:1px solid var(--line);border-radius:4px;max-width:100%}
label input,label select{display:block;width:100%;color:var(--fg)}
label.check{display:flex;gap:.4rem;align-items:center;color:var(--fg)}
label.check input{width:auto}
button{background:var(--accent);color:#fff;border-color:var(--accent);cursor:pointer}
button.secondary{background:#fff;color:var(--accent)}
button.danger{background:var(--bad);border-color:var(--bad)}
.actions{display:flex;flex-wrap:wrap;gap:.5rem;margin-top:.75rem}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
th{background:#eef2f6;white-space:nowrap}
td.num,th.num{text-align:right}
.notice{padding:.6rem .8rem;border-radius:4px;margin:0 0 1rem}
.notice.ok{background:#e5f4ea;color:var(--ok);border:1px solid #b8dfc4}
.notice.error{background:#fbe9e8;color:var(--bad);border:1px solid #f0c0bc}
.muted{color:var(--muted)}
.readonly{background:#fff8e1;border:1px solid #f0dca0;padding:.4rem .7rem;border-radius:4px}
dl.fields{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem;margin:0}
dl.fields dt{color:var(--muted)}
dl.fields dd{margin:0;word-break:break-word}
code{word-break:break-all}
progress{width:100%}
svg{max-width:100%;height:auto}
@media (max-width:640px){
 header{padding:.5rem}
 main{padding:.5rem}
 .grid{grid-template-columns:1fr}
 dl.fields{grid-template-columns:1fr}
 dl.fields dd{margin-bottom:.4rem}
 th,td{padding:.3rem}
}
"#;

/// The navigation: (path, label).
const NAV: [(&str, &str); 7] = [
    ("/devices", "Devices"),
    ("/bulk", "Bulk Administration"),
    ("/certificates", "Certificate Management"),
    ("/parameters", "Service Parameters"),
    ("/reports", "Reports"),
    ("/ldap", "LDAP Directory"),
    ("/jobs", "Scheduled Jobs"),
];

/// A whole page: the layout around `body`, with the header for `viewer` (none on the login
/// page) and `current` marked in the navigation.
pub(crate) fn page(
    title: &str,
    current: &str,
    viewer: Option<&Viewer<'_>>,
    notice: &Notice,
    body: &str,
) -> Response {
    let mut html = String::with_capacity(body.len() + 4096);
    let _ = write!(
        html,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{} - capf</title><link rel="stylesheet" href="/assets/capf.css"></head><body><header><span class="brand">capf administration</span>"#,
        esc(title)
    );
    if let Some(v) = viewer {
        html.push_str("<nav>");
        for (path, label) in NAV {
            let mark = if path == current {
                r#" aria-current="page""#
            } else {
                ""
            };
            let _ = write!(html, r#"<a href="{path}"{mark}>{label}</a>"#);
        }
        let _ = write!(
            html,
            r#"</nav><span class="muted-light" id="who">{} ({})</span><form method="post" action="/logout">{}<button type="submit" id="logout">Log out</button></form>"#,
            esc(v.account),
            esc(v.role),
            csrf_field(v.csrf)
        );
    }
    let _ = write!(html, "</header><main><h1>{}</h1>", esc(title));
    if viewer.is_some_and(|v| !v.can_write) {
        html.push_str(
            r#"<p class="readonly">Read-only role: you can look at everything; changes are refused.</p>"#,
        );
    }
    html.push_str(&notice.html());
    html.push_str(body);
    html.push_str("</main></body></html>");
    html_response(notice.status(), html)
}

/// What every page may load: only this server's own files (the style sheet, the upload script,
/// the charts), no inline script or style, no frames, forms posted only here.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// An HTML answer, never cached, with the content security policy that lets nothing be
/// fetched from elsewhere.
pub(crate) fn html_response(status: StatusCode, html: String) -> Response {
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// One of the pages' own files (`/assets/...`): the same for everyone, so open to all and
/// cached for an hour.
pub(crate) fn asset(content_type: &'static str, text: &'static str) -> Response {
    let mut response = text.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The hidden CSRF field every form carries.
pub(crate) fn csrf_field(csrf: &str) -> String {
    format!(r#"<input type="hidden" name="csrf" value="{}">"#, esc(csrf))
}

/// A labelled text input.
pub(crate) fn input(label: &str, name: &str, value: &str, kind: &str) -> String {
    format!(
        r#"<label>{}<input type="{kind}" name="{name}" id="{name}" value="{}"></label>"#,
        esc(label),
        esc(value)
    )
}

/// A labelled select of (value, text) options, `selected` chosen.
pub(crate) fn select(
    label: &str,
    name: &str,
    options: &[(String, String)],
    selected: &str,
) -> String {
    let mut html = format!(r#"<label>{}<select name="{name}" id="{name}">"#, esc(label));
    for (value, text) in options {
        let mark = if value == selected { " selected" } else { "" };
        let _ = write!(
            html,
            r#"<option value="{}"{mark}>{}</option>"#,
            esc(value),
            esc(text)
        );
    }
    html.push_str("</select></label>");
    html
}

/// A labelled checkbox.
pub(crate) fn checkbox(label: &str, name: &str, checked: bool) -> String {
    let mark = if checked { " checked" } else { "" };
    format!(
        r#"<label class="check"><input type="checkbox" name="{name}" id="{name}" value="true"{mark}>{}</label>"#,
        esc(label)
    )
}

/// A table: its id, header cells and rows of already-escaped cells.
pub(crate) fn table(id: &str, head: &[&str], rows: &[Vec<String>]) -> String {
    let mut html = format!(r#"<div class="scroll"><table id="{id}"><thead><tr>"#);
    for h in head {
        let _ = write!(html, "<th>{}</th>", esc(h));
    }
    html.push_str("</tr></thead><tbody>");
    for row in rows {
        html.push_str("<tr>");
        for cell in row {
            let _ = write!(html, "<td>{cell}</td>");
        }
        html.push_str("</tr>");
    }
    if rows.is_empty() {
        let _ = write!(
            html,
            r#"<tr><td colspan="{}" class="muted">None.</td></tr>"#,
            head.len()
        );
    }
    html.push_str("</tbody></table></div>");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(url_part("SEP00 1/?"), "SEP00%201%2F%3F");
    }
}
