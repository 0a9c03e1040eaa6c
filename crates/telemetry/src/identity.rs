//! Who is doing the work: the service and instance a log line, a metric or a span
//! belongs to.
//!
//! A process that hosts one service has one identity for everything. A process that
//! hosts several (the monolith, `emporium serve users,catalog`) runs each service's
//! work inside [`scope`] with that service's identity: the HTTP chassis wraps each
//! request, the runtime each background task, and [`spawn`] carries the identity to a
//! task it starts. Log lines, metric labels and exported spans read [`current`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::task::JoinHandle;

/// Who is logging: written into every JSON line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub service: String,
    pub instance: String,
}

tokio::task_local! {
    static CURRENT: Arc<Identity>;
}

static PROCESS: OnceLock<Arc<Identity>> = OnceLock::new();
static SEVERAL: AtomicBool = AtomicBool::new(false);

/// Sets the identity of work outside any [`scope`] (the first call wins).
pub(crate) fn set_process(identity: Identity) {
    let _ = PROCESS.set(Arc::new(identity));
}

/// Declares that this process hosts several services: metrics then carry a
/// `service` label and each service's `/metrics` shows only its own series.
pub fn hosting_several() {
    SEVERAL.store(true, Ordering::Relaxed);
}

/// Whether this process hosts several services.
pub fn several() -> bool {
    SEVERAL.load(Ordering::Relaxed)
}

/// The identity of the current work: its service's inside a [`scope`], else the
/// process's.
pub fn current() -> Option<Arc<Identity>> {
    scoped().or_else(|| PROCESS.get().cloned())
}

/// The identity set by the enclosing [`scope`], if any.
pub fn scoped() -> Option<Arc<Identity>> {
    CURRENT.try_with(Arc::clone).ok()
}

/// Runs `f` as the work of `identity`.
///
/// A plain function returning tokio's scoped future, not an `async fn`: an
/// `async fn` would keep `f` as its argument beside the scoped future that holds
/// it once running, twice the size, and every layer of a request's future around
/// it (copied whole whenever it is boxed) with it.
pub fn scope<F: Future>(identity: Arc<Identity>, f: F) -> impl Future<Output = F::Output> {
    CURRENT.scope(identity, f)
}

/// `f`, run with the identity that is current now (for a future run elsewhere).
pub fn bind<F: Future>(f: F) -> impl Future<Output = F::Output> {
    let identity = scoped();
    async move {
        match identity {
            Some(identity) => CURRENT.scope(identity, f).await,
            None => f.await,
        }
    }
}

/// `tokio::spawn` that keeps the current identity.
pub fn spawn<F>(f: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(bind(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(service: &str) -> Arc<Identity> {
        Arc::new(Identity {
            service: service.into(),
            instance: format!("{service}-1"),
        })
    }

    #[tokio::test]
    async fn scopes_nest_and_spawned_tasks_keep_theirs() {
        assert_eq!(scoped(), None);
        scope(id("orders"), async {
            assert_eq!(current().expect("set").service, "orders");
            let inner = scope(id("cart"), async {
                current().expect("set").service.clone()
            });
            assert_eq!(inner.await, "cart");
            let spawned = spawn(async { current().map(|i| i.service.clone()) });
            assert_eq!(spawned.await.expect("join").as_deref(), Some("orders"));
            let bare = tokio::spawn(async { scoped() });
            assert_eq!(
                bare.await.expect("join"),
                None,
                "plain spawn does not inherit"
            );
        })
        .await;
    }
}
