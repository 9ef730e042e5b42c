//! How the worker ends: power the instance off (EC2, whose shutdown behaviour is terminate) or
//! just exit (local mode).

use async_trait::async_trait;

/// The shutdown port.
#[async_trait]
pub trait ShutdownPort: Send + Sync {
    /// Called once, last. Returns the process exit code.
    async fn shutdown(&self, code: i32) -> i32;
}

/// `shutdown -h now`, then exit with `code`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Poweroff;

#[async_trait]
impl ShutdownPort for Poweroff {
    async fn shutdown(&self, code: i32) -> i32 {
        tracing::info!("powering off");
        match tokio::process::Command::new("shutdown")
            .args(["-h", "now"])
            .status()
            .await
        {
            Ok(s) if s.success() => {}
            Ok(s) => tracing::error!(status = %s, "shutdown -h now failed"),
            Err(e) => tracing::error!(error = %e, "cannot run shutdown -h now"),
        }
        code
    }
}

/// Just return from main (local mode).
#[derive(Debug, Default, Clone, Copy)]
pub struct Exit;

#[async_trait]
impl ShutdownPort for Exit {
    async fn shutdown(&self, code: i32) -> i32 {
        code
    }
}
