//! HTTPS for the test server. `kubectl` (client-go) sends a kubeconfig's credentials
//! only to `https://` servers, so authentication needs TLS. The certificate is a fixed
//! test one (`tls/`, for `127.0.0.1` and `localhost`, signed by a test CA whose key was
//! thrown away): never trust it outside tests. Clients may present a certificate signed
//! by the fixed client CA (`tls/client-ca.crt`, its key thrown away too); the one such
//! certificate, [`CLIENT_CERTIFICATE`], is the user `jane` in the groups `approvers` and
//! `dev` ([`super::authn::user_from_certificate`]).

use std::io;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;

/// The CA that signed the server certificate, PEM; kubeconfigs carry it.
pub const CA_CERTIFICATE: &str = include_str!("../tls/ca.crt");
const SERVER_CERTIFICATE: &str = include_str!("../tls/server.crt");
const SERVER_KEY: &str = include_str!("../tls/server.key");
/// The CA client certificates must be signed by (kube-apiserver's `--client-ca-file`).
pub const CLIENT_CA_CERTIFICATE: &str = include_str!("../tls/client-ca.crt");
/// A client certificate for `CN=jane, O=approvers, O=dev`, PEM, and its key.
pub const CLIENT_CERTIFICATE: &str = include_str!("../tls/client.crt");
pub const CLIENT_KEY: &str = include_str!("../tls/client.key");

/// Who is at the other end of a connection: its address and, when it presented a
/// client certificate the client CA signed, the user the certificate names.
#[derive(Debug, Clone)]
pub struct Peer {
    pub address: std::net::SocketAddr,
    pub certificate_user: Option<super::authn::UserInfo>,
}

/// Client certificates are optional: without one, a request authenticates by token.
fn client_verifier(
    provider: &Arc<tokio_rustls::rustls::crypto::CryptoProvider>,
) -> io::Result<Arc<dyn tokio_rustls::rustls::server::danger::ClientCertVerifier>> {
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(CLIENT_CA_CERTIFICATE.as_bytes()) {
        roots
            .add(certificate.map_err(io::Error::other)?)
            .map_err(io::Error::other)?;
    }
    tokio_rustls::rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::clone(provider),
    )
    .allow_unauthenticated()
    .build()
    .map_err(io::Error::other)
}

fn acceptor() -> io::Result<TlsAcceptor> {
    let certificates = CertificateDer::pem_slice_iter(SERVER_CERTIFICATE.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(io::Error::other)?;
    let key = PrivateKeyDer::from_pem_slice(SERVER_KEY.as_bytes()).map_err(io::Error::other)?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_client_cert_verifier(client_verifier(&provider)?)
        .with_single_cert(certificates, key)
        .map_err(io::Error::other)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A TCP listener whose connections speak TLS; a failed handshake drops that
/// connection and the listener goes on.
#[allow(missing_debug_implementations)]
pub struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl TlsListener {
    pub fn new(tcp: TcpListener) -> io::Result<Self> {
        Ok(Self {
            tcp,
            acceptor: acceptor()?,
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, address)) = self.tcp.accept().await else {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            };
            match self.acceptor.accept(stream).await {
                Ok(tls) => {
                    let certificate_user = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .and_then(|leaf| super::authn::user_from_certificate(leaf));
                    let peer = Peer {
                        address,
                        certificate_user,
                    };
                    return (tls, peer);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "a TLS handshake with the test API server failed")
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr().map(|address| Peer {
            address,
            certificate_user: None,
        })
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// Standard base64 (with padding), for `certificate-authority-data`.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_encoding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn the_test_certificate_loads() {
        assert!(acceptor().is_ok());
    }
}
