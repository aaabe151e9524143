//! The polling thread: one single-threaded tokio runtime that the pollers and
//! the decider run on, beside the multi-threaded runtime of the listener and
//! the fetcher.
//!
//! Why a thread of its own: on the multi-threaded runtime a poll woke tasks
//! on whichever worker was free (the poller, then hyper's connection task,
//! then the decider), and each cross-worker wake-up unparked a sleeping
//! worker through a futex and an extra `epoll_wait`. That scheduling was the
//! largest single cost of a poll at 1000 keep-alive upstreams. On one thread
//! every wake-up is a local queue push. A poll is a few tens of microseconds
//! of CPU, so one thread carries thousands of upstreams; the listener keeps
//! every core of its own runtime, so nothing a poll does (or waits on) can
//! take a worker from a client.
//!
//! A plain-HTTP upstream's connection is made here by its poller and has
//! no task of its own (`upstream::conn`); an https upstream's is reqwest's,
//! whose connection task is spawned where the connection is made, here too.
//! The fetcher's every request runs here as well
//! (`fetcher::on_polling_thread`), so an upstream's connection, and any task
//! that returns it to a pool, share one thread. The fetcher itself stays on
//! the main runtime: decoding and proving a large State is CPU-bound and
//! would hold up every poll behind it.

use std::thread::JoinHandle;

use anyhow::Context as _;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// A running polling thread. [`PollThread::stop`] ends it; dropping it does
/// too (its tasks are cancelled, which closes their sockets).
#[derive(Debug)]
pub struct PollThread {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl PollThread {
    /// Starts the thread and its runtime (timers and IO enabled).
    pub fn start() -> anyhow::Result<PollThread> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the polling runtime")?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("leanpoint-poll".to_string())
            // Tasks spawned on `handle` run while this thread blocks on the
            // stop signal; a dropped sender stops it as well. Dropping the
            // runtime here, off any async context, cancels what is left.
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })
            .context("cannot start the polling thread")?;
        Ok(PollThread {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Where the pollers and the decider are spawned.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Stops the runtime and waits for its thread, without blocking the
    /// async caller's worker.
    pub async fn stop(mut self) {
        let thread = self.signal();
        if let Some(t) = thread {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }

    fn signal(&mut self) -> Option<JoinHandle<()>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.thread.take()
    }
}

impl Drop for PollThread {
    fn drop(&mut self) {
        if let Some(t) = self.signal() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PollThread;

    /// Tasks spawned on the handle run on the polling thread, not the
    /// caller's, and the thread ends when stopped.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tasks_run_on_the_polling_thread_until_it_stops() {
        let polling = PollThread::start().expect("start");
        let name = polling
            .handle()
            .spawn(async { std::thread::current().name().map(str::to_string) })
            .await
            .expect("task ran");
        assert_eq!(name.as_deref(), Some("leanpoint-poll"));
        // A task still pending at the stop is cancelled, not leaked.
        let pending = polling.handle().spawn(std::future::pending::<()>());
        polling.stop().await;
        let err = pending.await.expect_err("cancelled by the stop");
        assert!(err.is_cancelled(), "{err}");
    }
}
