//! [`Fleet`] over `aws_sdk_ec2::Client`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, Filter, HttpTokensState, IamInstanceProfileSpecification,
    InstanceInterruptionBehavior, InstanceMarketOptionsRequest, InstanceMetadataEndpointState,
    InstanceMetadataOptionsRequest, InstanceStateName, InstanceType, MarketType, ResourceType,
    ShutdownBehavior, SpotInstanceType, SpotMarketOptions, Tag, TagSpecification, VolumeType,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::{common_kind, to_chrono};
use crate::ports::{Fleet, Instance, InstanceState, LaunchSpec, PortError, Purchase};

/// EC2 error codes that mean "no capacity for this type/market: try the next".
const NO_CAPACITY: &[&str] = &[
    "InsufficientInstanceCapacity",
    "InsufficientCapacity",
    "InsufficientHostCapacity",
    "InsufficientReservedInstanceCapacity",
    "SpotMaxPriceTooLow",
    "MaxSpotInstanceCountExceeded",
    "InsufficientFreeAddressesInSubnet",
    "Unsupported",
];

/// The service as error messages name it.
pub const SERVICE: &str = "EC2";

/// Maps any EC2 error to a [`PortError`]: the one place EC2 error codes are read.
pub fn map_error<E>(operation: &str, e: SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match common_kind(SERVICE, operation, &e) {
        Err(pe) => pe,
        Ok((code, message)) if NO_CAPACITY.contains(&code.as_str()) => {
            PortError::NoCapacity(format!("{SERVICE} {operation} {code}: {message}"))
        }
        Ok((code, message)) if code.starts_with("InvalidInstanceID.NotFound") => {
            PortError::NotFound(format!("{SERVICE} {operation} {code}: {message}"))
        }
        Ok((code, message)) => PortError::call(SERVICE, operation, &code, message),
    }
}

/// EC2 as a [`Fleet`]. It remembers each AMI's root device name (one DescribeImages per AMI
/// per process), so the encrypted root volume of `disk_gb` replaces the AMI's own root device
/// whatever it is called (`/dev/xvda`, `/dev/sda1`…), instead of adding an unencrypted one.
#[derive(Debug, Clone)]
pub struct Ec2Fleet {
    client: Client,
    root_devices: Arc<Mutex<HashMap<String, String>>>,
}

impl Ec2Fleet {
    /// With the SDK's retries off: callers retry with a `Backoff` (see the module's table).
    pub fn new(shared: &aws_config::SdkConfig) -> Ec2Fleet {
        Ec2Fleet::from_client(Client::new(&super::without_sdk_retries(shared)))
    }

    /// Over a client built elsewhere (tests).
    pub fn from_client(client: Client) -> Ec2Fleet {
        Ec2Fleet {
            client,
            root_devices: Arc::default(),
        }
    }

    /// The root device name of `ami`, from DescribeImages (cached).
    async fn root_device(&self, ami: &str) -> Result<String, PortError> {
        if let Some(d) = self.root_devices.lock().expect("cache lock").get(ami) {
            return Ok(d.clone());
        }
        let out = self
            .client
            .describe_images()
            .image_ids(ami)
            .send()
            .await
            .map_err(|e| map_error("DescribeImages", e))?;
        let device = out
            .images()
            .first()
            .and_then(|i| i.root_device_name())
            .map(str::to_string)
            .ok_or_else(|| {
                PortError::Other(format!(
                    "InvalidAMIID.NotFound: the AMI {ami} does not exist or is not visible to this account (set the step's worker.ami or the stack's WorkerAmi)"
                ))
            })?;
        self.root_devices
            .lock()
            .expect("cache lock")
            .insert(ami.to_string(), device.clone());
        Ok(device)
    }
}

fn state(s: Option<&InstanceStateName>) -> InstanceState {
    match s {
        Some(InstanceStateName::Pending) => InstanceState::Pending,
        Some(InstanceStateName::Running) => InstanceState::Running,
        Some(InstanceStateName::ShuttingDown) => InstanceState::ShuttingDown,
        Some(InstanceStateName::Stopping) => InstanceState::Stopping,
        Some(InstanceStateName::Stopped) => InstanceState::Stopped,
        _ => InstanceState::Terminated,
    }
}

