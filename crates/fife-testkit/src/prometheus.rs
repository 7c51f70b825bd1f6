//! A real Prometheus server for one test: the Debian package's binary on a free loopback
//! port, with a generated config that scrapes the given targets every second, in a
//! temporary directory. Killed when dropped, whatever the test did.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Where `scripts/install-deps.sh` (the Debian package `prometheus`) puts the server.
pub const PROMETHEUS_BINARY: &str = "/usr/bin/prometheus";

/// One scrape job: a name (the `job` label) and the `host:port` of each target.
#[derive(Debug, Clone, Copy)]
pub struct ScrapeJob<'a> {
    pub name: &'a str,
    pub targets: &'a [SocketAddr],
}

/// A running Prometheus; stops when dropped.
#[derive(Debug)]
pub struct PrometheusServer {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl PrometheusServer {
    /// Starts Prometheus scraping `jobs` every second. It answers queries within a
    /// second or two; the first samples arrive after the first scrape.
    pub fn start(jobs: &[ScrapeJob<'_>]) -> std::io::Result<PrometheusServer> {
        let dir = tempfile::tempdir()?;
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config(jobs))?;
        let port = free_port()?;
        let child = spawn(&config_path, &dir.path().join("data"), port).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "cannot start {PROMETHEUS_BINARY} ({e}); run scripts/install-deps.sh to install it"
                ),
            )
        })?;
        Ok(PrometheusServer {
            child,
            address: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        })
    }

    /// The base URL, `http://127.0.0.1:<port>`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Kills the server and waits for it, so its port refuses connections afterwards.
    pub fn stop(&mut self) {
        // Already exited is fine: either way nothing listens any more.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn config(jobs: &[ScrapeJob<'_>]) -> String {
    let mut config =
        String::from("global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n");
    for job in jobs {
        let targets: Vec<String> = job.targets.iter().map(|t| format!("'{t}'")).collect();
        config.push_str(&format!(
            "  - job_name: {}\n    static_configs:\n      - targets: [{}]\n",
            job.name,
            targets.join(", ")
        ));
    }
    config
}

fn spawn(config: &Path, data: &Path, port: u16) -> std::io::Result<Child> {
    Command::new(PROMETHEUS_BINARY)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_lists_every_job_and_target() {
        let a: SocketAddr = "127.0.0.1:9001".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:9002".parse().unwrap();
        let text = config(&[
            ScrapeJob {
                name: "slow",
                targets: &[a, b],
            },
            ScrapeJob {
                name: "same",
                targets: &[b],
            },
        ]);
        assert!(text.contains("scrape_interval: 1s"), "{text}");
        assert!(
            text.contains("job_name: slow\n    static_configs:\n      - targets: ['127.0.0.1:9001', '127.0.0.1:9002']"),
            "{text}"
        );
        assert!(text.contains("job_name: same"), "{text}");
    }
}
