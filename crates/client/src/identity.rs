//! This instance's certificate: issued in-process when the process holds the CA
//! (the registry, tests), else by the registry against the service's join
//! token; renewed at two thirds of its life.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use axum::body::Body;
use base64::Engine as _;
use emporium_config::{Common, IdentityMode};
use emporium_contracts::registry::{CERTIFICATES, CertificateGrant, CertificateRequest};
use emporium_identity::{Ca, CaFiles, Credentials, Principal, new_key, public_key_der};
use http_body_util::BodyExt;

use crate::backoff;
use crate::http_client::tls_client;
use crate::registry::authority;

/// How long a starting instance keeps asking for its first certificate.
const FIRST_ISSUE: Duration = Duration::from_secs(60);

/// `service`'s credentials (none when identity is off), retrying for a while
/// when the registry is not up yet.
pub async fn credentials(
    service: &str,
    common: &Common,
) -> anyhow::Result<Option<Arc<Credentials>>> {
    if common.identity.mode == IdentityMode::Off {
        return Ok(None);
    }
    let deadline = tokio::time::Instant::now() + FIRST_ISSUE;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match issue(&Principal::service(service), common).await {
            Ok(credentials) => return Ok(Some(Arc::new(credentials))),
            Err(e) if tokio::time::Instant::now() < deadline && !e.is::<Permanent>() => {
                tracing::debug!(error = format!("{e:#}"), "no certificate yet; asking again");
                tokio::time::sleep(backoff(
                    Duration::from_millis(50),
                    Duration::from_secs(2),
                    attempt,
                ))
                .await;
            }
            Err(e) => return Err(e.context(format!("getting a certificate for {service}"))),
        }
    }
}

/// A refusal that asking again will not change.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Permanent(String);

/// New credentials for `principal`, from the CA here or from the registry.
async fn issue(principal: &Principal, common: &Common) -> anyhow::Result<Credentials> {
    let settings = &common.identity;
    let lifetime = Duration::from_secs(settings.cert_lifetime_s.max(60));
    let anchor_path = settings.trust_anchor_path(&common.data_dir);
    if let Some(key) = &settings.ca_key {
        let ca = Ca::load(&CaFiles {
            cert: anchor_path,
            key: key.clone(),
        })?;
        return ca.mint(principal.clone(), lifetime);
    }
    let Principal::Service(service) = principal else {
        anyhow::bail!("only the CA's holder issues operator certificates");
    };
    let token = settings
        .token(service)
        .map_err(|e| Permanent(e.to_string()))?
        .ok_or_else(|| {
            Permanent(format!(
                "no join token for {service}: set identity.tokens.{service} (EMPORIUM__IDENTITY__TOKENS__{}) or identity.tokens_dir, or identity.mode = \"off\"",
                service.to_uppercase()
            ))
        })?;
    let registry = common
        .registry_url
        .as_deref()
        .ok_or_else(|| Permanent("no registry to ask for a certificate".into()))?;
    let anchor = std::fs::read_to_string(&anchor_path)
        .with_context(|| format!("reading the trust anchor {}", anchor_path.display()))?;
    let key = new_key()?;
    let request = CertificateRequest {
        service: service.clone(),
        public_key: base64::engine::general_purpose::STANDARD.encode(public_key_der(&key)),
        token: token.expose().clone(),
    };
    let client = tls_client(
        emporium_identity::bootstrap_client_config(&anchor)?,
        &emporium_identity::server_name("registry"),
    )?;
    let http_request =
        http::Request::post(format!("https://{}{CERTIFICATES}", authority(registry)))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::to_vec(&request)?))?;
    let response = tokio::time::timeout(Duration::from_secs(5), client.request(http_request))
        .await
        .context("the registry did not answer in time")?
        .context("reaching the registry")?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if status.is_client_error() {
        return Err(Permanent(format!(
            "the registry refused a certificate for {service} ({status}): {}",
            String::from_utf8_lossy(&body)
        ))
        .into());
    }
    anyhow::ensure!(status.is_success(), "the registry answered {status}");
    let grant: CertificateGrant =
        serde_json::from_slice(&body).context("reading the certificate")?;
    Credentials::new(
        principal.clone(),
        &anchor,
        &grant.certificate,
        &key.serialize_pem(),
    )
}

/// Renews `credentials` two thirds into each certificate's life until `stop`;
/// failures are retried every few seconds and logged.
pub async fn renew(
    credentials: Arc<Credentials>,
    common: Common,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let principal = credentials.principal().clone();
    let mut failures = 0;
    loop {
        let wait = if failures == 0 {
            credentials
                .renew_at()
                .duration_since(SystemTime::now())
                .unwrap_or_default()
        } else {
            backoff(Duration::from_secs(1), Duration::from_secs(30), failures)
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        match issue(&principal, &common).await {
            Ok(fresh) => {
                failures = 0;
                // TLS configs present this credentials object: new connections
                // show the new pair from now on.
                credentials.adopt(fresh);
                tracing::info!(%principal, "certificate renewed");
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(%principal, error = format!("{e:#}"), "certificate renewal failed; retrying");
            }
        }
    }
}
