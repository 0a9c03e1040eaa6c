//! The embedded overlay as `kubectl kustomize` renders it, run by `podman kube play`
//! from the image: every Deployment's pod with its security context, the ConfigMap,
//! the claims, the environment and the mounts, and a checkout through the gateway's
//! pod. What podman 4.3 cannot play is adapted here, and only that:
//! - Services are not played: each pod gets a fixed address (`--ip`), and each
//!   Service's name is written in every pod's /etc/hosts (`hostAliases`) with the
//!   address of the pod it selects, so the ConfigMap's `https://registry:8080`
//!   resolves as it would in a cluster.
//! - The `status.podIP` field reference is not supported: the pod's fixed address
//!   is given as the value.
//! - Secrets are made with `podman secret create`, in the shapes podman 4.3's two
//!   readers take: an environment reference reads `{key: base64}`, a volume writes a
//!   Secret's `data` values as they are. A Secret read both ways is given to the
//!   environment as a value.
//! - podman publishes every containerPort on the host: each gets a free port on
//!   127.0.0.1 (the gateway's is the shop's address here).
//! - ServiceAccounts and NetworkPolicies are left out (podman has neither; the
//!   policies are checked by `network_policies_admit_exactly_the_callers_...`).
//!
//! Probes are not run (podman runs them from systemd timers, which this machine
//! lacks). Every object the file names (pods, claims, the ConfigMap, the Secrets)
//! is renamed with a prefix of this run, so nothing of another shop on this
//! machine is touched.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use base64::Engine;
use serde_json::{Value, json};

use super::{Podman, Published, checks_out, free_port, identity_secrets, kind_name, render};

/// What the test removes when it ends: the pods the file made, the volumes podman
/// made for its claims, ConfigMap and Secrets, the Secrets and the network.
struct Played {
    podman: Podman,
    file: tempfile::NamedTempFile,
    volumes: Vec<String>,
    secrets: Vec<String>,
    network: Option<String>,
    /// One per Deployment, as podman names them: `POD-CONTAINER`, the pod
    /// `DEPLOYMENT-pod-0`.
    containers: Vec<String>,
    /// What `podman kube play` printed.
    said: String,
}

