//! The public listener. (Being written: see ARCHITECTURE.md.)

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::shutdown::Shutdown;
use crate::state::AppState;

/// Serves the public HTTP API on `listener` until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    mut shutdown: Shutdown,
) -> std::io::Result<()> {
    let app = axum::Router::new()
        .route("/status", axum::routing::get(|| async { "ok" }))
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await
}
