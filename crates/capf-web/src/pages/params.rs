//! Service parameters: the run-time settings (Certificate Issuer to Endpoint, Duration Of
//! Certificate Validity, keepalive, limits) and the Online CA parameters.

use std::collections::BTreeMap;

use axum::Extension;
use axum::response::Response;
use capf_lsc::{CertificateIssuer, OnlineCaType};
use capf_store::Settings;

use super::html::{self, Notice, esc};
use super::{FormData, PageCaller};
use crate::admin::{self, OnlineCaBody};
use crate::api::{self, blocking};

/// `GET /parameters`.
pub(super) async fn page(Extension(pc): Extension<PageCaller>) -> Response {
    render(&pc, None, Notice::None).await
}

async fn render(pc: &PageCaller, typed: Option<&FormData>, notice: Notice) -> Response {
    let store = std::sync::Arc::clone(&pc.caller.store);
    let loaded = blocking(move || {
        Ok((
            capf_admin::settings(&*store)?,
            capf_admin::online_ca(&*store)?,
        ))
    })
    .await;
    let (settings, online) = match loaded {
        Ok(l) => l,
        Err(e) => {
            return html::page(
                "Service Parameters",
                "/parameters",
                Some(&pc.viewer()),
                &e.into(),
                "",
            );
        }
    };
    let csrf = html::csrf_field(&pc.csrf);
    let mut fields = String::new();
    for s in &settings {
        let value = typed
            .map(|f| f.get(s.key).to_owned())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| s.value.clone());
        let label = match s.key {
            Settings::CERTIFICATE_ISSUER_KEY => "Certificate Issuer to Endpoint".to_owned(),
            Settings::LSC_VALIDITY_DAYS_KEY => "Duration Of Certificate Validity (days)".to_owned(),
            key => key.replace('_', " "),
        };
        if s.key == Settings::CERTIFICATE_ISSUER_KEY {
            let modes: Vec<(String, String)> = CertificateIssuer::ALL
                .iter()
                .map(|m| (m.as_str().to_owned(), m.label().to_owned()))
                .collect();
            fields.push_str(&html::select(&label, s.key, &modes, &value));
        } else {
            fields.push_str(&html::input(&label, s.key, &value, "text"));
        }
    }
    let types: Vec<(String, String)> = OnlineCaType::ALL
        .iter()
        .map(|t| (t.as_str().to_owned(), t.label().to_owned()))
        .collect();
    let (host, port, ca_type, username, template, label) = match &online {
        Some(o) => (
            o.hostname.clone(),
            o.port.to_string(),
            o.ca_type.to_owned(),
            o.username.clone(),
            o.template.clone().unwrap_or_default(),
            o.label.clone().unwrap_or_default(),
        ),
        None => (
            String::new(),
            "443".to_owned(),
            "est".to_owned(),
            String::new(),
            String::new(),
            String::new(),
        ),
    };
    let body = format!(
        r#"<section><h2>CAPF service parameters</h2>
<form method="post" action="/parameters" id="settings" class="grid">{csrf}{fields}
<div class="actions"><button type="submit" id="save-settings">Save</button></div></form>
<p class="muted">Each value is checked (its range or its names) before any is stored; the server reads them within seconds.</p></section>
<section><h2>Online CA Parameters</h2><p class="muted" id="online-ca-state">{state}</p>
<form method="post" action="/parameters/online-ca" id="online-ca" class="grid">{csrf}
{host}{port}{ca_type}{username}{password}{template}{label}
<div class="actions"><button type="submit" id="save-online-ca">Save</button></div></form>
<p class="muted">The password is stored sealed and never shown again; give it on every save.</p></section>"#,
        state = esc(&match &online {
            Some(o) => format!("{} at {}:{}", o.type_label, o.hostname, o.port),
            None => "No Online CA is configured.".to_owned(),
        }),
        host = html::input("Online CA Hostname", "host", &host, "text"),
        port = html::input("Online CA Port", "port", &port, "number"),
        ca_type = html::select("Online CA Type", "type", &types, &ca_type),
        username = html::input("Online CA Username", "username", &username, "text"),
        password = html::input("Online CA Password", "password", "", "password"),
        template = html::input(
            "Online CA Template (Microsoft CA)",
            "template",
            &template,
            "text"
        ),
        label = html::input(
            "Certificate Enrollment Profile Label (EST)",
            "label",
            &label,
            "text"
        ),
    );
    html::page(
        "Service Parameters",
        "/parameters",
        Some(&pc.viewer()),
        &notice,
        &body,
    )
}

/// `POST /parameters`: every setting of the form, through the API's settings update.
pub(super) async fn save(
    Extension(pc): Extension<PageCaller>,
    axum::Form(fields): axum::Form<Vec<(String, String)>>,
) -> Response {
    let form = FormData::from_pairs(fields);
    let result = async {
        pc.may_change(&form)?;
        let values: BTreeMap<String, String> = Settings::KEYS
            .iter()
            .filter(|k| !form.get(k).trim().is_empty())
            .map(|k| ((*k).to_owned(), form.get(k).to_owned()))
            .collect();
        api::set_settings_core(pc.caller.clone(), values).await
    }
    .await;
    match result {
        Ok(_) => render(&pc, None, Notice::Done("Saved.".to_owned())).await,
        Err(e) => render(&pc, Some(&form), Notice::Refused(e)).await,
    }
}

/// `POST /parameters/online-ca`: through the API's Online CA update.
pub(super) async fn save_online_ca(
    Extension(pc): Extension<PageCaller>,
    axum::Form(fields): axum::Form<Vec<(String, String)>>,
) -> Response {
    let form = FormData::from_pairs(fields);
    let result = async {
        pc.may_change(&form)?;
        let body: OnlineCaBody = form.body_with_numbers(
            &["host", "type", "username", "password", "template", "label"],
            &[],
            &["port"],
        )?;
        admin::set_online_ca_core(pc.caller.clone(), body).await
    }
    .await;
    match result {
        Ok(view) => {
            let done = format!(
                "Saved: {} at {}:{}.",
                view.type_label, view.hostname, view.port
            );
            render(&pc, None, Notice::Done(done)).await
        }
        Err(e) => render(&pc, None, Notice::Refused(e)).await,
    }
}
