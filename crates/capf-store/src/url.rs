//! Which store a program opens: [`StoreUrl`] and [`open_store`], what capfd, capfctl and
//! capf-web call.

use core::fmt;
use core::str::FromStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::{DeviceStore, Error, NodeId, Secret, SqliteStore};

/// Where the store is: `sqlite:PATH` (the SQLite store in the data directory `PATH`; the
/// default is the program's data directory) or `postgres://user@host:port/dbname` (several
/// nodes on one PostgreSQL database; `postgresql://` too).
///
/// A URL never carries the password: one written in it is refused, so it cannot end up on a
/// command line, in a unit file or in a log. It comes from a file or the environment
/// ([`store_password`]). `Debug` and `Display` show the URL as given (without a password there
/// is nothing to hide).
#[derive(Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// The SQLite store in this data directory.
    Sqlite(PathBuf),
    /// A PostgreSQL database (the URL, without a password).
    Postgres(String),
}

impl StoreUrl {
    /// The environment variable a PostgreSQL password is read from when no file is given (the
    /// name libpq uses).
    pub const PASSWORD_ENV: &'static str = "PGPASSWORD";

    /// The default: the SQLite store in `data_dir`.
    pub fn sqlite(data_dir: &Path) -> StoreUrl {
        StoreUrl::Sqlite(data_dir.to_owned())
    }

    /// Whether several nodes can share this store (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        matches!(self, StoreUrl::Postgres(_))
    }
}

impl FromStr for StoreUrl {
    type Err = Error;

    fn from_str(s: &str) -> Result<StoreUrl, Error> {
        let refuse = |reason: &str| Error::StoreUrl {
            url: redact(s),
            reason: reason.to_owned(),
        };
        if let Some(path) = s.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(refuse("names no directory (sqlite:PATH)"));
            }
            return Ok(StoreUrl::Sqlite(PathBuf::from(path)));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            if has_password(s) {
                return Err(refuse(
                    "carries a password: give it in a file (--store-password-file) or in the \
                     environment (PGPASSWORD) instead, so it never shows on a command line",
                ));
            }
            return Ok(StoreUrl::Postgres(s.to_owned()));
        }
        Err(refuse("is neither sqlite:PATH nor postgres://..."))
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            StoreUrl::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreUrl({self})")
    }
}

/// Whether the URL's authority (`user:password@host`) has a password.
fn has_password(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
        || url.contains("password=")
}

/// The URL with any password (`user:...@`, `password=...`) replaced by `***`.
fn redact(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some((scheme, rest)) = url.split_once("://") {
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let authority = &rest[..end];
        if let Some((userinfo, host)) = authority.rsplit_once('@')
            && let Some((user, _)) = userinfo.split_once(':')
        {
            out = format!("{scheme}://{user}:***@{host}{}", &rest[end..]);
        }
    }
    if let Some(i) = out.find("password=") {
        let start = i + "password=".len();
        let end = out[start..].find('&').map_or(out.len(), |e| start + e);
        out.replace_range(start..end, "***");
    }
    out
}

/// The PostgreSQL password: the first line of `file` when given, else the environment's
/// [`StoreUrl::PASSWORD_ENV`], else none (trust or peer authentication, or a `.pgpass`).
///
/// # Errors
/// [`Error::Io`] when the file cannot be read.
pub fn store_password(file: Option<&Path>) -> Result<Option<Secret>, Error> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(Error::io("reading", path))?;
        let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
        return Ok(Some(Secret::new(line)));
    }
    Ok(std::env::var(StoreUrl::PASSWORD_ENV)
        .ok()
        .filter(|p| !p.is_empty())
        .map(Secret::new))
}

