//! The opt-in legacy listener (issue 15): TLS 1.0, 1.1 and 1.2 with the AES-CBC-SHA suites,
//! served by OpenSSL, for the guide's own 7942/7962 phones and the rest of the 7900 and 9900
//! series, which speak nothing newer. rustls has no TLS 1.0/1.1, no CBC suites and no RSA key
//! exchange, by design.
//!
//! Only the TLS layer is its own: after the handshake the connection runs the driver's loop
//! (the same sans-io session, enrollment handler, limits, admission and deadlines as the rustls
//! path), through the [`Transport`] trait.
//!
//! Its configuration key (`legacy_tls_listen`) exists in every build, so a build without the
//! `legacy-tls` feature refuses it with a clear error instead of ignoring it.

use std::net::SocketAddr;

use crate::{Config, Error};

/// The weakness an operator accepts by turning the legacy listener on, logged as a warning.
#[cfg(feature = "legacy-tls")]
pub(crate) const WARNING: &str = "legacy TLS listener on: TLS 1.0/1.1 with AES-CBC-SHA suites \
     at OpenSSL security level 0 is weak (CVE-2014-3566 POODLE and CVE-2014-8730 for CBC \
     padding, CVE-2011-3389 BEAST, CVE-2013-0169 Lucky Thirteen, SHA-1 MACs and signatures, \
     RSA key exchange without forward secrecy); open it only to the phones that need it";

/// The suites the 7900/9900-series phones use (AES-CBC with SHA-1, ECDHE-RSA or RSA key
/// exchange), preferring forward secrecy. Security level 0: OpenSSL 3 refuses TLS 1.0/1.1 and
/// SHA-1 above it.
#[cfg(feature = "legacy-tls")]
pub(crate) const CIPHERS: &str =
    "ECDHE-RSA-AES256-SHA:ECDHE-RSA-AES128-SHA:AES256-SHA:AES128-SHA:@SECLEVEL=0";

/// The most legacy listen addresses, as for `listen`.
const MAX_LISTEN: usize = 64;

/// Checks `legacy_tls_listen`: refused in a build without the feature, at most 64 distinct
/// addresses, none of them also a main listen address.
pub(crate) fn validate(config: &Config) -> Result<(), Error> {
    let addrs = &config.legacy_tls_listen;
    if addrs.is_empty() {
        return Ok(());
    }
    if !cfg!(feature = "legacy-tls") {
        return Err(Error::LegacyTlsNotBuilt);
    }
    let refuse = |value: String, allowed: &str| Error::Config {
        key: "legacy_tls_listen",
        value,
        allowed: allowed.to_owned(),
    };
    if addrs.len() > MAX_LISTEN {
        return Err(refuse(
            format!("{} addresses", addrs.len()),
            "0 to 64 addresses",
        ));
    }
    for (i, addr) in addrs.iter().enumerate() {
        // Port 0 asks the system for a port, so it may repeat.
        let taken = |other: &[SocketAddr]| addr.port() != 0 && other.contains(addr);
        if taken(&addrs[..i]) {
            return Err(refuse(format!("{addr} twice"), "distinct addresses"));
        }
        if taken(&config.listen) {
            return Err(refuse(
                format!("{addr}, also in listen"),
                "addresses other than the rustls listener's",
            ));
        }
    }
    Ok(())
}

#[cfg(feature = "legacy-tls")]
pub(crate) use imp::{context, serve};

#[cfg(feature = "legacy-tls")]
mod imp {
    use std::io;
    use std::net::SocketAddr;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::Poll;

    use openssl::error::ErrorStack;
    use openssl::pkey::{Id, PKey};
    use openssl::ssl::{
        Ssl, SslContext, SslContextBuilder, SslMethod, SslMode, SslOptions, SslSessionCacheMode,
        SslVersion,
    };
    use openssl::x509::X509;
    use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
    use tokio::net::TcpStream;
    use tokio_openssl::SslStream;
    use tracing::{info, warn};

    use super::CIPHERS;
    use crate::Shared;
    use crate::driver::{self, Transport};
    use crate::limits::Admission;

    /// Bytes decrypted per read, on the stack of one poll (not kept while idle).
    const READ_CHUNK: usize = 4096;