impl Played {
    /// Runs a clean-up step, saying so when it fails (a leak would go unseen).
    fn remove(&self, args: &[&str]) {
        let out = self.podman.run(args);
        if !out.status.success() {
            eprintln!(
                "podman {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

impl Drop for Played {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.said.is_empty() {
            for c in &self.containers {
                let state = self.podman.run(&[
                    "inspect",
                    "--format",
                    "{{.State.Status}} {{.State.ExitCode}} {{.State.Error}}",
                    c,
                ]);
                let logs = self.podman.run(&["logs", "--tail", "20", c]);
                eprintln!(
                    "{c} ({}):\n{}{}",
                    String::from_utf8_lossy(&state.stdout).trim(),
                    String::from_utf8_lossy(&logs.stdout),
                    String::from_utf8_lossy(&logs.stderr)
                );
            }
            eprintln!("podman kube play said:\n{}", self.said);
        }
        let file = self.file.path().to_string_lossy().into_owned();
        if !self.said.is_empty() {
            self.remove(&["kube", "down", &file]);
        }
        for v in &self.volumes {
            self.remove(&["volume", "rm", "-f", v]);
        }
        for s in &self.secrets {
            self.remove(&["secret", "rm", s]);
        }
        if let Some(network) = &self.network {
            self.remove(&["network", "rm", "-f", network]);
        }
    }
}

/// The Secrets the Deployments read into their environment and mount as volumes.
fn secret_uses(docs: &[Value]) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut env, mut mounted) = (BTreeSet::new(), BTreeSet::new());
    for d in docs.iter().filter(|d| d["kind"] == "Deployment") {
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

/// Prefixes, in one document, the name of each object in `names` and every
/// reference to one: a claim, a ConfigMap or a Secret as a volume, a Secret or a
/// ConfigMap in the environment. (Container names stay: podman names a pod's
/// container `POD-CONTAINER`.)
fn rename(doc: &mut Value, names: &BTreeSet<String>, prefix: &str) {
    let prefixed = |v: Option<&mut Value>| {
        if let Some(v) = v
            && let Some(name) = v.as_str().filter(|n| names.contains(*n))
        {
            *v = Value::String(format!("{prefix}{name}"));
        }
    };
    prefixed(doc.pointer_mut("/metadata/name"));
    let Some(spec) = doc.pointer_mut("/spec/template/spec") else {
        return;
    };
    for v in spec["volumes"].as_array_mut().into_iter().flatten() {
        prefixed(v.pointer_mut("/persistentVolumeClaim/claimName"));
        prefixed(v.pointer_mut("/configMap/name"));
        prefixed(v.pointer_mut("/secret/secretName"));
    }
    for c in spec["containers"].as_array_mut().into_iter().flatten() {
        for e in c["env"].as_array_mut().into_iter().flatten() {
            prefixed(e.pointer_mut("/valueFrom/secretKeyRef/name"));
            prefixed(e.pointer_mut("/valueFrom/configMapKeyRef/name"));
        }
    }
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
    // Every kind the overlay renders is played or stood in for; a new one must be
    // thought about here.
    let played_kinds = ["ConfigMap", "Deployment", "PersistentVolumeClaim"];
    let left_out = ["Service", "ServiceAccount", "NetworkPolicy"];
    for (kind, name) in docs.iter().map(kind_name) {
        assert!(
            played_kinds.contains(&kind.as_str()) || left_out.contains(&kind.as_str()),
            "the embedded overlay renders a {kind} ({name}), which this test does not play"
        );
    }
    let Some((podman, _)) = Podman::with_image("kube") else {
        return;
    };
    let image = podman.tag();
    let (_data, mut secrets) = identity_secrets();

    // Each Service selects the pods of one Deployment, at the port its callers use
    // (the hostAliases below stand for it: the pod's address, the same port).
    let services: Vec<(String, String)> = docs
        .iter()
        .filter(|d| d["kind"] == "Service")
        .map(|service| {
            let name = kind_name(service).1;
            let selector = service["spec"]["selector"].as_object().expect("a selector");
            let selected: Vec<&Value> = docs
                .iter()
                .filter(|d| d["kind"] == "Deployment")
                .filter(|d| {
                    let labels = &d["spec"]["template"]["metadata"]["labels"];
                    selector.iter().all(|(k, v)| &labels[k] == v)
                })
                .collect();
            assert_eq!(selected.len(), 1, "Service {name} selects one Deployment");
            let containers = selected[0]["spec"]["template"]["spec"]["containers"]
                .as_array()
                .expect("containers");
            for port in service["spec"]["ports"].as_array().expect("ports") {
                let target = &port["targetPort"];
                let container_port = containers
                    .iter()
                    .flat_map(|c| c["ports"].as_array().into_iter().flatten())
                    .find(|p| &p["name"] == target || &p["containerPort"] == target)
                    .map(|p| p["containerPort"].clone());
                assert_eq!(
                    container_port.as_ref(),
                    Some(&port["port"]),
                    "Service {name}: its port is the pod's, as the hosts entry needs"
                );
            }
            (name, kind_name(selected[0]).1)
        })
        .collect();
    docs.retain(|d| !left_out.contains(&kind_name(d).0.as_str()));
    let mut deployments: Vec<String> = docs
        .iter()
        .filter(|d| d["kind"] == "Deployment")
        .map(|d| kind_name(d).1)
        .collect();
    deployments.sort();
    let (env_secrets, mounted_secrets) = secret_uses(&docs);

    let prefix = format!("emporium-test-{}-", std::process::id());
    let names: BTreeSet<String> = docs
        .iter()
        .chain(&secrets)
        .map(|d| kind_name(d).1)
        .collect();
    for d in docs.iter_mut().chain(secrets.iter_mut()) {
        rename(d, &names, &prefix);
    }
    let subnet = podman.free_subnet(150);
    let address: BTreeMap<&str, String> = deployments
        .iter()
        .enumerate()
        .map(|(i, d)| (d.as_str(), format!("{subnet}.{}", 10 + i)))
        .collect();
    let aliases: Vec<Value> = services
        .iter()
        .map(|(service, deployment)| {
            json!({"ip": address[deployment.as_str()], "hostnames": [service]})
        })
        .collect();

    let mut played = Played {
        podman,
        file: tempfile::Builder::new()
            .suffix(".yaml")
            .tempfile()
            .expect("tempfile"),
        volumes: Vec::new(),
        secrets: Vec::new(),
        network: None,
        containers: deployments
            .iter()
            .map(|d| format!("{prefix}{d}-pod-0-{d}"))
            .collect(),
        said: String::new(),
    };
    let network = format!("{prefix}kube");
    played.podman.ok(&[
        "network",
        "create",
        "--disable-dns",
        "--subnet",
        &format!("{subnet}.0/24"),
        &network,
    ]);
    played.network = Some(network.clone());

    for secret in &secrets {
        let name = kind_name(secret).1;
        let original = name.trim_start_matches(&prefix);
        let body = if mounted_secrets.contains(original) {
            let mut plain = secret.clone();
            for v in plain["data"].as_object_mut().expect("data").values_mut() {
                *v = Value::String(decoded(v));
            }
            plain
        } else {
            secret["data"].clone()
        };
        played.podman.ok_with_input(
            &["secret", "create", &name, "-"],
            body.to_string().as_bytes(),
        );
        played.secrets.push(name);
    }
    let made: BTreeSet<&str> = secrets
        .iter()
        .filter_map(|s| s["metadata"]["name"].as_str())
        .map(|n| n.trim_start_matches(&prefix))
        .collect();
    assert!(
        env_secrets.iter().all(|s| made.contains(s.as_str())),
        "every Secret the pods read is made: {env_secrets:?}"
    );

    let mut gateway_port = 0;
    // Deployments last and by name: `--ip` gives addresses to pods in file order.
    docs.sort_by_key(|d| (d["kind"] == "Deployment", kind_name(d).1));
    for d in &mut docs {
        let name = kind_name(d).1;
        if d["kind"] == "PersistentVolumeClaim" {
            played.volumes.push(name);
            continue;
        }
        if d["kind"] != "Deployment" {
            continue;
        }
        let original = name.trim_start_matches(&prefix).to_string();
        let spec = &mut d["spec"]["template"]["spec"];
        spec["hostAliases"] = Value::Array(aliases.clone());
        for c in spec["containers"].as_array_mut().expect("containers") {
            c["image"] = Value::String(image.clone());
            for p in c["ports"].as_array_mut().into_iter().flatten() {
                let port = free_port();
                if original == "gateway" && p["name"] == "http" {
                    gateway_port = port;
                }
                p["hostPort"] = json!(port);
                p["hostIP"] = json!("127.0.0.1");
            }
            for e in c["env"].as_array_mut().into_iter().flatten() {
                let from = e["valueFrom"].clone();
                let value = if from["fieldRef"]["fieldPath"] == "status.podIP" {
                    address[original.as_str()].clone()
                } else if let Some(secret) = from["secretKeyRef"]["name"].as_str()
                    && mounted_secrets.contains(secret.trim_start_matches(&prefix))
                {
                    let key = from["secretKeyRef"]["key"].as_str().expect("key");
                    let made = secrets
                        .iter()
                        .find(|s| kind_name(s).1 == secret)
                        .expect("emporium identity kubernetes makes it");
                    decoded(&made["data"][key])
                } else {
                    continue;
                };
                e.as_object_mut().expect("env").remove("valueFrom");
                e["value"] = Value::String(value);
            }
        }
        for v in spec["volumes"].as_array_mut().into_iter().flatten() {
            for (source, key) in [("secret", "secretName"), ("configMap", "name")] {
                if v[source].is_object() {
                    // podman 4.3 dereferences `optional` without a default...
                    v[source]["optional"] = json!(false);
                    // ...and keeps what it mounts in a volume of the object's name.
                    let volume = v[source][key].as_str().expect("a name").to_string();
                    if !played.volumes.contains(&volume) {
                        played.volumes.push(volume);
                    }
                }
            }
        }
    }
    assert_ne!(gateway_port, 0, "the gateway's pod has an http port");

    let yaml: Vec<String> = docs.iter().map(Value::to_string).collect();
    std::fs::write(played.file.path(), yaml.join("\n---\n")).expect("the file to play");
    let file = played.file.path().to_string_lossy().into_owned();
    let mut args = vec!["kube", "play", "--network", &network];
    for d in &deployments {
        args.extend(["--ip", &address[d.as_str()]]);
    }
    args.push(&file);
    let out = played.podman.run(&args);
    played.said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "podman kube play: {}", played.said);

    let notifications = played.podman.ok(&[
        "volume",
        "inspect",
        "--format",
        "{{.Mountpoint}}",
        &format!("{prefix}notifications-data"),
    ]);
    let shop = Published {
        base: format!("http://127.0.0.1:{gateway_port}"),
        mail: PathBuf::from(notifications.trim()).join("notifications/mail"),
    };
    // A checkout crosses the pods by the Services' names.
    checks_out(&shop, "kube@example.com").await;
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
