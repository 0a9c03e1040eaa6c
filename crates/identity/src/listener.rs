//! A listener that serves mTLS and plain HTTP on one port and says who is on
//! the other end of each connection.
//!
//! The first byte tells them apart (a TLS handshake starts with 0x16): service
//! traffic is TLS, while probes and metrics scrapers may speak plain HTTP to the
//! same port — what each may reach is the server's rule (see `emporium_http`'s
//! guard), not the listener's.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::credentials::principal_of;
use crate::names::Principal;

/// How long a new connection may take to send its first byte and finish a
/// handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections handed over but not yet taken by the server.
const BACKLOG: usize = 1024;

/// Who is calling, as far as the connection (or the in-process transport) shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// A workload or the operator, proven by a certificate from the platform's
    /// CA, or by the runtime hosting both ends in one process.
    Verified(Principal),
    /// TLS without a client certificate.
    Anonymous,
    /// Plain HTTP.
    Plain,
    /// Plain HTTP where the operator turned service identity off: trusted as
    /// everything was before mTLS.
    Trusted,
}

impl Peer {
    /// Whether this peer is one of `services`, or the operator (who holds the
    /// CA and passes every such check), or anyone when identity is off.
    pub fn is_one_of(&self, services: &[&str]) -> bool {
        match self {
            Peer::Trusted | Peer::Verified(Principal::Operator) => true,
            Peer::Verified(Principal::Service(name)) => services.contains(&name.as_str()),
            Peer::Anonymous | Peer::Plain => false,
        }
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Verified(p) => write!(f, "{p}"),
            Peer::Anonymous => f.write_str("anonymous (TLS without a certificate)"),
            Peer::Plain => f.write_str("anonymous (plain HTTP)"),
            Peer::Trusted => f.write_str("unverified (identity off)"),
        }
    }
}

/// The remote end of a connection: its address and who it proved to be.
#[derive(Debug, Clone)]
pub struct Remote {
    pub addr: SocketAddr,
    pub peer: Peer,
}

impl Connected<IncomingStream<'_, Listener>> for Remote {
    fn connect_info(stream: IncomingStream<'_, Listener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// One accepted connection, TLS or not.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// Accepts connections on a TCP listener, sorts TLS from plain, finishes TLS
/// handshakes off the accept loop, and hands each over with its [`Remote`].
pub struct Listener {
    incoming: mpsc::Receiver<(Conn, Remote)>,
    local: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl Listener {
    /// Serves `tcp`; with `tls`, connections that start a TLS handshake get one
    /// (plain ones are served too, as [`Peer::Plain`], or as [`Peer::Trusted`]
    /// when `tls` is `None`: identity off).
    pub fn new(tcp: TcpListener, tls: Option<Arc<ServerConfig>>) -> io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, incoming) = mpsc::channel(BACKLOG);
        let acceptor = tls.map(TlsAcceptor::from);
        let accepting = tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = tx.closed() => return,
                    accepted = tcp.accept() => accepted,
                };
                let (stream, addr) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: wait, don't spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Responses are small: send each at once rather than wait on
                // Nagle's algorithm (against a delayed ACK, ~40 ms a request).
                let _ = stream.set_nodelay(true);
                let tx = tx.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let sorted =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, sort(stream, addr, acceptor)).await;
                    if let Ok(Some(conn)) = sorted {
                        let _ = tx.send(conn).await;
                    }
                });
            }
        });
        Ok(Self {
            incoming,
            local,
            accepting,
        })
    }
}

/// Plain or TLS (handshake done), with who the peer proved to be; `None` when
/// the connection closed or failed its handshake.
async fn sort(
    stream: TcpStream,
    addr: SocketAddr,
    acceptor: Option<TlsAcceptor>,
) -> Option<(Conn, Remote)> {
    let Some(acceptor) = acceptor else {
        let remote = Remote {
            addr,
            peer: Peer::Trusted,
        };
        return Some((Conn::Plain(stream), remote));
    };
    let mut first = [0u8; 1];
    if stream.peek(&mut first).await.ok()? == 0 {
        return None;
    }
    if first[0] != 0x16 {
        let remote = Remote {
            addr,
            peer: Peer::Plain,
        };
        return Some((Conn::Plain(stream), remote));
    }
    let tls = match acceptor.accept(stream).await {
        Ok(tls) => tls,
        Err(e) => {
            // A certificate from another CA, an expired one: refused here, once.
            tracing::warn!(peer = %addr, error = %e, "TLS handshake refused");
            return None;
        }
    };
    let peer = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .map_or(Peer::Anonymous, |cert| {
            principal_of(cert).map_or(Peer::Anonymous, Peer::Verified)
        });
    Some((Conn::Tls(Box::new(tls)), Remote { addr, peer }))
}

