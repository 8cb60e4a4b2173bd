//! TLS over one phone's TCP connection with rustls' unbuffered API, so the connection owns its
//! buffers and frees them while idle.
//!
//! A phone generating its key keeps its connection open for minutes with nothing in flight;
//! with thousands of them (issue 5: 10,000 at <= 10 kB each) the 4 KiB read buffer that a
//! buffered `rustls::ServerConnection` keeps for good, plus a driver's own read buffer, would be
//! most of each connection's memory. Here ciphertext is read into a stack buffer, kept only
//! while it holds a partial record, and output exists only until the socket takes it.
//!
//! Every `async fn` here is cancel-safe: its only await points are socket readiness, and all
//! progress is kept in the struct, so the driver's `select!` can drop a read to run a timer.

use std::io;

use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, InsufficientSizeError, UnbufferedStatus,
};
use tokio::net::TcpStream;

/// Bytes read from the socket per readiness event (on the stack, not kept).
const READ_CHUNK: usize = 4096;

/// The most ciphertext held while waiting for the rest of a message: rustls joins a handshake
/// message of up to 64 KiB across records in this buffer; past this the peer is misbehaving.
const MAX_INCOMING: usize = 0x1_0000 + READ_CHUNK;

/// One server-side TLS connection over TCP.
pub(crate) struct TlsConnection {
    tcp: TcpStream,
    conn: UnbufferedServerConnection,
    /// Ciphertext received and not yet processed (a partial record); empty and unallocated
    /// between messages.
    incoming: Vec<u8>,
    /// TLS bytes to send, from `sent` on; unallocated once sent.
    outgoing: Vec<u8>,
    sent: usize,
    /// Application data decrypted and not yet handed out.
    plaintext: Vec<u8>,
    /// The phone sent close_notify or closed TCP.
    peer_closed: bool,
}

/// What [`TlsConnection::process`] does when the connection may send application data.
enum Output<'a> {
    Nothing,
    Data(&'a [u8]),
    CloseNotify,
}

impl TlsConnection {
    pub(crate) fn new(tcp: TcpStream, conn: UnbufferedServerConnection) -> Self {
        TlsConnection {
            tcp,
            conn,
            incoming: Vec::new(),
            outgoing: Vec::new(),
            sent: 0,
            plaintext: Vec::new(),
            peer_closed: false,
        }
    }

    /// Runs the TLS handshake to its end. What rustls has to send once it is over (TLS 1.3
    /// session tickets) stays queued and goes out with the first message, in one send
    /// (issue 19); every read flushes first, so nothing waits on the phone unsent.
    pub(crate) async fn handshake(&mut self) -> io::Result<()> {
        loop {
            self.process(Output::Nothing)?;
            if !self.conn.is_handshaking() {
                return Ok(());
            }
            self.flush().await?;
            if self.peer_closed {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.read_some().await?;
        }
    }

    /// Whether the handshake resumed an earlier session (no CAPF signature), once it is done.
    pub(crate) fn resumed(&self) -> bool {
        self.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    }

    /// The next application data, or `None` once the phone has closed.
    pub(crate) async fn read(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            self.process(Output::Nothing)?;
            if !self.plaintext.is_empty() {
                return Ok(Some(std::mem::take(&mut self.plaintext)));
            }
            if self.peer_closed {
                return Ok(None);
            }
            // A post-handshake message from rustls (a ticket, a key update) goes first.
            self.flush().await?;
            self.read_some().await?;
        }
    }

    /// Encrypts `message` as application data and sends it.
    pub(crate) async fn write(&mut self, message: &[u8]) -> io::Result<()> {
        self.process(Output::Data(message))?;
        self.flush().await
    }

    /// Sends close_notify and closes the sending side of TCP.
    pub(crate) async fn shutdown(&mut self) -> io::Result<()> {
        self.process(Output::CloseNotify)?;
        self.flush().await?;
        socket2::SockRef::from(&self.tcp).shutdown(std::net::Shutdown::Write)
    }

