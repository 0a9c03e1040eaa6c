//! `otlp-sink`: an OTLP/HTTP trace receiver for benchmarks, standing in for a
//! collector on the same machine (Emporium's test receiver, as a process).
//!
//! Listens on `--port` (127.0.0.1), counts the spans it receives, and prints
//! `{"spans": N}` when stopped with SIGTERM or Ctrl-C.

use clap::Parser;
use emporium_testkit::otlp::OtlpReceiver;

#[derive(Parser)]
struct Args {
    /// Loopback port to listen on (0: any; the port is printed).
    #[arg(long, default_value_t = 4318)]
    port: u16,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let receiver = OtlpReceiver::start_on(args.port).await?;
    println!("{}", receiver.endpoint());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    println!("{{\"spans\": {}}}", receiver.count());
    Ok(())
}
