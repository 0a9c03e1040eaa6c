//! One principal's certificate and key, swapped in place when renewed, and the
//! rustls configurations that present them and check the other side.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use arc_swap::ArcSwap;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::names::{Principal, dns_name};

/// The crypto every Emporium TLS config uses (aws-lc-rs), whatever other
/// providers are linked in.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .clone()
}

/// A principal's current certificate and key, and the trust anchor.
pub struct Credentials {
    principal: Principal,
    roots: Arc<RootCertStore>,
    current: ArcSwap<Issued>,
}

/// One issued certificate with its key and validity.
struct Issued {
    key: Arc<CertifiedKey>,
    not_before: SystemTime,
    not_after: SystemTime,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Credentials from PEM: the CA's certificate, the principal's certificate and
    /// its private key.
    pub fn new(
        principal: Principal,
        trust_anchor_pem: &str,
        cert_pem: &str,
        key_pem: &str,
    ) -> anyhow::Result<Self> {
        let roots = Arc::new(roots(trust_anchor_pem)?);
        let issued = issued(cert_pem, key_pem)?;
        Ok(Self {
            principal,
            roots,
            current: ArcSwap::from_pointee(issued),
        })
    }

    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// Takes `fresh`'s certificate and key (a renewal) in place of the current
    /// ones.
    pub fn adopt(&self, fresh: Credentials) {
        self.current.store(fresh.current.load_full());
    }

    /// When to renew: two thirds into the current certificate's life.
    pub fn renew_at(&self) -> SystemTime {
        let issued = self.current.load();
        let life = issued
            .not_after
            .duration_since(issued.not_before)
            .unwrap_or_default();
        issued.not_before + life * 2 / 3
    }

    /// A server config presenting these credentials; a client certificate is
    /// checked against the trust anchor when one is sent (which routes require
    /// one is the server's business: see [`crate::Peer`]).
    pub fn server_config(self: &Arc<Self>) -> anyhow::Result<Arc<ServerConfig>> {
        let verifier = WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider())
            .allow_unauthenticated()
            .build()
            .context("client certificate verifier")?;
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .context("TLS versions")?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(Presenting(self.clone())));
        // HTTP/2 for clients that offer it (the gateway's calls to the
        // services), HTTP/1.1 for anyone else.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// A client config presenting these credentials to a server that must prove
    /// to be `service` (its certificate names `dns_name(service)`; the connector
    /// sends that name).
    pub fn client_config(self: &Arc<Self>) -> anyhow::Result<ClientConfig> {
        let config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .context("TLS versions")?
            .with_root_certificates(self.roots.clone())
            .with_client_cert_resolver(Arc::new(Presenting(self.clone())));
        Ok(config)
    }

    /// A client config presenting these credentials to whichever Emporium
    /// service answers (its certificate must chain to the trust anchor and name
    /// some service): for operators' tools that dial an address, not a name.
    pub fn any_service_client_config(self: &Arc<Self>) -> anyhow::Result<ClientConfig> {
        let inner = WebPkiServerVerifier::builder_with_provider(self.roots.clone(), provider())
            .build()
            .context("server certificate verifier")?;
        let config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .context("TLS versions")?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyService(inner)))
            .with_client_cert_resolver(Arc::new(Presenting(self.clone())));
        Ok(config)
    }
}

/// A client config with no certificate of its own that trusts `trust_anchor_pem`:
/// how an instance reaches the registry to get its first certificate.
pub fn bootstrap_client_config(trust_anchor_pem: &str) -> anyhow::Result<ClientConfig> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS versions")?
        .with_root_certificates(roots(trust_anchor_pem)?)
        .with_no_client_auth())
}

/// The name a client sends and checks when it calls `service`.
pub fn server_name(service: &str) -> String {
    dns_name(service)
}

fn roots(trust_anchor_pem: &str) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(trust_anchor_pem.as_bytes()) {
        roots
            .add(cert.context("reading the trust anchor")?)
            .context("adding the trust anchor")?;
    }
    anyhow::ensure!(!roots.is_empty(), "the trust anchor holds no certificate");
    Ok(roots)
}

fn issued(cert_pem: &str, key_pem: &str) -> anyhow::Result<Issued> {
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("reading the certificate")?;
    let leaf = chain.first().context("no certificate")?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| anyhow::anyhow!("parsing the certificate: {e}"))?;
    let validity = parsed.validity();
    let at = |t: &x509_parser::time::ASN1Time| {
        SystemTime::UNIX_EPOCH + Duration::from_secs(t.timestamp().max(0) as u64)
    };
    let (not_before, not_after) = (at(&validity.not_before), at(&validity.not_after));
    Ok(Issued {
        key: Arc::new(certified_key(chain, key_pem)?),
        not_before,
        not_after,
    })
}

/// A certificate chain (leaf first) with its PEM private key, checked to match:
/// what a TLS config presents.
pub fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key_pem: &str,
) -> anyhow::Result<CertifiedKey> {
    anyhow::ensure!(!chain.is_empty(), "no certificate");
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).context("reading the key")?;
    CertifiedKey::from_der(chain, key, &provider()).context("the certificate and key do not match")
}

/// The principal a (verified) peer certificate names by its SPIFFE id.
pub fn principal_of(cert: &CertificateDer<'_>) -> Option<Principal> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    let san = parsed.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|name| match name {
        x509_parser::extensions::GeneralName::URI(uri) => Principal::from_spiffe_id(uri),
        _ => None,
    })
}

/// Presents the current certificate, as a server and as a client.
#[derive(Debug)]
struct Presenting(Arc<Credentials>);

impl ResolvesServerCert for Presenting {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current.load().key.clone())
    }
}

impl ResolvesClientCert for Presenting {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current.load().key.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Accepts any certificate that chains to the trust anchor and names a service.
#[derive(Debug)]
struct AnyService(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyService {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let service = principal_of(end_entity)
            .and_then(|p| p.service_name().map(str::to_owned))
            .ok_or(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName,
            ))?;
        let name = ServerName::try_from(dns_name(&service))
            .map_err(|_| rustls::Error::General("bad service name".into()))?;
        self.0
            .verify_server_cert(end_entity, intermediates, &name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