    /// The legacy listener's OpenSSL context for the CAPF certificate chain (DER) and its
    /// PKCS#8 key, or `None` when the key is not RSA: these phones know only RSA
    /// certificates (ECDHE-RSA and RSA key exchange).
    pub(crate) fn context(
        chain: &[Vec<u8>],
        key_pkcs8: &[u8],
    ) -> Result<Option<SslContext>, ErrorStack> {
        let key = PKey::private_key_from_pkcs8(key_pkcs8)?;
        if key.id() != Id::RSA {
            return Ok(None);
        }
        let mut b = SslContextBuilder::new(SslMethod::tls_server())?;
        b.set_min_proto_version(Some(SslVersion::TLS1))?;
        b.set_max_proto_version(Some(SslVersion::TLS1_2))?;
        b.set_cipher_list(CIPHERS)?;
        b.set_security_level(0);
        // OP_ALL includes DONT_INSERT_EMPTY_FRAGMENTS: each message is one record (spec rule
        // T9) and old embedded stacks choke on empty records; BEAST needs an attacker's
        // chosen plaintext in the stream, which CAPF never carries. No renegotiation (a
        // peer could make the server redo handshakes), no compression (CRIME), no tickets or
        // session cache (one handshake per enrollment; nothing kept between sessions).
        b.set_options(
            SslOptions::ALL
                | SslOptions::NO_RENEGOTIATION
                | SslOptions::NO_COMPRESSION
                | SslOptions::NO_TICKET
                | SslOptions::CIPHER_SERVER_PREFERENCE,
        );
        b.set_session_cache_mode(SslSessionCacheMode::OFF);
        // Idle connections (a phone generating its key) hold no record buffers.
        b.set_mode(SslMode::RELEASE_BUFFERS);
        let mut certs = chain.iter();
        if let Some(first) = certs.next() {
            let first = X509::from_der(first)?;
            b.set_certificate(&first)?;
        }
        for der in certs {
            b.add_extra_chain_cert(X509::from_der(der)?)?;
        }
        b.set_private_key(&key)?;
        b.check_private_key()?;
        Ok(Some(b.build()))
    }

