//! The shop across three hosts: network namespaces made by the test, each with an
//! address of its own on one segment (a bridge in a fourth namespace, a veth pair
//! per host), the services spread over them on those addresses with mTLS between
//! them and the registry on the first. A checkout confirms; a partition between
//! two hosts (iptables DROP inside both) degrades only what depends on the far
//! side, and when it is lifted checkouts confirm again and every invariant holds.
//! All traffic stays inside the namespaces; the test's own requests are sent from
//! a thread that entered the first host's namespace.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::checkout::{self, APPROVE};
use super::{Shop, http};

/// The segment the hosts share; only inside the test's namespaces.
const SUBNET: &str = "10.213.0";
/// What runs where: the registry alone on host 1, then one process per host.
const HOSTS: [&[&str]; 3] = [
    &["gateway", "users", "catalog", "storefront"],
    &["orders", "payments", "cart", "notifications"],
    &["inventory", "search", "reviews"],
];
const REGISTRY_PORT: u16 = 7070;
const GATEWAY_PORT: u16 = 8080;

/// The namespaces of one test, and the processes started in them.
struct Net {
    prefix: String,
    children: Vec<Child>,
}

impl Net {
    fn ns(&self, host: usize) -> String {
        format!("{}-h{host}", self.prefix)
    }

    fn addr(host: usize) -> String {
        format!("{SUBNET}.{host}")
    }

    /// Three hosts and a switch; None (the test skipped) without root or `ip`,
    /// unless the run requires everything.
    fn create() -> Option<Self> {
        let usable = emporium_testkit::servers::running_as_root()
            && Command::new("ip").arg("-V").output().is_ok()
            && Command::new("iptables").arg("-V").output().is_ok();
        if !usable {
            assert!(
                !emporium_testkit::servers::required(),
                "the multi-host test needs root, ip (iproute2) and iptables"
            );
            eprintln!("skipped: the multi-host test needs root, ip and iptables");
            return None;
        }
        let net = Net {
            prefix: format!("emp{}", std::process::id()),
            children: Vec::new(),
        };
        let switch = format!("{}-sw", net.prefix);
        ip(&["netns", "add", &switch]);
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &switch, "link", "set", "br0", "up"]);
        for host in 1..=3 {
            let ns = net.ns(host);
            let port = format!("h{host}");
            ip(&["netns", "add", &ns]);
            ip(&[
                "-n", &ns, "link", "add", "eth0", "type", "veth", "peer", "name", &port, "netns",
                &switch,
            ]);
            ip(&["-n", &switch, "link", "set", &port, "master", "br0", "up"]);
            let cidr = format!("{}/24", Self::addr(host));
            ip(&["-n", &ns, "addr", "add", &cidr, "dev", "eth0"]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        Some(net)
    }

    /// Starts `emporium serve services` inside `host`'s namespace.
    fn serve(&mut self, host: usize, services: &[&str], env: &[(String, String)], logs: &Path) {
        let log = std::fs::File::create(logs.join(format!("h{host}-{}.log", services[0])))
            .expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(host)])
            .arg(env!("CARGO_BIN_EXE_emporium"))
            .args(["serve", &services.join(",")])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("emporium serve in a namespace");
        self.children.push(child);
    }

    /// Drops every packet between hosts `a` and `b`, in both namespaces.
    fn partition(&self, a: usize, b: usize) {
        for (me, other) in [(a, b), (b, a)] {
            let ns = self.ns(me);
            let peer = Self::addr(other);
            for rule in [["INPUT", "-s"], ["OUTPUT", "-d"]] {
                run(
                    "ip",
                    &[
                        "netns", "exec", &ns, "iptables", "-A", rule[0], rule[1], &peer, "-j",
                        "DROP",
                    ],
                );
            }
        }
    }

    fn heal(&self, a: usize, b: usize) {
        for host in [a, b] {
            for chain in ["INPUT", "OUTPUT"] {
                run(
                    "ip",
                    &["netns", "exec", &self.ns(host), "iptables", "-F", chain],
                );
            }
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for child in &mut self.children {
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in (1..=3)
            .map(|h| self.ns(h))
            .chain([format!("{}-sw", self.prefix)])
        {
            let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        }
    }
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().expect(program);
    assert!(
        out.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ip(args: &[&str]) {
    run("ip", args);
}

/// Runs `f` on a thread inside `ns`'s network namespace, with a runtime of its own:
/// every socket it opens is in that namespace.
fn inside<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>> + Send + 'static,
) -> T {
    let path = PathBuf::from("/var/run/netns").join(ns);
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("the namespace");
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f())
    })
    .join()
    .expect("the thread inside the namespace")
}

