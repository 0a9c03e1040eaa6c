//! The shop's identity material for deployments beyond `emporium up`:
//!
//! - `emporium identity kubernetes`: Kubernetes Secrets for `deploy/k8s` — the CA key
//!   and the bootstrap secret for the registry alone, the CA certificate (the trust
//!   anchor) for every pod, and one join token per service, each in a Secret of its
//!   own so that a service's pods can read only theirs. The CA is the one `emporium
//!   up` keeps in the data folder, made there on first use.
//! - `emporium identity init --out DIR`: the same as files — `ca.pem`, `ca.key`,
//!   `bootstrap.secret` and `tokens/<service>` — for `identity.tokens_dir` and
//!   `identity.bootstrap_secret_file` (compose's `identity` container).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::services::Service;

/// The Secrets, as a YAML stream (one JSON document each) for `kubectl apply -f -`.
pub fn kubernetes(data_dir: Option<PathBuf>) -> anyhow::Result<String> {
    let prepared = crate::operator::prepare(&crate::running::data_dir(data_dir))?;
    let anchor = std::fs::read_to_string(&prepared.ca_cert)?;
    let ca_key = std::fs::read_to_string(&prepared.ca_key)?;
    let mut secrets = vec![
        secret(
            "emporium-ca",
            "registry",
            &[
                ("ca.key", ca_key.as_str()),
                ("bootstrap-secret", prepared.secret.as_str()),
            ],
        ),
        secret("emporium-trust-anchor", "", &[("ca.pem", anchor.as_str())]),
    ];
    for service in Service::BEHIND_REGISTRY {
        let token = prepared.token(service.name());
        secrets.push(secret(
            &format!("emporium-token-{}", service.name()),
            service.name(),
            &[("token", token.as_str())],
        ));
    }
    let mut out = String::from(
        "# Made by `emporium identity kubernetes`: apply with `kubectl apply -f -`, keep out of git.\n",
    );
    for s in secrets {
        out.push_str("---\n");
        out.push_str(&serde_json::to_string_pretty(&s)?);
        out.push('\n');
    }
    Ok(out)
}

/// Makes (or keeps) the CA and the bootstrap secret in `out`, and writes every
/// service's join token to `out/tokens/<service>`.
pub fn init(out: &Path) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let prepared = crate::operator::prepare_in(out)?;
    let tokens = out.join("tokens");
    std::fs::create_dir_all(&tokens).with_context(|| format!("creating {}", tokens.display()))?;
    for service in Service::BEHIND_REGISTRY {
        let token = prepared.token(service.name());
        let file = tokens.join(service.name());
        emporium_identity::write_private(&file, &token)
            .with_context(|| format!("writing {}", file.display()))?;
    }
    println!(
        "identity in {}: ca.pem, ca.key, bootstrap.secret, tokens/",
        out.display()
    );
    Ok(())
}

fn secret(name: &str, service: &str, data: &[(&str, &str)]) -> Value {
    let b64 = base64::engine::general_purpose::STANDARD;
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(b64.encode(v))))
        .collect();
    let mut labels = serde_json::Map::new();
    labels.insert("app.kubernetes.io/part-of".into(), json!("emporium"));
    if !service.is_empty() {
        labels.insert("app.kubernetes.io/name".into(), json!(service));
    }
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": name, "labels": labels },
        "type": "Opaque",
        "data": data,
    })
}