    /// Serves one TCP connection accepted on a legacy listener: the driver's socket options,
    /// the OpenSSL handshake within the same deadline, then the driver's loop.
    pub(crate) async fn serve(
        shared: Arc<Shared>,
        tcp: TcpStream,
        peer: SocketAddr,
        admission: Admission,
    ) {
        if !driver::prepare(&shared, &tcp, peer) {
            return;
        }
        let Some(context) = shared.legacy_tls() else {
            // bind refuses the listener without an RSA key, and a reload keeps the old one.
            warn!(%peer, "legacy TLS: no RSA CAPF certificate");
            return;
        };
        let stream = match Ssl::new(&context).and_then(|ssl| SslStream::new(ssl, tcp)) {
            Ok(stream) => stream,
            Err(e) => {
                warn!(%peer, error = %e, "legacy TLS connection");
                return;
            }
        };
        let mut conn = Box::new(LegacyConnection { stream });
        match tokio::time::timeout(
            driver::handshake_timeout(&shared),
            Pin::new(&mut conn.stream).accept(),
        )
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                info!(%peer, error = %e, "legacy TLS handshake failed");
                return;
            }
            Err(_) => {
                info!(%peer, "legacy TLS handshake timed out");
                return;
            }
        }
        let ssl = conn.stream.ssl();
        info!(
            %peer,
            version = ssl.version_str(),
            cipher = ssl.current_cipher().map_or("?", |c| c.name()),
            "legacy TLS"
        );
        driver::start(shared, conn, admission, peer).await;
    }

    /// A phone's connection on the legacy listener, after its handshake.
    struct LegacyConnection {
        stream: SslStream<TcpStream>,
    }

    impl Transport for LegacyConnection {
        fn read(&mut self) -> impl Future<Output = io::Result<Option<Vec<u8>>>> {
            // Cancel-safe: a poll that returns Pending has taken nothing (OpenSSL keeps a
            // partial record itself), and the buffer lives only within one poll, so an idle
            // session's future holds none.
            std::future::poll_fn(|cx| {
                let mut chunk = [0u8; READ_CHUNK];
                let mut buf = ReadBuf::new(&mut chunk);
                match Pin::new(&mut self.stream).poll_read(cx, &mut buf) {
                    Poll::Ready(Ok(())) if buf.filled().is_empty() => Poll::Ready(Ok(None)),
                    Poll::Ready(Ok(())) => Poll::Ready(Ok(Some(buf.filled().to_vec()))),
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                    Poll::Pending => Poll::Pending,
                }
            })
        }

        // One SSL_write, one record (spec rule T9; messages are at most 16 kB).
        async fn write(&mut self, message: &[u8]) -> io::Result<()> {
            self.stream.write_all(message).await?;
            self.stream.flush().await
        }

        fn shutdown(&mut self) -> impl Future<Output = io::Result<()>> {
            // close_notify, then the TCP sending side.
            self.stream.shutdown()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use std::path::{Path, PathBuf};

    use crate::{CapfFiles, Config, ConfigFile, Error};

    fn config(legacy: &[&str]) -> Config {
        let mut c = Config::new("capf.pem", "capf.key");
        c.legacy_tls_listen = legacy.iter().map(|a| a.parse().unwrap()).collect();
        c
    }

    #[test]
    fn off_by_default_in_the_configuration_and_its_file() {
        assert!(Config::new("a", "b").legacy_tls_listen.is_empty());
        let files = CapfFiles {
            certificate: PathBuf::from("d/capf.pem"),
            key: PathBuf::from("d/capf.key"),
            created: false,
        };
        let file = ConfigFile::parse("", Path::new("capfd.toml")).unwrap();
        let c = file.server_config(Path::new("d"), &files).unwrap();
        assert!(c.legacy_tls_listen.is_empty());
        let file = ConfigFile::parse(
            "legacy_tls_listen = [\"0.0.0.0:3805\"]\n",
            Path::new("capfd.toml"),
        )
        .unwrap();
        let c = file.server_config(Path::new("d"), &files).unwrap();
        assert_eq!(c.legacy_tls_listen, ["0.0.0.0:3805".parse().unwrap()]);
    }

    #[cfg(not(feature = "legacy-tls"))]
    #[test]
    fn a_build_without_the_feature_refuses_it_by_name() {
        config(&[]).validate().unwrap();
        let err = config(&["127.0.0.1:3805"]).validate().unwrap_err();
        assert!(matches!(err, Error::LegacyTlsNotBuilt), "{err:?}");
        assert!(err.to_string().contains("`legacy-tls` feature"), "{err}");
    }

    #[cfg(feature = "legacy-tls")]
    #[test]
    fn its_addresses_are_distinct_and_not_the_rustls_listeners() {
        config(&["127.0.0.1:3805", "[::]:3805"]).validate().unwrap();
        // Port 0 may repeat.
        config(&["127.0.0.1:0", "127.0.0.1:0"]).validate().unwrap();
        let refused = |c: Config| match c.validate() {
            Err(e @ Error::Config { .. }) => e.to_string(),
            other => panic!("{other:?}"),
        };
        let twice = refused(config(&["127.0.0.1:3805", "127.0.0.1:3805"]));
        assert!(
            twice.contains("legacy_tls_listen = 127.0.0.1:3805 twice"),
            "{twice}"
        );
        let main = refused(config(&["0.0.0.0:3804"]));
        assert!(main.contains("also in listen"), "{main}");
        let many: Vec<String> = (0..65).map(|p| format!("127.0.0.1:{}", 4000 + p)).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(refused(config(&many)).contains("0 to 64 addresses"));
    }

    #[cfg(feature = "legacy-tls")]
    #[test]
    fn an_rsa_capf_identity_gets_a_context_and_an_ec_one_none() {
        use capf_lsc::{Curve, KeySpec, RsaBits};
        let (rsa, _) = crate::identity::fixture("legacy-rsa", KeySpec::Rsa(RsaBits::B2048));
        assert!(rsa.legacy_tls.is_some());
        let (ec, _) = crate::identity::fixture("legacy-ec", KeySpec::Ec(Curve::P256));
        assert!(ec.legacy_tls.is_none());
    }
}