fn tags_of(t: &[Tag]) -> BTreeMap<String, String> {
    t.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

#[async_trait]
impl Fleet for Ec2Fleet {
    async fn launch(&self, spec: &LaunchSpec) -> Result<Vec<String>, PortError> {
        let tags: Vec<Tag> = spec
            .tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        let tag_spec = |rt: ResourceType| {
            TagSpecification::builder()
                .resource_type(rt)
                .set_tags(Some(tags.clone()))
                .build()
        };
        let root_device = self.root_device(&spec.ami).await?;
        let mut req = self
            .client
            .run_instances()
            .image_id(&spec.ami)
            .instance_type(InstanceType::from(spec.instance_type.as_str()))
            // All or nothing per type/market: a short type fails with a capacity error and the
            // whole batch moves on to the next type.
            .min_count(spec.count as i32)
            .max_count(spec.count as i32)
            .client_token(&spec.client_token)
            .user_data(aws_smithy_types::base64::encode(spec.user_data.as_bytes()))
            .instance_initiated_shutdown_behavior(ShutdownBehavior::Terminate)
            .metadata_options(
                InstanceMetadataOptionsRequest::builder()
                    .http_tokens(HttpTokensState::Required)
                    .http_endpoint(InstanceMetadataEndpointState::Enabled)
                    .http_put_response_hop_limit(spec.imds_hop_limit as i32)
                    .build(),
            )
            .block_device_mappings(
                BlockDeviceMapping::builder()
                    .device_name(&root_device)
                    .ebs(
                        EbsBlockDevice::builder()
                            .volume_size(spec.disk_gb as i32)
                            .volume_type(VolumeType::Gp3)
                            .encrypted(true)
                            .delete_on_termination(true)
                            .build(),
                    )
                    .build(),
            )
            .tag_specifications(tag_spec(ResourceType::Instance))
            .tag_specifications(tag_spec(ResourceType::Volume))
            .set_subnet_id(spec.subnet.clone())
            .set_security_group_ids(
                (!spec.security_groups.is_empty()).then(|| spec.security_groups.clone()),
            );
        if !spec.instance_profile.is_empty() {
            req = req.iam_instance_profile(
                IamInstanceProfileSpecification::builder()
                    .name(&spec.instance_profile)
                    .build(),
            );
        }
        if spec.purchase == Purchase::Spot {
            req = req.instance_market_options(
                InstanceMarketOptionsRequest::builder()
                    .market_type(MarketType::Spot)
                    .spot_options(
                        SpotMarketOptions::builder()
                            .spot_instance_type(SpotInstanceType::OneTime)
                            .instance_interruption_behavior(InstanceInterruptionBehavior::Terminate)
                            .build(),
                    )
                    .build(),
            );
        }
        let out = req.send().await.map_err(|e| map_error("RunInstances", e))?;
        Ok(out
            .instances()
            .iter()
            .filter_map(|i| i.instance_id().map(str::to_string))
            .collect())
    }

    async fn instances(&self, tags: &[(String, String)]) -> Result<Vec<Instance>, PortError> {
        let mut filters: Vec<Filter> = tags
            .iter()
            .map(|(k, v)| Filter::builder().name(format!("tag:{k}")).values(v).build())
            .collect();
        filters.push(
            Filter::builder()
                .name("instance-state-name")
                .set_values(Some(
                    ["pending", "running", "shutting-down", "stopping", "stopped"]
                        .map(String::from)
                        .to_vec(),
                ))
                .build(),
        );
        let mut pages = self
            .client
            .describe_instances()
            .set_filters(Some(filters))
            .into_paginator()
            .send();
        let mut out = vec![];
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| map_error("DescribeInstances", e))?;
            for r in page.reservations() {
                for i in r.instances() {
                    let s = state(i.state().and_then(|s| s.name()));
                    if s == InstanceState::Terminated {
                        continue;
                    }
                    out.push(Instance {
                        id: i.instance_id().unwrap_or_default().to_string(),
                        state: s,
                        instance_type: i
                            .instance_type()
                            .map(|t| t.as_str().to_string())
                            .unwrap_or_default(),
                        launch_time: i.launch_time().and_then(to_chrono),
                        tags: tags_of(i.tags()),
                    });
                }
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn tag(
        &self,
        instance_id: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), PortError> {
        self.client
            .create_tags()
            .resources(instance_id)
            .set_tags(Some(
                tags.iter()
                    .map(|(k, v)| Tag::builder().key(k).value(v).build())
                    .collect(),
            ))
            .send()
            .await
            .map_err(|e| map_error("CreateTags", e))?;
        Ok(())
    }

    async fn terminate(&self, instance_ids: &[String]) -> Result<(), PortError> {
        if instance_ids.is_empty() {
            return Ok(());
        }
        self.client
            .terminate_instances()
            .set_instance_ids(Some(instance_ids.to_vec()))
            .send()
            .await
            .map_err(|e| map_error("TerminateInstances", e))?;
        Ok(())
    }
}
