//! A `moto_server` started for a test on 127.0.0.1 on a free port, stopped when dropped, and
//! real `aws-sdk-*` clients pointed at it with static fake credentials. Never real AWS.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

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
        // moto binds a port of its own choosing (`-p 0`) and says which on stderr. Probing for
        // a free port first and handing it over raced with the other tests' servers: the port
        // could be taken between the probe and moto's bind, and the readiness check then
        // connected to someone else's server while moto had failed to start.
        let mut child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .env("SF_EXECUTION_HISTORY_TYPE", "SUCCESS")
            .env("PYTHONUNBUFFERED", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, rx) = mpsc::channel();
        // Reads moto's log up to its address, then keeps draining it: werkzeug logs every
        // request there, and a full pipe would stall the server. Ends when moto does.
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stderr).lines().map_while(Result::ok);
            let (mut before, mut port) = (Vec::new(), None);
            for line in lines.by_ref() {
                port = running_on_port(&line);
                if port.is_some() {
                    break;
                }
                before.push(line);
            }
            let _ = tx.send(port.ok_or_else(|| before.join("\n")));
            lines.for_each(drop);
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(port)) => Moto { child, port },
            other => {
                let _ = child.kill();
                let status = child.wait();
                let said = match other {
                    Ok(Err(log)) => log,
                    _ => "(no address within 60 s)".to_string(),
                };
                panic!(
                    "moto_server ({}) did not start on 127.0.0.1 ({status:?}); it said:\n{said}",
                    bin.display()
                )
            }
        }
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

/// The port of werkzeug's ` * Running on http://127.0.0.1:PORT` line.
fn running_on_port(line: &str) -> Option<u16> {
    let rest = line.split("Running on http://127.0.0.1:").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().filter(|&p| p != 0)
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