/// Opens the store `url` names: SQLite in its directory, or PostgreSQL with `password`; the
/// authentication-string key is the one in `data_dir` (every node of a cluster holds the same
/// file, which the PostgreSQL store checks). SQLite's integrity is checked, as capfd does.
///
/// # Errors
/// As [`SqliteStore::open`] and [`SqliteStore::check_integrity`]; for PostgreSQL as
/// [`PgStore::connect`](crate::PgStore::connect), and [`Error::StoreUrl`] for a URL the client
/// cannot parse or a build without the `postgres` feature.
pub fn open_store(
    url: &StoreUrl,
    data_dir: &Path,
    password: Option<&Secret>,
) -> Result<Arc<dyn DeviceStore>, Error> {
    open(url, data_dir, password, None)
}

/// As [`open_store`], for a node of a cluster: on PostgreSQL the store acts as node `node`,
/// whose leases on attempts in progress last `lease` (a node restarted under its old name ends
/// its own interrupted attempts at once; see [`PgStore::with_node`](crate::PgStore::with_node)).
/// SQLite has no nodes and ignores both.
///
/// # Errors
/// As [`open_store`].
pub fn open_node_store(
    url: &StoreUrl,
    data_dir: &Path,
    password: Option<&Secret>,
    node: NodeId,
    lease: Duration,
) -> Result<Arc<dyn DeviceStore>, Error> {
    open(url, data_dir, password, Some((node, lease)))
}

fn open(
    url: &StoreUrl,
    data_dir: &Path,
    password: Option<&Secret>,
    node: Option<(NodeId, Duration)>,
) -> Result<Arc<dyn DeviceStore>, Error> {
    match url {
        StoreUrl::Sqlite(dir) => {
            let store = SqliteStore::open(dir)?;
            store.check_integrity()?;
            Ok(Arc::new(store))
        }
        #[cfg(feature = "postgres")]
        StoreUrl::Postgres(text) => {
            let mut config: postgres::Config = text.parse().map_err(|e| Error::StoreUrl {
                url: redact(text),
                reason: format!("cannot be read: {e}"),
            })?;
            if let Some(password) = password {
                config.password(password.expose());
            }
            crate::data_dir::secure_data_dir(data_dir)?;
            let key = crate::auth::load_or_create_key(&data_dir.join(SqliteStore::KEY_FILE))?;
            let store = crate::PgStore::connect(config, key)?;
            Ok(Arc::new(match node {
                Some((node, lease)) => store.with_node(node, lease),
                None => store,
            }))
        }
        #[cfg(not(feature = "postgres"))]
        StoreUrl::Postgres(text) => {
            let _ = (data_dir, password, node);
            Err(Error::StoreUrl {
                url: redact(text),
                reason: "needs capf-store's `postgres` feature, which this build lacks".to_owned(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_kinds_and_refuses_a_password_in_the_url() {
        assert_eq!(
            "sqlite:/var/lib/capf".parse::<StoreUrl>().unwrap(),
            StoreUrl::Sqlite("/var/lib/capf".into())
        );
        let pg: StoreUrl = "postgres://capf@db1:5432/capf".parse().unwrap();
        assert!(pg.is_shared());
        assert_eq!(pg.to_string(), "postgres://capf@db1:5432/capf");
        for bad in [
            "postgres://capf:hunter2@db1/capf",
            "postgresql://db1/capf?password=hunter2",
        ] {
            let err = bad.parse::<StoreUrl>().unwrap_err().to_string();
            assert!(!err.contains("hunter2"), "{err}");
            assert!(err.contains("PGPASSWORD"), "{err}");
        }
        assert!("mysql://x".parse::<StoreUrl>().is_err());
        assert!("sqlite:".parse::<StoreUrl>().is_err());
    }

    #[test]
    fn the_password_comes_from_a_file_first() {
        let dir = std::env::temp_dir().join(format!("capf-store-url-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pw");
        std::fs::write(&file, "s3cret\nignored\n").unwrap();
        assert_eq!(
            store_password(Some(&file)).unwrap().unwrap().expose(),
            "s3cret"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
