//! HTTPS: the rustls configuration, the self-signed certificate made on first run, and the
//! accept loop (one task per connection, HTTP/1.1 over rustls; there is no plain HTTP).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::TokioIo;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower_service::Service;

use crate::Error;

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The self-signed certificate's file in the data directory.
pub const CERT_FILE: &str = "web-cert.pem";
/// Its key's file (0600).
pub const KEY_FILE: &str = "web-key.pem";

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_owned();
    move |source| Error::Io {
        action,
        path,
        source,
    }
}

/// The certificate and key PEM files in `dir` ([`CERT_FILE`], [`KEY_FILE`]), made on first
/// use: a self-signed certificate for `localhost` and the loopback addresses, key 0600.
///
/// # Errors
/// [`Error::Io`], [`Error::SelfSigned`].
pub fn self_signed_files(dir: &Path) -> Result<(PathBuf, PathBuf), Error> {
    let cert = dir.join(CERT_FILE);
    let key = dir.join(KEY_FILE);
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    let made = rcgen::generate_simple_self_signed(vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ])?;
    std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
    write_private(&key, made.key_pair.serialize_pem().as_bytes())?;
    std::fs::write(&cert, made.cert.pem()).map_err(io("writing", &cert))?;
    Ok((cert, key))
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path).map_err(io("creating", path))?;
    file.write_all(data).map_err(io("writing", path))
}

/// A rustls server configuration (ring, TLS 1.2 and 1.3, HTTP/1.1) from PEM files.
///
/// # Errors
/// [`Error::Io`], [`Error::Certificate`] for a file without a certificate or a key,
/// [`Error::Tls`].
pub fn server_config(cert: &Path, key: &Path) -> Result<ServerConfig, Error> {
    let cert_pem = std::fs::read(cert).map_err(io("reading", cert))?;
    let key_pem = std::fs::read(key).map_err(io("reading", key))?;
    server_config_pem(&cert_pem, &key_pem)
}

/// [`server_config`] from PEM text in memory.
///
/// # Errors
/// As [`server_config`].
pub fn server_config_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<ServerConfig, Error> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Certificate {
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(Error::Certificate {
            reason: "no certificate in the PEM file".to_owned(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| Error::Certificate {
        reason: format!("the key: {e}"),
    })?;
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Serves `app` over HTTPS on `listener` until the task is dropped: each connection's TLS
/// handshake (with a deadline) and HTTP/1.1 run in their own task, and the handlers see the
/// peer's address as [`ConnectInfo`].
///
/// # Errors
/// [`Error::Net`] when accepting fails for good.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    app: Router,
) -> Result<(), Error> {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            // A connection reset before accept, or out of file descriptors for a moment.
            Err(e) if is_transient(&e) => continue,
            Err(source) => {
                return Err(Error::Net {
                    action: "accepting a connection",
                    source,
                });
            }
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let Ok(Ok(stream)) =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
            else {
                return;
            };
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                    app.clone().call(req)
                },
            );
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!("web connection from {peer}: {e}");
            }
        });
    }
}

fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    ) || e
        .raw_os_error()
        .is_some_and(|code| code == 24 || code == 23)
}
