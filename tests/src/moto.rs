//! A `moto_server` started for a test on 127.0.0.1 on a free port, stopped when dropped, and
//! real `aws-sdk-*` clients pointed at it with static fake credentials. Never real AWS.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;

/// The region every moto test uses.
pub const REGION: &str = "us-east-1";
/// moto's default account id.
pub const ACCOUNT: &str = "123456789012";

/// A running moto_server.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    port: u16,
}

/// Where tools/setup installs moto_server.
pub fn moto_server_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/venv/bin/moto_server")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot bind a free port on 127.0.0.1")
}

impl Moto {
    /// Starts moto_server and waits until it accepts connections (at most 60 s).
    ///
    /// Panics with a hint when moto_server is not installed.
    pub fn start() -> Moto {
        Moto::start_with(&[])
    }

    /// [`Moto::start`] with extra environment for moto_server (e.g.
    /// `INITIAL_NO_AUTH_ACTION_COUNT`, after which it checks every request against its IAM).
    pub fn start_with(env: &[(&str, &str)]) -> Moto {
        let bin = moto_server_path();
        assert!(
            bin.is_file(),
            "{} is missing: run tools/setup to install the pinned test tools",
            bin.display()
        );
        // A port can be taken between our probe and moto's bind: try a few.
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port();
            let mut child = Command::new(&bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env("SF_EXECUTION_HISTORY_TYPE", "SUCCESS")
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Moto { child, port };
                }
                if let Ok(Some(status)) = child.try_wait() {
                    last = format!("moto_server exited with {status} on port {port}");
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("moto_server did not answer on 127.0.0.1:{port} within 60 s");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        panic!("cannot start moto_server: {last}");
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SDK configuration for this server: region us-east-1, static fake credentials.
    pub async fn sdk_config(&self) -> SdkConfig {
        sdk_config_for(&self.endpoint_url()).await
    }

    pub async fn ec2(&self) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::new(&self.sdk_config().await)
    }

    pub async fn sfn(&self) -> aws_sdk_sfn::Client {
        aws_sdk_sfn::Client::new(&self.sdk_config().await)
    }

    /// An S3 client with path-style addressing (moto serves every bucket on one host).
    pub async fn s3(&self) -> aws_sdk_s3::Client {
        let cfg = aws_sdk_s3::config::Builder::from(&self.sdk_config().await)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(cfg)
    }
}

/// SDK configuration for any endpoint (e.g. a closed port, to provoke transport errors).
pub async fn sdk_config_for(endpoint_url: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .endpoint_url(endpoint_url)
        .http_client(boa_aws::adapters::local_http_client())
        .load()
        .await
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
