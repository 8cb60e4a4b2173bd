//! Bulk Administration: update by query with a preview of what changes, and CSV insert by
//! upload with a progress indication (nothing applied from a bad file, its line named).

use axum::Extension;
use axum::extract::Multipart;
use axum::response::Response;
use capf_admin::{BulkUpdateView, KEY_ORDERS, OperationKind, key_order_name};
use capf_lsc::{Curve, RsaBits};
use capf_store::{AuthMode, StatusKind};

use super::html::{self, Notice, esc};
use super::{FormData, PageCaller};
use crate::api::{self, BulkUpdate};
use crate::error::ApiError;

const UPDATE_KEYS: [&str; 15] = [
    "filter.name",
    "filter.pool",
    "filter.model",
    "filter.status",
    "filter.lsc_expires_before",
    "description",
    "device_pool",
    "model",
    "auth_mode",
    "operation",
    "key_order",
    "rsa",
    "curve",
    "complete_by",
    "at",
];
const UPDATE_FLAGS: [&str; 2] = ["filter.past_complete_by", "dry_run"];

/// The upload's progress: the browser's upload events drawn on a `<progress>` bar, then the
/// answer shown in place of the page. Without scripts the form posts as usual. Served as a
/// file of this server (`/assets/bulk-upload.js`), so the pages' content security policy
/// allows no inline script.
pub(super) const UPLOAD_SCRIPT: &str = r#"(function(){var f=document.getElementById('csv-insert');if(!f||!window.XMLHttpRequest||!window.FormData)return;
f.addEventListener('submit',function(e){e.preventDefault();var p=document.getElementById('upload-progress'),t=document.getElementById('upload-state');
p.hidden=false;p.value=0;t.textContent='Uploading...';var x=new XMLHttpRequest();x.open('POST',f.action);
x.upload.onprogress=function(ev){if(ev.lengthComputable){p.value=Math.round(100*ev.loaded/ev.total);t.textContent='Uploading: '+p.value+'%';}};
x.upload.onload=function(){p.removeAttribute('value');t.textContent='Checking and adding the devices...';};
x.onload=function(){document.open();document.write(x.responseText);document.close();};
x.onerror=function(){t.textContent='The upload failed; try again.';};x.send(new FormData(f));});})();
"#;

fn choices(none: &str, items: impl Iterator<Item = (String, String)>) -> Vec<(String, String)> {
    std::iter::once((String::new(), none.to_owned()))
        .chain(items)
        .collect()
}

/// `GET /bulk`.
pub(super) async fn page(Extension(pc): Extension<PageCaller>) -> Response {
    render(pc, &FormData::default(), None, Notice::None).await
}