/// The shop as reached from host 1.
#[derive(Clone)]
struct Hosts {
    base: String,
    mail: PathBuf,
}

impl Shop for Hosts {
    fn base(&self) -> &str {
        &self.base
    }
    fn mail_dir(&self) -> PathBuf {
        self.mail.clone()
    }
}

#[test]
fn the_shop_runs_across_three_hosts_and_a_partition_degrades_only_what_crosses_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs");
    // Dropped after `net` stopped the processes, so it shows whole logs.
    let _logs = Logs(logs.clone());
    let Some(mut net) = Net::create() else { return };
    let identity = dir.path().join("operator").join("identity");
    run(
        env!("CARGO_BIN_EXE_emporium"),
        &["identity", "init", "--out", &identity.to_string_lossy()],
    );
    let registry_url = format!("https://{}:{REGISTRY_PORT}", Net::addr(1));

    let shared = |host: usize| -> Vec<(String, String)> {
        vec![
            (
                "EMPORIUM__DATA_DIR".into(),
                dir.path().join(format!("h{host}")).display().to_string(),
            ),
            ("EMPORIUM__REGISTRY_URL".into(), registry_url.clone()),
            ("EMPORIUM__LOG__FORMAT".into(), "json".into()),
            (
                "EMPORIUM__IDENTITY__TRUST_ANCHOR".into(),
                identity.join("ca.pem").display().to_string(),
            ),
            (
                "EMPORIUM__IDENTITY__TOKENS_DIR".into(),
                identity.join("tokens").display().to_string(),
            ),
            ("MALLOC_MMAP_THRESHOLD_".into(), "1048576".into()),
        ]
    };
    let mut registry = shared(1);
    registry.extend([
        (
            "EMPORIUM__REGISTRY__LISTEN".into(),
            format!("{}:{REGISTRY_PORT}", Net::addr(1)),
        ),
        (
            "EMPORIUM__IDENTITY__CA_KEY".into(),
            identity.join("ca.key").display().to_string(),
        ),
        (
            "EMPORIUM__IDENTITY__BOOTSTRAP_SECRET_FILE".into(),
            identity.join("bootstrap.secret").display().to_string(),
        ),
    ]);
    net.serve(1, &["registry"], &registry, &logs);
    for (i, services) in HOSTS.iter().enumerate() {
        let host = i + 1;
        let mut env = shared(host);
        for s in *services {
            let port = if *s == "gateway" { GATEWAY_PORT } else { 0 };
            env.push((
                format!("EMPORIUM__{}__LISTEN", s.to_uppercase()),
                format!("{}:{port}", Net::addr(host)),
            ));
        }
        env.push((
            "EMPORIUM__GATEWAY__ADMIN_LISTEN".into(),
            format!("{}:0", Net::addr(1)),
        ));
        net.serve(host, services, &env, &logs);
    }
    let shop = Hosts {
        base: format!("http://{}:{GATEWAY_PORT}", Net::addr(1)),
        mail: dir.path().join("h2").join("notifications").join("mail"),
    };
    let h1 = net.ns(1);

    // Across hosts: a checkout confirms (gateway on 1, orders on 2, inventory on 3).
    let s = shop.clone();
    let (shopper, sku) = inside(&h1, move || {
        Box::pin(async move {
            super::until_ready(&s, Duration::from_secs(120)).await;
            let shopper = checkout::shopper(&s, "far@example.com").await;
            let sku = checkout::stocked_sku(&s, 0).await;
            assert_eq!(shopper.add(&s, &sku, 1).await.status(), 200);
            let order = shopper
                .check_out(&s, APPROVE, Duration::from_secs(60))
                .await;
            assert_eq!(order["status"], "CONFIRMED", "{order}");
            (shopper, sku)
        })
    });

    // Hosts 2 and 3 cut off from each other: orders cannot reach inventory.
    net.partition(2, 3);
    let s = shop.clone();
    let (shopper, sku, pending) = inside(&h1, move || {
        Box::pin(async move {
            // What does not cross the cut still works: browsing (host 1), the
            // cart (1 → 2), search (1 → 3).
            for path in [
                "/api/catalog/products?limit=5".to_string(),
                "/api/search?q=cream".to_string(),
                format!("/api/inventory/{sku}"),
            ] {
                let r = http().get(s.at(&path)).send().await.expect("get");
                assert_eq!(r.status(), 200, "{path} during the partition");
            }
            assert_eq!(
                shopper.add(&s, &sku, 1).await.status(),
                200,
                "the cart during the partition"
            );
            // A checkout does not confirm: refused at once, or left to its saga.
            let r = shopper
                .checkout(
                    &s,
                    Some(&checkout::key()),
                    &checkout::body(APPROVE, "Cut Off"),
                )
                .await;
            let status = r.status().as_u16();
            let answer: Value = r.json().await.unwrap_or_default();
            assert!(
                matches!(status, 202 | 503),
                "checkout across the cut: {status} {answer}"
            );
            let pending = (status == 202).then(|| answer["id"].as_str().expect("id").to_string());
            if let Some(id) = &pending {
                tokio::time::sleep(Duration::from_secs(3)).await;
                let order: Value = shopper.order(&s, id).await.json().await.expect("json");
                assert_ne!(
                    order["status"], "CONFIRMED",
                    "confirmed without inventory: {order}"
                );
            }
            (shopper, sku, pending)
        })
    });

    // Healed: the saga caught in the cut finishes one way or the other, and a new
    // checkout confirms.
    net.heal(2, 3);
    let s = shop.clone();
    inside(&h1, move || {
        Box::pin(async move {
            if let Some(id) = pending {
                let order = shopper.settled(&s, &id, Duration::from_secs(120)).await;
                assert!(
                    matches!(order["status"].as_str(), Some("CONFIRMED" | "CANCELLED")),
                    "{order}"
                );
            }
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                // (The cart again: the checkout caught in the cut may have used it.)
                assert_eq!(shopper.add(&s, &sku, 1).await.status(), 200);
                let r = shopper
                    .checkout(
                        &s,
                        Some(&checkout::key()),
                        &checkout::body(APPROVE, "Healed"),
                    )
                    .await;
                if r.status() == 202 {
                    let order: Value = r.json().await.expect("json");
                    let id = order["id"].as_str().expect("id");
                    let order = shopper.settled(&s, id, Duration::from_secs(60)).await;
                    if order["status"] == "CONFIRMED" {
                        break;
                    }
                }
                assert!(
                    Instant::now() < deadline,
                    "checkouts never confirmed again after the partition"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    });

    // Every invariant holds across the three hosts' services.
    let out = Command::new("ip")
        .args(["netns", "exec", &h1])
        .arg(env!("CARGO_BIN_EXE_emporium"))
        .args(["verify", "--registry", &registry_url, "--data-dir"])
        .arg(dir.path().join("operator"))
        .output()
        .expect("emporium verify");
    assert!(
        out.status.success(),
        "emporium verify:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// On a failure, the end of every process's log.
struct Logs(PathBuf);

impl Drop for Logs {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for entry in std::fs::read_dir(&self.0).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!("--- {}", entry.path().display());
            for line in &lines[lines.len().saturating_sub(20)..] {
                eprintln!("{line}");
            }
        }
    }
}
