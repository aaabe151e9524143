//! Spawned tasks tied to their owner: [`AbortOnDrop`].

use tokio::task::{JoinError, JoinHandle};

/// A spawned task that ends when its handle is dropped, so a caller that
/// is itself cancelled (a timeout, a shutdown) leaves nothing running.
/// Tokio's own `JoinHandle` detaches the task on drop instead.
pub struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    pub fn new(handle: JoinHandle<T>) -> Self {
        AbortOnDrop(handle)
    }

    /// The task's output, or why it has none (it panicked or was aborted).
    pub async fn join(mut self) -> Result<T, JoinError> {
        (&mut self.0).await
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
