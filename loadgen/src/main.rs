//! rf-loadgen: a load generator for Pusher-protocol servers. It speaks only the public Pusher
//! WebSocket protocol and the signed HTTP API, so it measures rf-broadcast, soketi or any other
//! Pusher server the same way. Every scenario is bounded in count and time and targets loopback
//! addresses only; each prints a readable summary followed by one JSON line.

mod auth;
mod client_events;
mod common;
mod connections;
mod fanout;
mod flood;
mod publish;
mod soak;
mod stats;
mod sys;
mod target;
mod ws;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "rf-loadgen",
    version,
    about = "Load generator for Pusher-protocol servers (loopback targets only)"
)]
struct Cli {
    #[command(flatten)]
    common: common::Common,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// N idle subscribed connections opened at a rate and held: connect/subscribe latency,
    /// server RSS per connection, the limit hit.
    Connections(connections::ConnArgs),
    /// N subscribers over C channels, R events/s through the HTTP API: delivered/s, loss,
    /// duplicates, order, e2e latency, server CPU s per million deliveries.
    Fanout(fanout::FanoutArgs),
    /// Closed-loop publishers, a ladder of concurrency: sustained deliveries/s and where the
    /// tail breaks.
    Saturate(fanout::SaturateArgs),
    /// Pairs of clients on private channels exchanging client events.
    ClientEvents(client_events::ClientEventArgs),
    /// Some subscribers stop reading: the others' latency, server RSS, how the slow ones are
    /// closed.
    SlowConsumer(fanout::SlowArgs),
    /// Connections opened and closed continuously while events flow.
    Churn(fanout::ChurnArgs),
    /// Fan-out, churn, client events and presence joins/leaves at once, every message
    /// counted, server RSS sampled: the soak (RELIABILITY.md).
    Soak(soak::SoakArgs),
    /// One kind of flood (a connect burst, subscribe, client events, never-reading clients)
    /// for loadgen/floods.sh: reports how the server answered, while a `fanout` in another
    /// process measures what normal clients see.
    Flood(flood::FloodArgs),
}

fn main() {
    let cli = Cli::parse();
    let c = &cli.common;
    sys::raise_nofile();
    let rt = if c.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(c.threads.min(16))
            .enable_all()
            .build()
    };
    let rt = rt.expect("tokio runtime");
    // A hard cap on any run, whatever the options say: the longest scenario (a 30-minute
    // soak) plus its setup and drain.
    let cap = std::time::Duration::from_secs(2700);
    let res = rt.block_on(async {
        let fut = async {
            match &cli.scenario {
                Scenario::Connections(a) => connections::connections(c, a).await,
                Scenario::Fanout(a) => fanout::fanout(c, a).await,
                Scenario::Saturate(a) => fanout::saturate(c, a).await,
                Scenario::ClientEvents(a) => client_events::client_events(c, a).await,
                Scenario::SlowConsumer(a) => fanout::slow_consumer(c, a).await,
                Scenario::Churn(a) => fanout::churn(c, a).await,
                Scenario::Soak(a) => soak::soak(c, a).await,
                Scenario::Flood(a) => flood::flood(c, a).await,
            }
        };
        match tokio::time::timeout(cap, fut).await {
            Ok(r) => r,
            Err(_) => Err("run exceeded the 45 minute hard cap".to_string()),
        }
    });
    match res {
        Ok(report) => {
            report.print();
            // Sockets are dropped with the runtime; do not wait for graceful closes.
            rt.shutdown_timeout(std::time::Duration::from_millis(200));
        }
        Err(e) => {
            eprintln!("rf-loadgen: {e}");
            rt.shutdown_timeout(std::time::Duration::from_millis(200));
            std::process::exit(2);
        }
    }
}
