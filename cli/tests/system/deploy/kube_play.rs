//! The embedded overlay as `kubectl kustomize` renders it, run by `podman kube play`
//! from the image: every Deployment's pod with its security context, the ConfigMap,
//! the claims, the environment and the mounts, and a checkout through the gateway's
//! pod. What podman 4.3 cannot play is adapted here, and only that:
//! - Services are not played: each pod gets a fixed address (`--ip`) and every
//!   Service's name in its /etc/hosts (`hostAliases`), so the ConfigMap's
//!   `https://registry:8080` resolves as it would in a cluster.
//! - The `status.podIP` field reference is not supported: the pod's fixed address
//!   is given as the value.
//! - Secrets are made with `podman secret create`, in the shapes podman 4.3's two
//!   readers take: an environment reference reads `{key: base64}`, a volume writes a
//!   Secret's `data` values as they are. A Secret read both ways is given to the
//!   environment as a value.
//! - podman publishes every containerPort on the host: each gets a free port on
//!   127.0.0.1 (the gateway's is the shop's address here).
//!
//! Probes are not run (podman runs them from systemd timers, which this machine
//! lacks).

use std::collections::BTreeSet;
use std::path::PathBuf;

use base64::Engine;
use serde_json::{Value, json};

use super::{Podman, Published, documents, free_port, kind_name, render};

/// What the test removes when it ends: the pods the file made, their claims'
/// volumes, the Secrets and the network.
struct Played {
    podman: Podman,
    file: tempfile::NamedTempFile,
    volumes: Vec<String>,
    secrets: Vec<String>,
    network: String,
    /// One per Deployment, as podman names them: `NAME-pod-0-NAME`.
    containers: Vec<String>,
}

impl Drop for Played {
    fn drop(&mut self) {
        let file = self.file.path().to_string_lossy().into_owned();
        if std::thread::panicking() {
            for c in &self.containers {
                let logs = self.podman.run(&["logs", "--tail", "20", c]);
                eprintln!("{c}:\n{}", String::from_utf8_lossy(&logs.stdout));
            }
        }
        self.podman.run(&["kube", "down", &file]);
        for v in &self.volumes {
            self.podman.run(&["volume", "rm", "-f", v]);
        }
        for s in &self.secrets {
            self.podman.run(&["secret", "rm", s]);
        }
        self.podman.run(&["network", "rm", "-f", &self.network]);
    }
}

/// What the environment and the volumes of the Deployments read from Secrets.
fn secret_uses(deployments: &[&mut Value]) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut env, mut mounted) = (BTreeSet::new(), BTreeSet::new());
    for d in deployments {
        let spec = &d["spec"]["template"]["spec"];
        for v in spec["volumes"].as_array().into_iter().flatten() {
            if let Some(name) = v["secret"]["secretName"].as_str() {
                mounted.insert(name.to_string());
            }
        }
        for c in spec["containers"].as_array().into_iter().flatten() {
            for e in c["env"].as_array().into_iter().flatten() {
                if let Some(name) = e["valueFrom"]["secretKeyRef"]["name"].as_str() {
                    env.insert(name.to_string());
                }
            }
        }
    }
    (env, mounted)
}

