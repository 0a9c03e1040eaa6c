//! The platform's certificate authority: one key that signs every workload's
//! short-lived certificate (the registry holds it, as Linkerd's identity service
//! holds its issuer).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber,
};
use time::OffsetDateTime;

use crate::credentials::Credentials;
use crate::names::{Principal, dns_name};

/// How long before "now" a certificate becomes valid: clocks of two hosts differ.
const CLOCK_SKEW: Duration = Duration::from_secs(300);
/// How long the CA itself is valid.
const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The CA: its certificate (the trust anchor everyone checks against) and key.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

/// Where a data folder keeps the CA: `ca.pem` (public) and `ca.key` (mode 0600).
pub struct CaFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CaFiles {
    /// The files in `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            cert: dir.join("ca.pem"),
            key: dir.join("ca.key"),
        }
    }
}

impl Ca {
    /// A new CA with a fresh P-256 key.
    pub fn generate() -> anyhow::Result<Ca> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, "Emporium identity CA");
        name.push(DnType::OrganizationName, "Emporium");
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - CLOCK_SKEW;
        params.not_after = now + CA_LIFETIME;
        params.serial_number = Some(serial()?);
        let cert = params.self_signed(&key)?;
        Ok(Ca {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA from its certificate and key (PEM).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> anyhow::Result<Ca> {
        let key = KeyPair::from_pem(key_pem).context("reading the CA key")?;
        let issuer =
            Issuer::from_ca_cert_pem(cert_pem, key).context("reading the CA certificate")?;
        Ok(Ca {
            issuer,
            cert_pem: cert_pem.to_string(),
        })
    }

    /// Reads the CA from `files`.
    pub fn load(files: &CaFiles) -> anyhow::Result<Ca> {
        let cert = std::fs::read_to_string(&files.cert)
            .with_context(|| format!("reading {}", files.cert.display()))?;
        let key = std::fs::read_to_string(&files.key)
            .with_context(|| format!("reading {}", files.key.display()))?;
        Ca::from_pem(&cert, &key)
    }

    /// Reads the CA from `files`, or makes one and writes it there (the key
    /// readable by its owner only).
    pub fn load_or_create(files: &CaFiles) -> anyhow::Result<Ca> {
        if files.cert.exists() && files.key.exists() {
            return Ca::load(files);
        }
        let ca = Ca::generate()?;
        if let Some(dir) = files.key.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        crate::write_private(&files.key, &ca.key_pem())?;
        std::fs::write(&files.cert, &ca.cert_pem)
            .with_context(|| format!("writing {}", files.cert.display()))?;
        Ok(ca)
    }

    /// The CA's certificate: the trust anchor.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA's private key (PEM). Never log it.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// A certificate for `principal`'s `public_key`, valid from a little before now
    /// for `lifetime`.
    pub fn issue(
        &self,
        principal: &Principal,
        public_key: &impl PublicKeyData,
        lifetime: Duration,
    ) -> anyhow::Result<String> {
        let now = OffsetDateTime::now_utc();
        self.issue_between(principal, public_key, now - CLOCK_SKEW, now + lifetime)
    }

    /// A certificate for `principal`'s `public_key` valid between two instants
    /// (tests make expired and not-yet-valid ones with it).
    pub fn issue_between(
        &self,
        principal: &Principal,
        public_key: &impl PublicKeyData,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> anyhow::Result<String> {
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, principal.to_string());
        params.distinguished_name = name;
        params.subject_alt_names = vec![SanType::URI(principal.spiffe_id().try_into()?)];
        if let Principal::Service(service) = principal {
            params
                .subject_alt_names
                .push(SanType::DnsName(dns_name(service).try_into()?));
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.not_before = not_before;
        params.not_after = not_after;
        params.serial_number = Some(serial()?);
        Ok(params.signed_by(public_key, &self.issuer)?.pem())
    }

    /// A certificate for a public key sent as DER SubjectPublicKeyInfo (what the
    /// registry receives from an instance asking for its certificate).
    pub fn issue_for_spki(
        &self,
        principal: &Principal,
        spki_der: &[u8],
        lifetime: Duration,
    ) -> anyhow::Result<String> {
        let key =
            rcgen::SubjectPublicKeyInfo::from_der(spki_der).context("reading the public key")?;
        self.issue(principal, &key, lifetime)
    }

    /// Fresh credentials for `principal`, issued here (a process that holds the CA
    /// needs no registry to get them).
    pub fn mint(&self, principal: Principal, lifetime: Duration) -> anyhow::Result<Credentials> {
        let key = new_key()?;
        let cert = self.issue(&principal, &key, lifetime)?;
        Credentials::new(principal, &self.cert_pem, &cert, &key.serialize_pem())
    }
}

/// A fresh key pair for a workload certificate.
pub fn new_key() -> anyhow::Result<KeyPair> {
    Ok(KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?)
}

/// A key's public half as DER SubjectPublicKeyInfo (what a certificate request
/// carries).
pub fn public_key_der(key: &KeyPair) -> Vec<u8> {
    key.subject_public_key_info()
}

/// A random positive 16-byte serial number.
fn serial() -> anyhow::Result<SerialNumber> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| anyhow::anyhow!("no randomness"))?;
    bytes[0] &= 0x7f;
    Ok(SerialNumber::from_slice(&bytes))
}
