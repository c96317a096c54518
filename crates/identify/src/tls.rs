//! TLS in inspection mode: rustls (ring provider) with a verifier that accepts any certificate
//! chain and signature, because the point is to see what the server presents, not to trust it.
//! Nothing learnt through such a session is treated as authenticated.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use jiff::Timestamp;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::x509::{self, CertInfo};

/// What a TLS handshake showed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct TlsInfo {
    /// Protocol version (`TLSv1.3`).
    pub version: String,
    /// Negotiated cipher suite.
    pub cipher: String,
    /// Negotiated ALPN protocol.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpn: Option<String>,
    /// The command that upgraded a cleartext session (`STARTTLS`, `STLS`, `AUTH TLS`), when
    /// TLS was not implicit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starttls: Option<String>,
    /// Certificates the server sent.
    pub chain_length: usize,
    /// The server's (leaf) certificate, when it could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertInfo>,
    /// Why the leaf certificate could not be read (a malformed or hostile certificate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_error: Option<String>,
    /// The leaf certificate's validity has ended.
    pub expired: bool,
    /// Whole days until the leaf certificate expires (negative: days since).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<i64>,
}

#[derive(Debug)]
struct Inspect(Vec<SignatureScheme>);

impl ServerCertVerifier for Inspect {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.clone()
    }
}

/// The inspection client configuration (one per process).
pub fn config() -> Result<Arc<ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let schemes = provider.signature_verification_algorithms.supported_schemes();
    let mut cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Inspect(schemes)))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    cfg.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(cfg))
}

/// A TCP stream that keeps the first bytes it reads (so that a failed handshake still shows
/// what the server said: an SSH banner on 443) and refuses to read more than a limit.
pub struct Recorder {
    inner: TcpStream,
    seen: Arc<Mutex<Vec<u8>>>,
    total: usize,
    limit: usize,
}

/// How many bytes a [`Recorder`] keeps.
const KEEP: usize = 4096;

impl Recorder {
    /// Wraps a stream; `limit` bounds the bytes read in all.
    pub fn new(inner: TcpStream, limit: usize) -> (Recorder, Arc<Mutex<Vec<u8>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        (Recorder { inner, seen: Arc::clone(&seen), total: 0, limit }, seen)
    }
}

impl AsyncRead for Recorder {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.total >= self.limit {
            return Poll::Ready(Err(io::Error::other("byte limit reached")));
        }
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &res {
            let new = &buf.filled()[before..];
            let n = new.len();
            if let Ok(mut seen) = self.seen.lock()
                && seen.len() < KEEP
            {
                let take = n.min(KEEP - seen.len());
                seen.extend_from_slice(&new[..take]);
            }
            self.total += n;
        }
        res
    }
}

impl AsyncWrite for Recorder {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A TLS session over a recorded TCP stream.
pub type Stream = tokio_rustls::client::TlsStream<Recorder>;

/// Why a handshake failed, and what the server had sent.
pub struct Failed {
    /// The error, in words.
    pub reason: String,
    /// The first bytes the server sent.
    pub seen: Vec<u8>,
}

/// Runs a handshake within `wait`.
pub async fn handshake(
    cfg: &Arc<ClientConfig>,
    tcp: TcpStream,
    name: ServerName<'static>,
    wait: std::time::Duration,
    limit: usize,
    now: Timestamp,
) -> Result<(Stream, TlsInfo), Failed> {
    let (rec, seen) = Recorder::new(tcp, limit);
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(cfg));
    let res = tokio::time::timeout(wait, connector.connect(name, rec)).await;
    let taken = || seen.lock().map(|s| s.clone()).unwrap_or_default();
    match res {
        Err(_) => Err(Failed { reason: "TLS handshake timed out".into(), seen: taken() }),
        Ok(Err(e)) => Err(Failed { reason: format!("TLS handshake failed: {e}"), seen: taken() }),
        Ok(Ok(stream)) => {
            let info = info(stream.get_ref().1, now);
            Ok((stream, info))
        }
    }
}

fn info(conn: &rustls::ClientConnection, now: Timestamp) -> TlsInfo {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
        Some(v) => format!("{v:?}"),
        None => "unknown".to_string(),
    };
    let cipher = conn.negotiated_cipher_suite().map_or_else(String::new, |s| format!("{:?}", s.suite()));
    let alpn = conn.alpn_protocol().map(|a| crate::clean(&String::from_utf8_lossy(a)));
    let certs = conn.peer_certificates().unwrap_or(&[]);
    let (certificate, certificate_error) = match certs.first().map(|c| x509::read(c.as_ref())) {
        Some(Ok(c)) => (Some(clean_cert(c)), None),
        Some(Err(e)) => (None, Some(crate::clean(&e.to_string()))),
        None => (None, None),
    };
    let expires_in_days =
        certificate.as_ref().map(|c| c.not_after.as_second().saturating_sub(now.as_second()) / 86_400);
    TlsInfo {
        version,
        cipher,
        alpn,
        starttls: None,
        chain_length: certs.len(),
        expired: certificate.as_ref().is_some_and(|c| c.not_after < now),
        certificate_error,
        expires_in_days,
        certificate,
    }
}

fn clean_cert(mut c: CertInfo) -> CertInfo {
    c.subject = crate::clean(&c.subject);
    c.issuer = crate::clean(&c.issuer);
    c.common_name = c.common_name.map(|s| crate::clean(&s));
    c.sans = c.sans.iter().take(64).map(|s| crate::clean(s)).collect();
    c
}