    /// Feeds what has been received to rustls: decrypted data goes to `plaintext`, TLS output
    /// to `outgoing`, and `send` (if any) is encrypted once sending is allowed.
    fn process(&mut self, mut send: Output<'_>) -> io::Result<()> {
        loop {
            let UnbufferedStatus { mut discard, state } =
                self.conn.process_tls_records(&mut self.incoming);
            let state = state.map_err(invalid_data)?;
            let mut done = false;
            match state {
                ConnectionState::ReadTraffic(mut traffic) => {
                    while let Some(record) = traffic.next_record() {
                        let record = record.map_err(invalid_data)?;
                        discard += record.discard;
                        self.plaintext.extend_from_slice(record.payload);
                    }
                }
                ConnectionState::EncodeTlsData(mut encode) => {
                    append(&mut self.outgoing, |buf| match encode.encode(buf) {
                        Ok(n) => Ok(Ok(n)),
                        Err(EncodeError::InsufficientSize(InsufficientSizeError {
                            required_size,
                        })) => Ok(Err(required_size)),
                        Err(e) => Err(io::Error::other(e)),
                    })?;
                }
                // Queued in `outgoing` for `flush`, which keeps the order.
                ConnectionState::TransmitTlsData(transmit) => transmit.done(),
                ConnectionState::PeerClosed => {
                    self.peer_closed = true;
                    // Sending is still allowed: go on to WriteTraffic if there is something.
                    done = matches!(send, Output::Nothing);
                }
                ConnectionState::Closed => {
                    self.peer_closed = true;
                    if !matches!(send, Output::Nothing) {
                        return Err(io::ErrorKind::BrokenPipe.into());
                    }
                    done = true;
                }
                ConnectionState::WriteTraffic(mut traffic) => {
                    match std::mem::replace(&mut send, Output::Nothing) {
                        Output::Nothing => {}
                        Output::Data(data) => append(&mut self.outgoing, |buf| {
                            encrypted(traffic.encrypt(data, buf))
                        })?,
                        Output::CloseNotify => append(&mut self.outgoing, |buf| {
                            encrypted(traffic.queue_close_notify(buf))
                        })?,
                    }
                    done = true;
                }
                ConnectionState::BlockedHandshake => {
                    if !matches!(send, Output::Nothing) {
                        return Err(invalid_data("application data before the handshake ended"));
                    }
                    done = true;
                }
                // Early data is never enabled in this server's configuration.
                _ => return Err(invalid_data("unexpected TLS state")),
            }
            self.incoming.drain(..discard);
            if self.incoming.is_empty() {
                self.incoming = Vec::new();
            }
            if done {
                return Ok(());
            }
        }
    }

