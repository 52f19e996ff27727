//! What the process needs around its regions: the log subscriber, the shutdown signal, and the
//! container healthcheck's probe.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Context;

/// One plain `GET url` over HTTP/1.1 with blocking I/O: succeeds on a 2xx status within
/// `timeout`. The container healthcheck runs it (`edgekv probe`), so it needs no runtime.
pub fn probe(url: &str, timeout: Duration) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let rest = url.strip_prefix("http://").context("the probe URL must start with http://")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let addr = authority
        .to_socket_addrs()
        .with_context(|| format!("resolve {authority}"))?
        .next()
        .with_context(|| format!("{authority} has no address"))?;
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("connect to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n")?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).context("read the status line")?;
    let status = std::str::from_utf8(&head[9..12]).unwrap_or("");
    if head.starts_with(b"HTTP/1.") && status.starts_with('2') {
        Ok(())
    } else {
        anyhow::bail!("GET {url} answered {:?}", String::from_utf8_lossy(&head))
    }
}

/// Resolves when the process receives SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = term.recv() => {}
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM; only SIGINT stops the node");
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

/// The log filter when neither `EDGEKV_LOG` nor `RUST_LOG` is set: EdgeKV's own events at INFO,
/// every dependency's at WARN, so that a cluster's first lines are its own and not the storage
/// engine's (fjall and lsm_tree log each database and ingestion at INFO). A directive's target
/// matches by prefix, so `edgekv` covers the binary and every `edgekv_*` crate. fjall logs
/// through the `log` crate; `init` installs the `tracing-log` bridge, which asks this filter
/// about each record by the record's target, so the same directives apply to those lines.
pub const DEFAULT_LOG_FILTER: &str = "warn,edgekv=info";

/// The default filter of `edgekv sim`: a simulated hour replays a node's routine INFO events
/// (every anti-entropy repair, every fault) thousands of times a second, so only warnings.
pub const SIM_LOG_FILTER: &str = "warn";

/// Installs the global tracing subscriber: `EDGEKV_LOG` (or `RUST_LOG`) filters, default
/// `default` (normally [`DEFAULT_LOG_FILTER`]), which an unparsable filter also falls back to;
/// `EDGEKV_LOG_FORMAT=json` switches to one JSON object per line. Logs go to stderr so that
/// stdout carries only what the command prints for people and scripts.
pub fn init_tracing(default: &str) {
    let filter = std::env::var("EDGEKV_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default.to_owned());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if std::env::var("EDGEKV_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[cfg(test)]
mod tests {
    use tracing::Level;
    use tracing_subscriber::layer::SubscriberExt;

    use super::DEFAULT_LOG_FILTER;

    #[test]
    fn the_default_filter_keeps_edgekv_at_info_and_dependencies_at_warn() {
        let filter = tracing_subscriber::EnvFilter::try_new(DEFAULT_LOG_FILTER);
        let subscriber = tracing_subscriber::registry().with(filter.expect("a valid filter"));
        tracing::subscriber::with_default(subscriber, || {
            assert!(tracing::enabled!(target: "edgekv", Level::INFO));
            assert!(tracing::enabled!(target: "edgekv_node", Level::INFO));
            assert!(tracing::enabled!(target: "edgekv_replication::sender", Level::INFO));
            assert!(!tracing::enabled!(target: "edgekv_store::disk", Level::DEBUG));
            // The targets of the records fjall and lsm_tree log through the `log` crate.
            assert!(!tracing::enabled!(target: "fjall::db", Level::INFO));
            assert!(!tracing::enabled!(target: "lsm_tree::tree::ingest", Level::INFO));
            assert!(tracing::enabled!(target: "lsm_tree::tree::ingest", Level::WARN));
            assert!(!tracing::enabled!(target: "h2::codec", Level::INFO));
            assert!(tracing::enabled!(target: "hyper", Level::ERROR));
        });
    }
}
