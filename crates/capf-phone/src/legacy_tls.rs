//! A legacy phone's TLS (feature `legacy-tls`): TLS 1.0 only or TLS 1.1 only, with the
//! AES-CBC-SHA suites the 7900- and 9900-series phones offer, through OpenSSL at security
//! level 0 (rustls has none of them). For testing capfd's legacy listener (issue 15).

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use openssl::ssl::{Ssl, SslContext, SslContextBuilder, SslMethod, SslOptions, SslVerifyMode};
use openssl::x509::X509;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509VerifyFlags;
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

use crate::{Error, TlsVersions};

/// The suites such a phone offers: AES-CBC with SHA-1, ECDHE-RSA or RSA key exchange.
const CIPHERS: &str = "ECDHE-RSA-AES256-SHA:ECDHE-RSA-AES128-SHA:AES256-SHA:AES128-SHA:@SECLEVEL=0";

/// The phone's OpenSSL client for one legacy TLS version.
pub(crate) struct Connector {
    context: SslContext,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector").finish_non_exhaustive()
    }
}

impl Connector {
    /// A client offering only `versions` (a legacy one), accepting a server whose certificate
    /// is one of `trust` (DER) or signed by one of them and valid now, with no host-name check
    /// (spec rule T3) and no client certificate (rule T4), as the rustls phone does.
    pub(crate) fn new(trust: &[Vec<u8>], versions: TlsVersions) -> Result<Option<Self>, Error> {
        let version = match versions {
            TlsVersions::Tls10Only => openssl::ssl::SslVersion::TLS1,
            TlsVersions::Tls11Only => openssl::ssl::SslVersion::TLS1_1,
            TlsVersions::Tls13AndTls12 | TlsVersions::Tls12Only => return Ok(None),
        };
        let mut b = SslContextBuilder::new(SslMethod::tls_client())?;
        b.set_min_proto_version(Some(version))?;
        b.set_max_proto_version(Some(version))?;
        b.set_cipher_list(CIPHERS)?;
        b.set_security_level(0);
        b.set_options(SslOptions::NO_TICKET | SslOptions::NO_COMPRESSION);
        let mut store = X509StoreBuilder::new()?;
        for der in trust {
            store.add_cert(X509::from_der(der)?)?;
        }
        // A trusted CAPF certificate is an anchor even when it is not self-signed.
        store.set_flags(X509VerifyFlags::PARTIAL_CHAIN)?;
        b.set_cert_store(store.build());
        b.set_verify(SslVerifyMode::PEER);
        Ok(Some(Connector { context: b.build() }))
    }

    /// TCP then the TLS handshake to `addr`, each within `timeout`.
    pub(crate) async fn connect(
        &self,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<SslStream<TcpStream>, Error> {
        let failed = |step| move |source| Error::Io { step, source };
        let tcp = crate::connect_tcp(addr, timeout).await?;
        // No SNI and no host name: the CAPF certificate names no host (spec rule T3).
        let mut tls = SslStream::new(Ssl::new(&self.context)?, tcp)?;
        tokio::time::timeout(timeout, Pin::new(&mut tls).connect())
            .await
            .map_err(|_| Error::TimedOut {
                step: "TLS handshake",
            })?
            .map_err(|e| failed("TLS handshake")(std::io::Error::other(e)))?;
        Ok(tls)
    }
}
