//! `capfctl admin`: administrator accounts of the web administration (capf-web). The first
//! administrator is made here: capf has no default password. A password is read from a prompt
//! (not echoed) or from standard input, never from the command line, where `ps` would show it.

use std::io::{BufRead, IsTerminal};
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use capf_admin::accounts::{AccountView, add_account, create_api_token};
use capf_store::{AccountName, Role};

use crate::device::DataArgs;
use crate::print_json;

/// `capfctl admin`'s verbs.
#[derive(clap::Subcommand)]
pub(crate) enum AdminCommand {
    /// Add an account; the password is asked for (or read from standard input).
    Add {
        #[command(flatten)]
        data: DataArgs,
        /// The account name (letters, digits, '.', '_', '-', '@').
        name: String,
        /// `admin` (reads and changes everything) or `read-only`.
        #[arg(long)]
        role: String,
    },
    /// List the accounts.
    List {
        #[command(flatten)]
        data: DataArgs,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove an account and its API tokens.
    Remove {
        #[command(flatten)]
        data: DataArgs,
        /// The account name.
        name: String,
    },
    /// API tokens for automation.
    #[command(subcommand)]
    Token(TokenCommand),
}

/// `capfctl admin token`'s verbs.
#[derive(clap::Subcommand)]
pub(crate) enum TokenCommand {
    /// Create a token for the account and print it (once: only its hash is kept).
    Create {
        #[command(flatten)]
        data: DataArgs,
        /// The account name.
        name: String,
        /// What the token is for.
        #[arg(long, default_value = "")]
        label: String,
    },
}

pub(crate) fn run(cmd: AdminCommand) -> Result<()> {
    match cmd {
        AdminCommand::Add { data, name, role } => {
            let name = AccountName::new(&name)?;
            let role: Role = role.parse()?;
            let store = data.open()?;
            if store.account(&name)?.is_some() {
                bail!("account {name} already exists");
            }
            let password = read_password()?;
            let account = add_account(&*store, &name, role, &password, SystemTime::now())?;
            outln!("added account {} ({})", account.name, account.role);
        }
        AdminCommand::List { data, json } => {
            let store = data.open_existing()?;
            let views: Vec<AccountView> = store.accounts()?.iter().map(AccountView::of).collect();
            if json {
                return print_json(&views);
            }
            for v in views {
                outln!(
                    "{}\t{}\tcreated {}\tlast login {}\tfailed logins {}",
                    v.name,
                    v.role,
                    v.created_at,
                    v.last_login.as_deref().unwrap_or("never"),
                    v.login_failures
                );
            }
        }
        AdminCommand::Remove { data, name } => {
            let name = AccountName::new(&name)?;
            let store = data.open_existing()?;
            store.remove_account(&name, SystemTime::now())?;
            outln!("removed account {name}");
        }
        AdminCommand::Token(TokenCommand::Create { data, name, label }) => {
            let name = AccountName::new(&name)?;
            let store = data.open_existing()?;
            let (token, _) = create_api_token(&*store, &name, &label, SystemTime::now())?;
            outln!("{token}");
        }
    }
    Ok(())
}

/// The password from a prompt on the terminal (asked twice), or the first line of standard
/// input when it is not a terminal (scripts, tests).
fn read_password() -> Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").context("reading the password")?;
        let again =
            rpassword::prompt_password("Password again: ").context("reading the password")?;
        if first != again {
            bail!("the passwords differ");
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
