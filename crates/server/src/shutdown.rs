//! Graceful shutdown: one signal, observed by every listener and session.

use tokio::sync::watch;

/// A cloneable shutdown signal. Listeners stop accepting when it fires;
/// sessions finish the step they are in (a message past DATA is committed
/// first), answer `421`, and close. [`Shutdown::drained`] waits until every
/// clone held by a session is gone.
#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
    // Every session holds a clone; the trigger waits for all of them to drop.
    _alive: tokio::sync::mpsc::Sender<()>,
}

/// The side that fires the shutdown and waits for the drain.
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
    done: tokio::sync::mpsc::Receiver<()>,
}

impl Shutdown {
    /// A new signal and its trigger.
    pub fn new() -> (Shutdown, ShutdownTrigger) {
        let (tx, rx) = watch::channel(false);
        let (alive, done) = tokio::sync::mpsc::channel(1);
        (Shutdown { rx, _alive: alive }, ShutdownTrigger { tx, done })
    }

    /// True once shutdown has been requested.
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// Completes when shutdown is requested (at once if it already was).
    pub async fn triggered(&mut self) {
        // An error means the trigger was dropped: treat that as shutdown too.
        let _ = self.rx.wait_for(|stop| *stop).await;
    }

    /// Like [`Shutdown::triggered`], as a future a session keeps pinned for
    /// its whole life: it waits among the signal's waiters once, instead of
    /// joining and leaving them around every read.
    pub fn signal(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }
}

impl ShutdownTrigger {
    /// Requests shutdown and waits until every [`Shutdown`] clone is dropped.
    pub async fn shutdown_and_drain(mut self) {
        let _ = self.tx.send(true);
        // recv returns None once all senders (the Shutdown clones) are gone.
        let _ = self.done.recv().await;
    }

    /// Requests shutdown without waiting.
    pub fn fire(&self) {
        let _ = self.tx.send(true);
    }
}
