//! Leader election on a `coordination.k8s.io` Lease: only the leader reconciles and writes.
//!
//! `kube-lease-manager` acquires and renews the lease. On its own it would keep saying
//! "leader" while it cannot reach the API server, past the lease's expiry, when another
//! replica may already have taken over. So leadership here also needs a recent
//! confirmation: a reader checks the Lease every second, and a replica acts only until
//! the lease's expiry as last confirmed, minus a safety margin. A leader that cannot
//! renew therefore stops acting before anyone else can start.
//!
//! ```text
//!   LeaseManager::watch ──▶ holder flag ─┐
//!   GET Lease (1 s) ──▶ confirmed until ─┴─▶ is_leading() = flag ∧ now < confirmed − margin
//! ```

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::runtime::telemetry::Metrics;

/// Stop acting this long before the lease could expire.
const SAFETY_MARGIN: Duration = Duration::from_secs(1);

/// Whether this replica may act, shared by every reconcile.
#[derive(Debug, Clone)]
pub struct Leadership {
    inner: Arc<Inner>,
    /// Counts the times this replica became leader: what it remembered from an earlier
    /// term may have been superseded by another leader's writes meanwhile.
    term: Arc<AtomicU64>,
}

#[derive(Debug)]
enum Inner {
    /// No leader election: the only replica always acts.
    Always,
    Elected {
        holder: watch::Receiver<bool>,
        confirmed_until: Mutex<Option<Instant>>,
    },
}

/// Settings of the lease.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    pub duration: Duration,
    pub grace: Duration,
}

/// Why leader election could not start.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error(
        "cannot set up leader election on Lease {namespace}/{name}: {source}; check that the \
         namespace exists and the controller may get, create and update leases there"
    )]
    Setup {
        namespace: String,
        name: String,
        source: kube_lease_manager::LeaseManagerError,
    },
}

impl Leadership {
    pub fn always() -> Self {
        Leadership {
            inner: Arc::new(Inner::Always),
            term: Arc::default(),
        }
    }

    /// True when replicas compete for a Lease, so another one may have acted.
    pub fn is_elected(&self) -> bool {
        matches!(&*self.inner, Inner::Elected { .. })
    }

    /// The current term: changes each time this replica becomes leader again.
    pub fn term(&self) -> u64 {
        self.term.load(Ordering::Relaxed)
    }

    /// True when this replica may act now.
    pub fn is_leading(&self) -> bool {
        match &*self.inner {
            Inner::Always => true,
            Inner::Elected {
                holder,
                confirmed_until,
            } => {
                *holder.borrow()
                    && confirmed_until
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .is_some_and(|until| Instant::now() + SAFETY_MARGIN < until)
            }
        }
    }

    /// Starts competing for the lease. Returns at once; leadership follows in the background.
    pub async fn elect(
        client: Client,
        config: LeaseConfig,
        metrics: Arc<Metrics>,
    ) -> Result<(Leadership, tokio::task::JoinHandle<()>), LeaderError> {
        let setup = |source| LeaderError::Setup {
            namespace: config.namespace.clone(),
            name: config.name.clone(),
            source,
        };
        let manager = LeaseManagerBuilder::new(client.clone(), config.name.clone())
            .with_namespace(config.namespace.clone())
            .with_identity(config.identity.clone())
            .with_duration(config.duration.as_secs().max(2))
            .with_grace(config.grace.as_secs().max(1))
            .build()
            .await
            .map_err(setup)?;
        let (holder, manager_task) = manager.watch().await;
        let leadership = Leadership {
            inner: Arc::new(Inner::Elected {
                holder: holder.clone(),
                confirmed_until: Mutex::new(None),
            }),
            term: Arc::default(),
        };
        let confirmer = leadership.clone();
        let leases: Api<Lease> = Api::namespaced(client, &config.namespace);
        let task = tokio::spawn(async move {
            let mut was_leading = false;
            loop {
                confirmer.confirm(&leases, &config).await;
                let leading = confirmer.is_leading();
                if leading != was_leading {
                    tracing::info!(identity = %config.identity, leading, "leadership changed");
                    if leading {
                        confirmer.term.fetch_add(1, Ordering::Relaxed);
                    }
                    was_leading = leading;
                }
                metrics.set_leader(leading);
                if manager_task.is_finished() {
                    tracing::error!("the lease manager stopped; this replica no longer acts");
                    confirmer.revoke();
                    metrics.set_leader(false);
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        Ok((leadership, task))
    }

    /// Reads the Lease; extends the confirmation when this replica holds it.
    async fn confirm(&self, leases: &Api<Lease>, config: &LeaseConfig) {
        let Inner::Elected {
            confirmed_until, ..
        } = &*self.inner
        else {
            return;
        };
        let asked_at = Instant::now();
        let lease = match leases.get_opt(&config.name).await {
            Ok(Some(lease)) => lease,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the leader lease; acting only until it would expire");
                return;
            }
        };
        let Some(spec) = lease.spec else { return };
        let mine = spec.holder_identity.as_deref() == Some(config.identity.as_str());
        let mut until = confirmed_until.lock().unwrap_or_else(|e| e.into_inner());
        if !mine {
            *until = None;
            return;
        }
        let (Some(renewed), Some(seconds)) = (spec.renew_time, spec.lease_duration_seconds) else {
            return;
        };
        let expires = renewed.0 + jiff::SignedDuration::from_secs(i64::from(seconds));
        let left = expires.duration_since(jiff::Timestamp::now());
        // Counted from when the request was sent, so a slow answer shortens, never lengthens.
        if let Ok(left) = Duration::try_from(left) {
            *until = Some(asked_at + left);
        }
    }

    fn revoke(&self) {
        if let Inner::Elected {
            confirmed_until, ..
        } = &*self.inner
        {
            *confirmed_until.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }
}