fn decoded(value: &Value) -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.as_str().expect("a Secret's data value is a string"))
        .expect("base64");
    String::from_utf8(bytes).expect("utf-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_overlay_runs_under_podman_kube_play() {
    let Some(mut docs) = render("embedded") else {
        return;
    };
    // Every kind the overlay renders is played or adapted above; a new one must be
    // thought about here.
    let kinds: BTreeSet<String> = docs.iter().map(|d| kind_name(d).0).collect();
    let played = ["ConfigMap", "Deployment", "PersistentVolumeClaim"];
    let adapted = ["Service", "ServiceAccount", "NetworkPolicy"];
    for kind in &kinds {
        assert!(
            played.contains(&kind.as_str()) || adapted.contains(&kind.as_str()),
            "the embedded overlay renders a {kind}, which this test does not play"
        );
    }
    let Some((podman, _)) = Podman::with_image("kube") else {
        return;
    };
    let image = podman.tag();
    let data = tempfile::tempdir().expect("tempdir");
    let made = std::process::Command::new(env!("CARGO_BIN_EXE_emporium"))
        .args(["identity", "kubernetes", "--data-dir"])
        .arg(data.path())
        .output()
        .expect("emporium identity kubernetes");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let secrets = documents(&String::from_utf8_lossy(&made.stdout));

    let pid = std::process::id();
    let subnet = format!("10.89.{}", 150 + pid % 50);
    let mut played = Played {
        podman,
        file: tempfile::Builder::new()
            .suffix(".yaml")
            .tempfile()
            .expect("tempfile"),
        volumes: Vec::new(),
        secrets: Vec::new(),
        network: format!("emporium-test-kube-{pid}"),
        containers: Vec::new(),
    };
    played.podman.ok(&[
        "network",
        "create",
        "--disable-dns",
        "--subnet",
        &format!("{subnet}.0/24"),
        &played.network,
    ]);

    let mut names: Vec<String> = docs
        .iter()
        .filter(|d| d["kind"] == "Deployment")
        .map(|d| kind_name(d).1)
        .collect();
    names.sort();
    played.containers = names.iter().map(|n| format!("{n}-pod-0-{n}")).collect();
    let address = |name: &str| {
        let i = names.iter().position(|n| n == name).expect("a Deployment");
        format!("{subnet}.{}", 10 + i)
    };
    let aliases: Vec<Value> = names
        .iter()
        .map(|n| json!({"ip": address(n), "hostnames": [n]}))
        .collect();
    let mut gateway_port = 0;
    docs.retain(|d| !adapted.contains(&kind_name(d).0.as_str()));
    // Deployments last and by name: `--ip` gives addresses to pods in file order.
    docs.sort_by_key(|d| (d["kind"] == "Deployment", kind_name(d).1));
    for d in docs
        .iter_mut()
        .filter(|d| d["kind"] == "PersistentVolumeClaim")
    {
        played.volumes.push(kind_name(d).1);
    }
    let mut deployments: Vec<&mut Value> = docs
        .iter_mut()
        .filter(|d| d["kind"] == "Deployment")
        .collect();
    let (env_secrets, mounted_secrets) = secret_uses(&deployments);

    for secret in &secrets {
        let name = kind_name(secret).1;
        let body = if mounted_secrets.contains(&name) {
            let mut plain = secret.clone();
            for (_, v) in plain["data"].as_object_mut().expect("data").iter_mut() {
                *v = Value::String(decoded(v));
            }
            plain
        } else {
            secret["data"].clone()
        };
        let mut create = std::process::Command::new("podman")
            .env("CONTAINERS_CONF", &played.podman.conf)
            .args(["secret", "create", &name, "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("podman secret create");
        std::io::Write::write_all(
            create.stdin.as_mut().expect("stdin"),
            body.to_string().as_bytes(),
        )
        .expect("the secret");
        drop(create.stdin.take());
        assert!(create.wait().expect("podman").success(), "secret {name}");
        played.secrets.push(name);
    }

    for d in deployments.iter_mut() {
        let name = kind_name(d).1;
        let spec = &mut d["spec"]["template"]["spec"];
        spec["hostAliases"] = Value::Array(aliases.clone());
        for c in spec["containers"].as_array_mut().expect("containers") {
            c["image"] = Value::String(image.clone());
            for p in c["ports"].as_array_mut().into_iter().flatten() {
                let port = free_port();
                if name == "gateway" && p["name"] == "http" {
                    gateway_port = port;
                }
                p["hostPort"] = json!(port);
                p["hostIP"] = json!("127.0.0.1");
            }
            for e in c["env"].as_array_mut().into_iter().flatten() {
                let from = e["valueFrom"].clone();
                let value = if from["fieldRef"]["fieldPath"] == "status.podIP" {
                    address(&name)
                } else if let Some(secret) = from["secretKeyRef"]["name"].as_str()
                    && mounted_secrets.contains(secret)
                {
                    let key = &from["secretKeyRef"]["key"];
                    let made = secrets
                        .iter()
                        .find(|s| kind_name(s).1 == secret)
                        .expect("emporium identity kubernetes makes it");
                    decoded(&made["data"][key.as_str().expect("key")])
                } else {
                    continue;
                };
                e.as_object_mut().expect("env").remove("valueFrom");
                e["value"] = Value::String(value);
            }
        }
        // podman 4.3 dereferences `optional` without a default.
        for v in spec["volumes"].as_array_mut().into_iter().flatten() {
            // podman keeps what it mounts from a Secret or a ConfigMap in a volume of
            // that name.
            for (source, name) in [("secret", "secretName"), ("configMap", "name")] {
                if v[source].is_object() {
                    v[source]["optional"] = json!(false);
                    let volume = v[source][name].as_str().unwrap_or_default().to_string();
                    if !played.volumes.contains(&volume) {
                        played.volumes.push(volume);
                    }
                }
            }
        }
    }
    assert!(
        env_secrets.iter().all(|s| played.secrets.contains(s)),
        "every Secret the pods read is made: {env_secrets:?}"
    );
    assert_ne!(gateway_port, 0, "the gateway's pod has an http port");

    let yaml: Vec<String> = docs.iter().map(Value::to_string).collect();
    std::fs::write(played.file.path(), yaml.join("\n---\n")).expect("the file to play");
    let mut args = vec!["kube", "play", "--network", &played.network];
    let ips: Vec<String> = names.iter().map(|n| address(n)).collect();
    for ip in &ips {
        args.extend(["--ip", ip]);
    }
    let file = played.file.path().to_string_lossy().into_owned();
    args.push(&file);
    played.podman.ok(&args);

    let notifications = played.podman.ok(&[
        "volume",
        "inspect",
        "--format",
        "{{.Mountpoint}}",
        "notifications-data",
    ]);
    let shop = Published {
        base: format!("http://127.0.0.1:{gateway_port}"),
        mail: PathBuf::from(notifications.trim()).join("notifications/mail"),
    };
    crate::until_ready(&shop, std::time::Duration::from_secs(180)).await;
    // A checkout crosses the pods by the Services' names: gateway → orders → cart,
    // inventory, payments, over mTLS with the certificates the registry issued.
    let checkout = crate::checkout::shopper(&shop, "kube@example.com").await;
    let sku = crate::checkout::stocked_sku(&shop, 0).await;
    assert_eq!(checkout.add(&shop, &sku, 1).await.status(), 200);
    let order = checkout
        .check_out(
            &shop,
            crate::checkout::APPROVE,
            std::time::Duration::from_secs(60),
        )
        .await;
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    // Each pod's container as its manifest says: the image's user, a read-only root.
    for container in &played.containers {
        let inspect = played.podman.ok(&[
            "inspect",
            "--format",
            "{{.Config.User}} {{.HostConfig.ReadonlyRootfs}}",
            container,
        ]);
        assert_eq!(inspect.trim(), "65532:65532 true", "{container}");
    }
}