    /// Sends `outgoing`; cancel-safe (what was sent is recorded in `sent`).
    async fn flush(&mut self) -> io::Result<()> {
        while self.sent < self.outgoing.len() {
            self.tcp.writable().await?;
            match self.tcp.try_write(&self.outgoing[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        self.outgoing = Vec::new();
        self.sent = 0;
        Ok(())
    }

    /// Waits for the socket and appends what it has to `incoming`; cancel-safe.
    async fn read_some(&mut self) -> io::Result<()> {
        if self.incoming.len() >= MAX_INCOMING {
            return Err(invalid_data("TLS message too large"));
        }
        loop {
            self.tcp.readable().await?;
            let mut chunk = [0u8; READ_CHUNK];
            match self.tcp.try_read(&mut chunk) {
                Ok(0) => {
                    self.peer_closed = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.incoming.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Grows `out` by what `write` puts at its end; `write` answers `Err(required)` when the room
/// it was given is too small.
fn append(
    out: &mut Vec<u8>,
    mut write: impl FnMut(&mut [u8]) -> io::Result<Result<usize, usize>>,
) -> io::Result<()> {
    let start = out.len();
    let mut room = 256;
    loop {
        out.resize(start + room, 0);
        match write(&mut out[start..]) {
            Ok(Ok(n)) => {
                out.truncate(start + n);
                return Ok(());
            }
            Ok(Err(required)) if required > room => room = required,
            Ok(Err(_)) => {
                out.truncate(start);
                return Err(io::Error::other("TLS output buffer sizing"));
            }
            Err(e) => {
                out.truncate(start);
                return Err(e);
            }
        }
    }
}

fn encrypted(result: Result<usize, EncryptError>) -> io::Result<Result<usize, usize>> {
    match result {
        Ok(n) => Ok(Ok(n)),
        Err(EncryptError::InsufficientSize(InsufficientSizeError { required_size })) => {
            Ok(Err(required_size))
        }
        Err(e) => Err(io::Error::other(e)),
    }
}

fn invalid_data(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use capf_lsc::{KeySpec, certificate_to_der};
    use capf_phone::TlsVersions;
    use rustls::pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::TlsConnection;

    /// The CAPF identity over fixture files, and the phone-side TLS configuration trusting it.
    fn identity(
        test: &str,
        versions: TlsVersions,
    ) -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
        let (identity, issuer) =
            crate::identity::fixture(&format!("tls-{test}"), KeySpec::Ec(capf_lsc::Curve::P256));
        let trust = vec![certificate_to_der(issuer.certificate()).unwrap()];
        let client = capf_phone::client_config_with(&trust, versions).unwrap();
        (identity.tls, client)
    }

    /// A TCP relay that passes the phone's bytes on `piece` bytes at a time, each its own
    /// segment, so TLS records (handshake and application data) arrive in fragments.
    async fn trickle_relay(server: std::net::SocketAddr, piece: usize) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (phone, _) = listener.accept().await.unwrap();
            let upstream = TcpStream::connect(server).await.unwrap();
            phone.set_nodelay(true).unwrap();
            upstream.set_nodelay(true).unwrap();
            let (mut phone_rx, mut phone_tx) = phone.into_split();
            let (mut up_rx, mut up_tx) = upstream.into_split();
            let down = tokio::spawn(async move {
                let _ = tokio::io::copy(&mut up_rx, &mut phone_tx).await;
            });
            let mut buf = [0u8; 1024];
            while let Ok(n) = phone_rx.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                for chunk in buf[..n].chunks(piece) {
                    if up_tx.write_all(chunk).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
            }
            let _ = up_tx.shutdown().await;
            let _ = down.await;
        });
        addr
    }

    /// The phone's side: TLS through tokio-rustls to `addr`.
    async fn phone_tls(
        config: Arc<rustls::ClientConfig>,
        addr: std::net::SocketAddr,
    ) -> tokio_rustls::client::TlsStream<TcpStream> {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::IpAddress(addr.ip().into());
        tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .unwrap()
    }

    /// The server's side of the next connection, before its handshake.
    async fn accept(listener: &TcpListener, config: Arc<rustls::ServerConfig>) -> TlsConnection {
        let (tcp, _) = listener.accept().await.unwrap();
        let conn = rustls::server::UnbufferedServerConnection::new(config).unwrap();
        TlsConnection::new(tcp, conn)
    }

    fn holds_no_buffers(tls: &TlsConnection) -> bool {
        tls.incoming.capacity() == 0
            && tls.outgoing.capacity() == 0
            && tls.plaintext.capacity() == 0
    }

    /// Reads while a 1 ms timer keeps cancelling the read, as the driver's `select!` does.
    async fn read_under_cancellation(tls: &mut TlsConnection) -> std::io::Result<Option<Vec<u8>>> {
        let mut cancelled = 0u32;
        loop {
            tokio::select! {
                read = tls.read() => return read,
                () = tokio::time::sleep(Duration::from_millis(1)) => cancelled += 1,
            }
            assert!(cancelled < 60_000, "no message within a minute");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fragmented_records_and_cancelled_reads_lose_nothing_and_idle_holds_no_buffers() {
        fragments_and_cancellation("fragments-1.3", TlsVersions::Tls13AndTls12).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_same_over_tls_1_2() {
        fragments_and_cancellation("fragments-1.2", TlsVersions::Tls12Only).await;
    }

    async fn fragments_and_cancellation(test: &str, versions: TlsVersions) {
        let (server_config, client_config) = identity(test, versions);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay = trickle_relay(listener.local_addr().unwrap(), 3).await;
        let message: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let sent = message.clone();
        let phone = tokio::spawn(async move {
            let mut tls = phone_tls(client_config, relay).await;
            tls.write_all(&sent).await.unwrap();
            tls.flush().await.unwrap();
            let mut answer = [0u8; 5];
            tls.read_exact(&mut answer).await.unwrap();
            tls.shutdown().await.unwrap();
            answer
        });
        let mut tls = accept(&listener, server_config).await;
        tls.handshake().await.unwrap();
        let expected = match versions {
            TlsVersions::Tls12Only => rustls::ProtocolVersion::TLSv1_2,
            _ => rustls::ProtocolVersion::TLSv1_3,
        };
        assert_eq!(tls.conn.protocol_version(), Some(expected));

        let mut received = Vec::new();
        while received.len() < message.len() {
            let bytes = read_under_cancellation(&mut tls)
                .await
                .unwrap()
                .expect("more data");
            received.extend_from_slice(&bytes);
        }
        assert_eq!(received, message);
        assert!(holds_no_buffers(&tls), "an idle connection holds no buffer");

        tls.write(b"hello").await.unwrap();
        assert!(holds_no_buffers(&tls));
        assert_eq!(&phone.await.unwrap(), b"hello");
        // The phone's close_notify ends the stream.
        assert_eq!(read_under_cancellation(&mut tls).await.unwrap(), None);
        tls.shutdown().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bytes_that_are_not_tls_records_are_an_error() {
        let (server_config, client_config) = identity("not-tls", TlsVersions::default());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let phone = tokio::spawn(async move {
            let (mut tcp, _) = phone_tls(client_config, addr).await.into_inner();
            // A record header with an unknown content type and a length past any record.
            tcp.write_all(&[0x99, 0x03, 0x03, 0xff, 0xff, 0, 0])
                .await
                .unwrap();
            tcp
        });
        let mut tls = accept(&listener, server_config).await;
        tls.handshake().await.unwrap();
        let error = tls.read().await.expect_err("not TLS");
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
        drop(phone.await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_peer_that_hangs_up_in_the_handshake_is_an_error() {
        let (server_config, _) = identity("hang-up", TlsVersions::default());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let phone = tokio::spawn(async move {
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            // The first bytes of a ClientHello record, then nothing.
            tcp.write_all(&[0x16, 0x03, 0x01, 0x00]).await.unwrap();
            tcp.shutdown().await.unwrap();
        });
        let mut tls = accept(&listener, server_config).await;
        let error = tls.handshake().await.expect_err("no handshake");
        assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof);
        phone.await.unwrap();
    }
}
