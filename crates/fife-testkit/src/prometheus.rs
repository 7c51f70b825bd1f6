//! A real Prometheus server for one test: the Debian package's binary on a free loopback
//! port, in a temporary directory, either scraping the given targets every second or
//! serving hours of modelled data backfilled with `promtool` in a second or two. Killed
//! when dropped, whatever the test did.
//!
//! ```text
//! ClusterModel ─write_openmetrics─▶ file ─promtool tsdb create-blocks-from openmetrics─▶ blocks
//!                                                      PrometheusServer::start_on_tsdb ◀─┘
//! ```

use std::io::{BufWriter, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cluster_model::{ClusterModel, ScrapeRange, write_openmetrics};

/// Where `scripts/install-deps.sh` (the Debian package `prometheus`) puts the server.
pub const PROMETHEUS_BINARY: &str = "/usr/bin/prometheus";

/// The same package's `promtool`, which turns OpenMetrics text into TSDB blocks.
pub const PROMTOOL_BINARY: &str = "/usr/bin/promtool";

/// Backfilled blocks are as old as the model says; retention must not delete them when
/// Prometheus starts. (Prometheus measures retention from the newest block, but a range
/// that spans more than the default 15 days would still lose its start.)
const BACKFILL_RETENTION: &str = "100y";

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
        Self::launch(tempfile::tempdir()?, jobs, &[])
    }

    /// Starts Prometheus on blocks made by [`backfill`], scraping nothing, and waits until
    /// it answers queries. Queries over the blocks' range see the modelled data; the usual
    /// 5 minute lookback applies, ample for a 15 s scrape interval.
    pub fn start_on_tsdb(tsdb: BackfilledTsdb) -> std::io::Result<PrometheusServer> {
        let retention = format!("--storage.tsdb.retention.time={BACKFILL_RETENTION}");
        let server = Self::launch(tsdb.dir, &[], &[retention])?;
        server.wait_ready(Duration::from_secs(60))?;
        Ok(server)
    }

    /// `dir` holds (or will hold) the TSDB in `data/`; the config is written next to it.
    fn launch(
        dir: tempfile::TempDir,
        jobs: &[ScrapeJob<'_>],
        extra_args: &[String],
    ) -> std::io::Result<PrometheusServer> {
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config(jobs))?;
        let port = free_port()?;
        let child = spawn(&config_path, &dir.path().join("data"), port, extra_args).map_err(|e| {
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

    /// Waits until `/-/ready` answers 200: the TSDB, backfilled blocks included, is loaded.
    pub fn wait_ready(&self, timeout: Duration) -> std::io::Result<()> {
        let host = self.address.trim_start_matches("http://");
        let started = Instant::now();
        loop {
            if ready(host) {
                return Ok(());
            }
            if started.elapsed() > timeout {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "Prometheus at {} was not ready after {timeout:?}",
                        self.address
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
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

/// `GET /-/ready` answered 200.
fn ready(host: &str) -> bool {
    let Ok(mut stream) = std::net::TcpStream::connect(host) else {
        return false;
    };
    let request = format!("GET /-/ready HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let mut response = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut response).is_ok()
        && response.starts_with("HTTP/1.1 200")
}

/// A TSDB directory of blocks that `promtool` made; hand it to
/// [`PrometheusServer::start_on_tsdb`]. Deleted when dropped.
#[derive(Debug)]
pub struct BackfilledTsdb {
    /// Holds `data/`, the TSDB, and room for the server's config.
    dir: tempfile::TempDir,
}

impl BackfilledTsdb {
    /// The TSDB directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

/// Writes `models` over `range` as OpenMetrics and turns them into TSDB blocks with
/// `promtool tsdb create-blocks-from openmetrics`. The text is deleted once loaded.
/// Promtool cuts blocks at 2 hour boundaries and rejects samples out of order within a
/// series, which [`write_openmetrics`] never writes.
pub fn backfill(models: &[ClusterModel], range: &ScrapeRange) -> std::io::Result<BackfilledTsdb> {
    let dir = tempfile::tempdir()?;
    let text = dir.path().join("model.om.txt");
    {
        let mut out = BufWriter::new(std::fs::File::create(&text)?);
        write_openmetrics(models, range, &mut out)?;
        out.flush()?;
    }
    let tsdb = backfill_openmetrics(&text, dir)?;
    std::fs::remove_file(&text)?;
    Ok(tsdb)
}

/// Runs promtool on an OpenMetrics file (samples with timestamps, ending in `# EOF`),
/// writing the blocks to `dir/data`.
pub fn backfill_openmetrics(
    openmetrics: &Path,
    dir: tempfile::TempDir,
) -> std::io::Result<BackfilledTsdb> {
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    let output = Command::new(PROMTOOL_BINARY)
        .args(["tsdb", "create-blocks-from", "openmetrics", "--quiet"])
        .arg(openmetrics)
        .arg(&data)
        .output()
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "cannot run {PROMTOOL_BINARY} ({e}); run scripts/install-deps.sh to install it"
                ),
            )
        })?;
    if !output.status.success() {
        return Err(std::io::Error::other(format!(
            "promtool could not backfill {}: {}",
            openmetrics.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(BackfilledTsdb { dir })
}

fn spawn(config: &Path, data: &Path, port: u16, extra_args: &[String]) -> std::io::Result<Child> {
    Command::new(PROMETHEUS_BINARY)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .args(extra_args)
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
