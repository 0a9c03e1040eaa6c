//! Real PostgreSQL and NATS JetStream servers for tests: one of each per test that
//! asks, on free loopback ports, with their data in a temporary folder, stopped by
//! PID when dropped (a failing test too). Nothing is mocked.
//!
//! The binaries come from Debian's packages (`postgresql`, `nats-server`);
//! `scripts/test` installs them. Without them [`Postgres::start`] and
//! [`Nats::start`] return what is missing; [`required`] tells a test whether that is
//! a failure (under `scripts/test` and in CI) or a reason to skip (a bare
//! `cargo test` on a machine without them).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Set by `scripts/test` (and implied by `CI`): a missing server fails the test.
pub const REQUIRE_ENV: &str = "EMPORIUM_REQUIRE_BACKENDS";

/// True when tests must have PostgreSQL and NATS rather than skip without them.
pub fn required() -> bool {
    std::env::var_os(REQUIRE_ENV).is_some() || std::env::var_os("CI").is_some()
}

/// A server that could not start, and what would fix it.
#[derive(Debug)]
pub struct Unavailable(pub String);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A free TCP port on 127.0.0.1 (free when asked; servers bind it right after).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Whether this process runs as root (its `/proc/self` belongs to the effective user).
pub fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A PostgreSQL server of its own.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl Postgres {
    /// initdb + start; a few seconds.
    pub fn start() -> Result<Self, Unavailable> {
        let bin = postgres_bin().ok_or_else(|| {
            Unavailable(
                "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): \
                 run scripts/test, or apt-get install postgresql"
                    .into(),
            )
        })?;
        let as_postgres = running_as_root();
        if as_postgres && which("runuser").is_none() {
            return Err(Unavailable(
                "running as root needs runuser (util-linux) to start PostgreSQL as `postgres`"
                    .into(),
            ));
        }
        let dir = tempfile::Builder::new()
            .prefix("emporium-pg-")
            .tempdir()
            .map_err(|e| Unavailable(format!("temp dir: {e}")))?;
        let mut pg = Self {
            dir,
            bin,
            port: free_port(),
            as_postgres,
        };
        if as_postgres {
            // The server runs as `postgres`: it must reach and own its folder.
            std::fs::set_permissions(
                pg.dir.path(),
                std::os::unix::fs::PermissionsExt::from_mode(0o755),
            )
            .map_err(|e| Unavailable(format!("chmod: {e}")))?;
            pg.run(
                Command::new("chown")
                    .args(["-R", "postgres:"])
                    .arg(pg.dir.path()),
                false,
            )?;
        }
        let data = pg.data();
        pg.run(
            pg.pg_command("initdb")
                .args([
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--no-sync",
                    "-D",
                ])
                .arg(&data),
            true,
        )?;
        // The port was free when picked, but anything on the machine may take
        // it before the server binds it (a test's outgoing connection, another
        // server picking the same way): then again on another.
        let mut attempts = 1;
        loop {
            match pg.start_server() {
                Ok(()) => return Ok(pg),
                Err(e) if attempts < 3 => {
                    eprintln!(
                        "PostgreSQL did not start on port {} ({e}); another port",
                        pg.port
                    );
                    attempts += 1;
                    pg.port = free_port();
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn pg_command(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn run(&self, cmd: &mut Command, quiet: bool) -> Result<(), Unavailable> {
        if quiet {
            cmd.stdout(Stdio::null());
        }
        let out = cmd
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| Unavailable(format!("{cmd:?}: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(Unavailable(format!(
                "{cmd:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    }

    /// Starts the server on `self.port`; on failure, the end of its log says why.
    fn start_server(&self) -> Result<(), Unavailable> {
        let log = self.dir.path().join("server.log");
        self.start_logging_to(&log).map_err(|Unavailable(e)| {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(10)..].join("\n");
            Unavailable(format!("{e}\nthe end of {}:\n{tail}", log.display()))
        })
    }

    fn start_logging_to(&self, log: &Path) -> Result<(), Unavailable> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=400 \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
             -c shared_buffers=64MB",
            self.port,
            self.dir.path().display()
        );
        self.run(
            self.pg_command("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .arg("-l")
                .arg(log)
                .args(["-w", "-t", "60", "-o", &options, "start"]),
            true,
        )
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A URL for database `db` (see [`Postgres::create_database`]).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs one SQL statement as the superuser, in database `postgres`.
    pub fn sql(&self, statement: &str) -> Result<String, Unavailable> {
        let psql = self.bin.join("psql");
        let out = Command::new(psql)
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-At",
                "-v",
            ])
            .arg("ON_ERROR_STOP=1")
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-c")
            .arg(statement)
            .output()
            .map_err(|e| Unavailable(format!("psql: {e}")))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(Unavailable(format!(
                "psql {statement:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    }

    /// Creates an empty database; returns its URL.
    pub fn create_database(&self, db: &str) -> String {
        self.sql(&format!("CREATE DATABASE \"{db}\""))
            .expect("CREATE DATABASE");
        self.url(db)
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.data().join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// Stops the server (fast shutdown: open connections are cut).
    pub fn stop(&self) {
        let _ = self.run(
            self.pg_command("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .args(["-w", "-m", "fast", "stop"]),
            true,
        );
    }

    /// Starts it again on the same port with the same data.
    pub fn restart(&self) {
        self.start_server().expect("PostgreSQL starts again");
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            // SIGQUIT: immediate shutdown; the folder is deleted next anyway.
            let _ = Command::new("kill")
                .args(["-QUIT", &pid.to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(tool))
            .find(|p| p.is_file())
    })
}

/// A NATS server with JetStream, of its own.
pub struct Nats {
    dir: tempfile::TempDir,
    port: u16,
    monitor: u16,
    child: Option<Child>,
}

impl Nats {
    /// Starts `nats-server -js` and waits until JetStream is ready.
    pub fn start() -> Result<Self, Unavailable> {
        if which("nats-server").is_none() {
            return Err(Unavailable(
                "nats-server is not installed: run scripts/test, or apt-get install nats-server"
                    .into(),
            ));
        }
        let dir = tempfile::Builder::new()
            .prefix("emporium-nats-")
            .tempdir()
            .map_err(|e| Unavailable(format!("temp dir: {e}")))?;
        let mut nats = Self {
            dir,
            port: free_port(),
            monitor: free_port(),
            child: None,
        };
        nats.restart();
        Ok(nats)
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the server (SIGTERM, then SIGKILL after 10 s); its data stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// (Re)starts it on the same ports with the same data; waits for JetStream.
    pub fn restart(&mut self) {
        self.stop();
        let log = std::fs::File::create(self.dir.path().join("nats.log")).expect("log file");
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-m", &self.monitor.to_string(), "-sd"])
            .arg(self.dir.path().join("js"))
            // For scripts/test, which stops what a killed test left running.
            .arg("-P")
            .arg(self.dir.path().join("nats.pid"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.ready() {
            assert!(Instant::now() < deadline, "nats-server not ready in 30 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `GET /healthz?js-enabled-only=true` answers 200.
    fn ready(&self) -> bool {
        let Ok(mut s) = TcpStream::connect((Ipv4Addr::LOCALHOST, self.monitor)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let request = format!(
            "GET /healthz?js-enabled-only=true HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n\r\n",
            self.monitor
        );
        let mut reply = String::new();
        s.write_all(request.as_bytes()).is_ok()
            && s.read_to_string(&mut reply).is_ok()
            && reply.starts_with("HTTP/1.")
            && reply.split_whitespace().nth(1) == Some("200")
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
