//! `capfctl online-ca ...`: the guide's Online CA settings, and the CA chain it serves.

use std::io::BufRead as _;
use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{Context as _, Result};
use capf_admin::OnlineCaView;
use capf_lsc::{OnlineCaParams, Secret};
use capf_trust::{Cert, Purpose, Release};

use crate::device::DataArgs;
use crate::print_json;

/// `online-ca ...`.
#[derive(clap::Subcommand)]
pub(crate) enum OnlineCaCommand {
    /// Set the Online CA (the running server picks it up); the password is read from standard
    /// input (one line), never from the command line.
    Set {
        #[command(flatten)]
        data: DataArgs,
        /// Online CA Hostname: a name the CA's HTTPS certificate carries in its subjectAltName
        /// (DNS name or IP address; the CN alone is not checked, per RFC 6125).
        #[arg(long)]
        host: String,
        /// Online CA Port.
        #[arg(long, default_value_t = 443)]
        port: u32,
        /// Online CA Type: `est` (EST Supported CA) or `microsoft` (Microsoft CA).
        #[arg(long = "type")]
        ca_type: String,
        /// Online CA Username.
        #[arg(long)]
        username: String,
        /// Read the Online CA Password from standard input (one line). Required.
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Online CA Template (Microsoft CA only).
        #[arg(long)]
        template: Option<String>,
        /// Certificate Enrollment Profile Label (EST only): one URI path segment.
        #[arg(long)]
        label: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show the Online CA settings (the password as ********).
    Show {
        #[command(flatten)]
        data: DataArgs,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Fetch the CA's certificates (EST /cacerts, the Microsoft CA's certnew.p7b) over TLS
    /// verified against CAPF-trust, print each one's subject, issuer, validity and SHA-256
    /// fingerprint, and with --add-to-trust upload them to CAPF-trust under the guide's rules.
    /// With --bootstrap (EST only), fetch them without authenticating the server, to see the
    /// chain before trusting it; adding such a chain needs its root confirmed by --fingerprint.
    Cacerts {
        #[command(flatten)]
        data: DataArgs,
        /// The trust store directory: <DIR>/<purpose>/<sha256>.pem.
        #[arg(long, value_name = "DIR", default_value = "./capf-data/trust")]
        trust: PathBuf,
        /// Fetch without authenticating the server and without credentials (EST's bootstrap,
        /// RFC 7030 section 4.1.1): what is shown is unverified.
        #[arg(long)]
        bootstrap: bool,
        /// Upload the chain to CAPF-trust.
        #[arg(long)]
        add_to_trust: bool,
        /// With --bootstrap --add-to-trust: the SHA-256 fingerprint of the CA root, obtained
        /// from the CA out of band (64 hex digits, `:` allowed); nothing is added unless the
        /// fetched root has it.
        #[arg(long, value_name = "SHA256", requires = "bootstrap")]
        fingerprint: Option<String>,
    },
}

pub(crate) fn run(cmd: OnlineCaCommand) -> Result<()> {
    match cmd {
        OnlineCaCommand::Set {
            data,
            host,
            port,
            ca_type,
            username,
            password_stdin: _,
            template,
            label,
            json,
        } => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the password from standard input")?;
            let password = Secret::new(line.trim_end_matches(['\r', '\n']));
            let store = data.open_existing()?;
            let params = OnlineCaParams {
                host,
                port,
                ca_type,
                username,
                password,
                template,
                label,
            };
            let view = capf_admin::set_online_ca(&*store, &params, SystemTime::now())?;
            if json {
                return print_json(&view);
            }
            outln!("Online CA set (the running server picks it up):");
            show(&view)
        }
        OnlineCaCommand::Show { data, json } => {
            let store = data.open_existing()?;
            let view = capf_admin::online_ca(&*store)?;
            if json {
                return print_json(&view);
            }
            match view {
                Some(view) => show(&view),
                None => {
                    outln!("no Online CA is set (capfctl online-ca set)");
                    Ok(())
                }
            }
        }
        OnlineCaCommand::Cacerts {
            data,
            trust,
            bootstrap,
            add_to_trust,
            fingerprint,
        } => cacerts(
            &data,
            &trust,
            bootstrap.then_some(fingerprint.as_deref()),
            add_to_trust,
        ),
    }
}

fn show(view: &OnlineCaView) -> Result<()> {
    outln!("hostname = {}", view.hostname);
    outln!("port = {}", view.port);
    outln!("type = {} ({})", view.ca_type, view.type_label);
    outln!("username = {}", view.username);
    outln!("password = {}", view.password);
    if let Some(t) = &view.template {
        outln!("template = {t}");
    }
    if let Some(l) = &view.label {
        outln!("label = {l}");
    }
    Ok(())
}

/// `online-ca cacerts`; `bootstrap` is `Some(--fingerprint)` for an unauthenticated fetch.
fn cacerts(
    data: &DataArgs,
    trust: &std::path::Path,
    bootstrap: Option<Option<&str>>,
    add: bool,
) -> Result<()> {
    let store = data.open_existing()?;
    let config = capf_store::SessionStore::online_ca_config(&*store)?
        .context("no Online CA is set (capfctl online-ca set)")?;
    let mut opened = capf_admin::OpenTrustStore::load(trust, Release::LATEST)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let certs = if bootstrap.is_some() {
        runtime.block_on(capf_ca::online::ca_certificates_unauthenticated_bootstrap(
            &config,
        ))?
    } else {
        let anchors = capf_ca::http::TrustAnchors::from_der(
            opened
                .store
                .certificates(&Purpose::CAPF_TRUST)
                .iter()
                .map(|c| c.der().to_vec()),
        );
        let client = capf_ca::online::client_for(&config, &anchors);
        runtime.block_on(client.ca_certificates())?
    };
    if bootstrap.is_some() {
        outln!(
            "UNVERIFIED: fetched from {}:{} without authenticating the server (EST bootstrap, RFC 7030 section 4.1.1); compare the root's SHA-256 fingerprint with the CA's, obtained out of band, before trusting it",
            config.host,
            config.port
        );
    }
    let mut bundle = Vec::new();
    for (i, der) in certs.iter().enumerate() {
        let cert = Cert::from_der(der)?;
        outln!("certificate {}", i + 1);
        outln!("  subject     {}", cert.subject());
        outln!("  issuer      {}", cert.issuer());
        outln!("  not before  {}", capf_admin::rfc3339(cert.not_before()));
        outln!("  not after   {}", capf_admin::rfc3339(cert.not_after()));
        outln!("  sha256      {}", cert.fingerprint());
        bundle.push(cert);
    }
    if let Some(fingerprint) = bootstrap
        && (add || fingerprint.is_some())
    {
        capf_admin::confirm_bootstrap_root(&bundle, fingerprint)?;
        outln!("the root's SHA-256 fingerprint is the one given");
    }
    if add {
        let verdicts = opened.upload(&Purpose::CAPF_TRUST, bundle, SystemTime::now())?;
        for v in &verdicts {
            outln!(
                "CAPF-trust  {}  {}: {}",
                v.fingerprint,
                v.subject,
                capf_admin::verdict_text(&v.verdict)
            );
        }
        capf_admin::check_verdicts(std::path::Path::new("/cacerts"), &verdicts)?;
    }
    Ok(())
}
