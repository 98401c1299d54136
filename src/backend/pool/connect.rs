//! A client configuration from a connection string: libpq's sslmode and sslrootcert
//! (`conninfo.rs`, `tls.rs`), a connect timeout, TCP keepalive, `application_name`, and
//! `target_session_attrs=read-write` when several hosts are given.

use std::time::Duration;

use tokio_postgres::config::TargetSessionAttrs;
use tokio_postgres::Config;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::conninfo::ConnInfo;
use super::tls::Tls;
use crate::error::{Error, Result};

/// TCP keepalive: first probe after this much silence, then every `KEEPALIVE_INTERVAL`,
/// giving up after `KEEPALIVE_RETRIES`; unacknowledged data gives up after
/// `TCP_USER_TIMEOUT`. Applied unless the connection string sets them.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_RETRIES: u32 = 3;
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(20);
/// `application_name` unless the connection string sets one.
const APPLICATION_NAME: &str = "aibind-rs";

/// Where a configuration connects: `host:port`, each host of a multi-host string.
pub(super) fn target(config: &Config) -> String {
    use tokio_postgres::config::Host;
    let ports = config.get_ports();
    let hosts: Vec<String> = (config.get_hosts().iter().enumerate())
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match host {
                Host::Tcp(name) if name.contains(':') => format!("[{name}]:{port}"),
                Host::Tcp(name) => format!("{name}:{port}"),
                #[cfg(unix)]
                Host::Unix(path) => format!("{} (port {port})", path.display()),
            }
        })
        .collect();
    if hosts.is_empty() {
        "localhost:5432".into()
    } else {
        hosts.join(", ")
    }
}

/// A client configuration for `url`, and its TLS connector: libpq's sslmode and
/// sslrootcert, a connect timeout, keepalive, and `application_name` "aibind-rs" unless
/// the string names one. No other startup parameter is added. `writes`: the pool writes
/// (not a read replica's).
pub(super) fn client_config(
    url: &str,
    connect_timeout_ms: u64,
    writes: bool,
) -> Result<(Config, MakeRustlsConnect)> {
    let mut info = ConnInfo::parse(url)?;
    let mut tls = Tls::take(&mut info)?;
    let mut config: Config = info.to_string().parse().map_err(|e| {
        Error::InvalidArgument(format!(
            "the connection string is not valid ({e}); expected \
             postgres://user:password@host:port/database or key=value pairs"
        ))
    })?;
    // Several hosts (a primary and its standbys): the store writes, so unless the string
    // says otherwise it connects only to a writable one, as libpq's read-write does.
    if writes && config.get_hosts().len() > 1 && !info.has("target_session_attrs") {
        config.target_session_attrs(TargetSessionAttrs::ReadWrite);
    }
    tls.plain_on_loopback(&config);
    config.ssl_mode(tls.ssl_mode());
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_millis(connect_timeout_ms));
    }
    // A dead peer (a NAT or load balancer that dropped the flow, a failed-over server) is
    // noticed in seconds; the default keepalive starts after two hours.
    if config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
        config
            .keepalives(true)
            .keepalives_idle(KEEPALIVE_IDLE)
            .keepalives_interval(KEEPALIVE_INTERVAL)
            .keepalives_retries(KEEPALIVE_RETRIES);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(TCP_USER_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name(APPLICATION_NAME);
    }
    Ok((config, tls.connector()?))
}