async fn render(
    pc: PageCaller,
    form: &FormData,
    preview: Option<&BulkUpdateView>,
    notice: Notice,
) -> Response {
    let any = |all: Vec<(String, String)>| choices("(no change)", all.into_iter());
    let statuses = choices(
        "(any)",
        StatusKind::ALL
            .iter()
            .map(|s| (s.as_str().to_owned(), s.label().to_owned())),
    );
    let modes = any(AuthMode::ALL
        .iter()
        .map(|m| (m.as_str().to_owned(), m.to_string()))
        .collect());
    let operations = any(OperationKind::ALL
        .iter()
        .map(|k| (k.as_str().to_owned(), k.as_str().to_owned()))
        .collect());
    let orders = any(KEY_ORDERS
        .iter()
        .map(|o| (key_order_name(*o).to_owned(), key_order_name(*o).to_owned()))
        .collect());
    let rsa = any(RsaBits::ALL
        .iter()
        .map(|b| (b.bits().to_string(), b.bits().to_string()))
        .collect());
    let curves = any(Curve::ALL
        .iter()
        .map(|c| (c.name().to_owned(), c.name().to_owned()))
        .collect());
    let templates = match api::blocking({
        let store = std::sync::Arc::clone(&pc.caller.store);
        move || Ok(store.templates()?)
    })
    .await
    {
        Ok(t) => t,
        Err(e) => {
            return html::page(
                "Bulk Administration",
                "/bulk",
                Some(&pc.viewer()),
                &e.into(),
                "",
            );
        }
    };
    let template_choices = choices(
        "(none)",
        templates.iter().map(|t| (t.name.clone(), t.name.clone())),
    );
    let preview_html = preview.map_or_else(String::new, |p| {
        let rows: Vec<Vec<String>> = p
            .devices
            .iter()
            .map(|c| vec![esc(&c.name), esc(&c.change)])
            .collect();
        format!(
            r#"<h2 id="preview-title">{} {} device(s)</h2>{}"#,
            if p.dry_run { "Would change" } else { "Changed" },
            p.changed,
            html::table("changes", &["Device", "Change"], &rows)
        )
    });
    let body = format!(
        r#"<section><h2>Update Phones by Query</h2>
<form method="post" action="/bulk/update" id="bulk-update">{csrf}
<p class="muted">Which phones (capfctl's filters; all of them when none is given):</p>
<div class="grid">{f_name}{f_pool}{f_model}{f_status}{f_lsc}{f_past}</div>
<p class="muted">What changes (fields left empty stay as they are):</p>
<div class="grid">{description}{pool}{model}{mode}{operation}{order}{rsa}{curve}{complete}</div>
<p class="muted">Run Later: give a time to store the change as a scheduled job that capfd runs then (checked now; see Scheduled Jobs). Empty: Apply changes now.</p>
<div class="grid">{update_at}</div>
<div class="actions"><button type="submit" name="dry_run" value="true" class="secondary" id="preview">Preview</button><button type="submit" name="apply" value="1" id="apply">Apply</button></div>
</form>{preview_html}</section>
<section><h2>Insert Phones from a CSV File</h2>
<p class="muted">Columns (header row first): {columns}. Every row is checked first: a bad row is named by its line and nothing from the file is added.</p>
<form method="post" action="/bulk/insert" enctype="multipart/form-data" id="csv-insert" class="grid">{csrf}
<label>CSV file<input type="file" name="csv" id="csv-file" accept=".csv,text/csv"></label>{template}{insert_at}
<div class="actions"><button type="submit" id="insert">Insert</button></div>
<div><progress id="upload-progress" max="100" hidden></progress><span id="upload-state" class="muted" role="status"></span></div>
</form></section><script src="/assets/bulk-upload.js"></script>"#,
        csrf = html::csrf_field(&pc.csrf),
        f_name = html::input(
            "Device Name pattern",
            "filter.name",
            form.get("filter.name"),
            "text"
        ),
        f_pool = html::input(
            "Device Pool",
            "filter.pool",
            form.get("filter.pool"),
            "text"
        ),
        f_model = html::input("Model", "filter.model", form.get("filter.model"), "text"),
        f_status = html::select(
            "Status",
            "filter.status",
            &statuses,
            form.get("filter.status")
        ),
        f_lsc = html::input(
            "LSC expires before",
            "filter.lsc_expires_before",
            form.get("filter.lsc_expires_before"),
            "date"
        ),
        f_past = html::checkbox(
            "Past Operation Completes By",
            "filter.past_complete_by",
            !form.get("filter.past_complete_by").is_empty()
        ),
        description = html::input(
            "Description",
            "description",
            form.get("description"),
            "text"
        ),
        pool = html::input(
            "Device Pool",
            "device_pool",
            form.get("device_pool"),
            "text"
        ),
        model = html::input("Model", "model", form.get("model"), "text"),
        mode = html::select(
            "Authentication Mode",
            "auth_mode",
            &modes,
            form.get("auth_mode")
        ),
        operation = html::select(
            "Certificate Operation",
            "operation",
            &operations,
            form.get("operation")
        ),
        order = html::select("Key Order", "key_order", &orders, form.get("key_order")),
        rsa = html::select("RSA Key Size", "rsa", &rsa, form.get("rsa")),
        curve = html::select("EC Key Size", "curve", &curves, form.get("curve")),
        complete = html::input(
            "Operation Completes By",
            "complete_by",
            form.get("complete_by"),
            "date"
        ),
        columns = esc(&capf_admin::COLUMNS.join(", ")),
        template = html::select("Device template", "template", &template_choices, ""),
        update_at = run_later_input("update-at", form.get("at")),
        insert_at = run_later_input("insert-at", ""),
    );
    html::page(
        "Bulk Administration",
        "/bulk",
        Some(&pc.viewer()),
        &notice,
        &body,
    )
}

/// `POST /bulk/update`: Preview (the API's dry run) or Apply.
pub(super) async fn update(
    Extension(pc): Extension<PageCaller>,
    axum::Form(fields): axum::Form<Vec<(String, String)>>,
) -> Response {
    let form = FormData::from_pairs(fields);
    let result = async {
        // As the API: a preview is a POST too, refused to the read-only role.
        pc.may_change(&form)?;
        let mut body: BulkUpdate = form.body(&UPDATE_KEYS, &UPDATE_FLAGS)?;
        // A preview is of now; Apply with a time stores the job.
        let at = body.at.take().filter(|_| !body.dry_run);
        match at {
            Some(at) => {
                let due = crate::scheduled::due(&at)?;
                crate::scheduled::schedule_update_core(pc.caller.clone(), body, due)
                    .await
                    .map(|job| Done::Later(Box::new(job)))
            }
            None => api::bulk_update_core(pc.caller.clone(), body)
                .await
                .map(Done::Now),
        }
    }
    .await;
    match result {
        Ok(Done::Later(job)) => render(pc.clone(), &form, None, scheduled_notice(&job)).await,
        Ok(Done::Now(view)) => {
            let notice = if view.dry_run {
                Notice::Done(format!(
                    "Preview: {} device(s) would change; nothing was changed.",
                    view.changed
                ))
            } else {
                Notice::Done(format!("{} device(s) changed.", view.changed))
            };
            render(pc.clone(), &form, Some(&view), notice).await
        }
        Err(e) => render(pc.clone(), &form, None, Notice::Refused(e)).await,
    }
}

/// `POST /bulk/insert`: a CSV file uploaded (multipart), through the API's bulk insert.
pub(super) async fn insert(Extension(pc): Extension<PageCaller>, multipart: Multipart) -> Response {
    let result = async {
        let form = FormData::from_multipart(multipart).await?;
        pc.may_change(&form)?;
        let Some(file) = form.file("csv") else {
            return Err(ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "choose a CSV file to upload",
            ));
        };
        let name = file_label(&file.name, "upload.csv");
        let template = Some(form.get("template").to_owned()).filter(|t| !t.is_empty());
        match form.get("at").trim() {
            "" => api::bulk_insert_core(pc.caller.clone(), name, file.data.clone(), template)
                .await
                .map(Done::Now),
            at => {
                let due = crate::scheduled::due(at)?;
                crate::scheduled::schedule_insert_core(
                    pc.caller.clone(),
                    name,
                    file.data.clone(),
                    template,
                    due,
                )
                .await
                .map(|job| Done::Later(Box::new(job)))
            }
        }
    }
    .await;
    let notice = match result {
        Ok(Done::Later(job)) => scheduled_notice(&job),
        Ok(Done::Now(view)) => Notice::Done(format!(
            "Added {} device(s) from {}{}.",
            view.added,
            view.file,
            view.template
                .map(|t| format!(" with the template {t}"))
                .unwrap_or_default()
        )),
        Err(e) => Notice::Refused(e),
    };
    render(pc, &FormData::default(), None, notice).await
}

/// What a bulk form did: applied now, or stored as a job for later (Run Later).
enum Done<T> {
    Now(T),
    Later(Box<capf_admin::jobs::JobView>),
}

/// The Run Later field (`at`, RFC 3339) of a bulk form, with its own element id.
fn run_later_input(id: &str, value: &str) -> String {
    format!(
        r#"<label>Run Later at (RFC 3339, such as 2030-01-31T02:00:00Z)<input type="text" name="at" id="{id}" value="{}" placeholder="now"></label>"#,
        esc(value)
    )
}

/// What a page says when a bulk change was stored as a job.
fn scheduled_notice(job: &capf_admin::jobs::JobView) -> Notice {
    Notice::Done(format!(
        "Scheduled job {} for {}: {}. Nothing changes until it runs (Scheduled Jobs).",
        job.id, job.due, job.description
    ))
}

/// An uploaded file's name as messages show it: its last path part, printable, short.
pub(super) fn file_label(name: &str, fallback: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = base.chars().filter(|c| !c.is_control()).take(100).collect();
    if clean.trim().is_empty() {
        fallback.to_owned()
    } else {
        clean
    }
}