impl axum::serve::Listener for Listener {
    type Io = Conn;
    type Addr = Remote;

    async fn accept(&mut self) -> (Conn, Remote) {
        match self.incoming.recv().await {
            Some(conn) => conn,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Remote> {
        Ok(Remote {
            addr: self.local,
            peer: Peer::Plain,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Ca, Credentials, new_key};
    use axum::serve::Listener as _;
    use rustls_pki_types::ServerName;
    use tokio::io::AsyncWriteExt;
    use tokio_rustls::TlsConnector;

    const DAY: Duration = Duration::from_secs(86_400);

    async fn serving(ca: &Ca, service: &str) -> (Listener, SocketAddr) {
        let server = Arc::new(ca.mint(Principal::service(service), DAY).expect("mint"));
        let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = tcp.local_addr().expect("addr");
        let listener = Listener::new(tcp, Some(server.server_config().expect("config")));
        (listener.expect("listener"), addr)
    }

    /// Dials `addr` as `client`, expecting `service`; whether the handshake
    /// succeeded from the client's side.
    async fn dial(client: &Arc<Credentials>, addr: SocketAddr, service: &str) -> bool {
        let connector = TlsConnector::from(Arc::new(client.client_config().expect("config")));
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let name = ServerName::try_from(crate::server_name(service)).expect("name");
        match connector.connect(name, tcp).await {
            Ok(mut tls) => {
                // The server checks the client's certificate after the client
                // thinks the handshake is done: write to see whether it held.
                let _ = tls.write_all(b"GET / HTTP/1.1\r\n\r\n").await;
                true
            }
            Err(_) => false,
        }
    }

    #[tokio::test]
    async fn the_server_learns_the_callers_identity_and_the_caller_the_servers() {
        let ca = Ca::generate().expect("ca");
        let (mut listener, addr) = serving(&ca, "orders").await;
        let cart = Arc::new(ca.mint(Principal::service("cart"), DAY).expect("mint"));
        assert!(dial(&cart, addr, "orders").await);
        let (_, remote) = listener.accept().await;
        assert_eq!(remote.peer, Peer::Verified(Principal::service("cart")));
        // Expecting payments at an orders instance: the client refuses.
        assert!(!dial(&cart, addr, "payments").await);
        // Plain HTTP on the same port is served, as anonymous.
        let mut plain = TcpStream::connect(addr).await.expect("connect");
        plain
            .write_all(b"GET /livez HTTP/1.1\r\n\r\n")
            .await
            .expect("write");
        let (_, remote) = listener.accept().await;
        assert_eq!(remote.peer, Peer::Plain);
    }

    #[tokio::test]
    async fn certificates_from_another_ca_or_out_of_date_are_refused() {
        let ca = Ca::generate().expect("ca");
        let (mut listener, addr) = serving(&ca, "payments").await;
        let stranger_ca = Ca::generate().expect("ca");
        let key = new_key().expect("key");
        let foreign = stranger_ca
            .issue(&Principal::service("orders"), &key, DAY)
            .expect("cert");
        let foreign = Arc::new(
            Credentials::new(
                Principal::service("orders"),
                ca.cert_pem(),
                &foreign,
                &key.serialize_pem(),
            )
            .expect("creds"),
        );
        let key = new_key().expect("key");
        let now = time::OffsetDateTime::now_utc();
        let expired = ca
            .issue_between(
                &Principal::service("orders"),
                &key,
                now - time::Duration::days(2),
                now - time::Duration::days(1),
            )
            .expect("cert");
        let expired = Arc::new(
            Credentials::new(
                Principal::service("orders"),
                ca.cert_pem(),
                &expired,
                &key.serialize_pem(),
            )
            .expect("creds"),
        );
        for (what, client) in [("another CA", foreign), ("expired", expired)] {
            dial(&client, addr, "payments").await;
            let accepted =
                tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
            assert!(accepted.is_err(), "a certificate from {what} was accepted");
        }
    }
}
