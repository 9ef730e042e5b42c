//! The EC2 adapter (`Ec2Fleet`) through the real aws-sdk-ec2 client against moto_server.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Filter, HttpTokensState, InstanceAttributeName};
use boa_aws::adapters::Ec2Fleet;
use boa_aws::ports::{Fleet, LaunchSpec, PortError, Purchase, tags};
use e2e_tests::moto::{Moto, sdk_config_for};

async fn some_ami(ec2: &aws_sdk_ec2::Client) -> String {
    ami_and_root(ec2).await.0
}

/// An AMI whose root device is not `/dev/xvda` (moto ships several with `/dev/sda1`), so a
/// hard-coded device name would show, and its root device name.
async fn ami_and_root(ec2: &aws_sdk_ec2::Client) -> (String, String) {
    let imgs = ec2.describe_images().send().await.unwrap();
    let i = imgs
        .images()
        .iter()
        .find(|i| i.root_device_name().is_some_and(|d| d != "/dev/xvda"))
        .expect("an AMI with another root device");
    (
        i.image_id().unwrap().to_string(),
        i.root_device_name().unwrap().to_string(),
    )
}

fn spec(ami: &str, activity: &str, token: &str, count: u32) -> LaunchSpec {
    let mut t = BTreeMap::new();
    t.insert(tags::STACK.to_string(), "build-on-aws-demo".to_string());
    t.insert(tags::ACTIVITY.to_string(), activity.to_string());
    t.insert(tags::EXECUTION.to_string(), "arn:exec:1".to_string());
    t.insert(tags::STATE.to_string(), "PrepareBuild".to_string());
    t.insert(tags::NAME.to_string(), "wa-0-Build".to_string());
    LaunchSpec {
        count,
        instance_type: "c7i.large".into(),
        purchase: Purchase::OnDemand,
        client_token: token.into(),
        ami: ami.into(),
        disk_gb: 64,
        imds_hop_limit: 1,
        instance_profile: String::new(),
        subnet: None,
        security_groups: vec![],
        user_data: "#!/bin/bash\nexport BOA_STEP='Build'\nexec ./worker\n".into(),
        tags: t,
    }
}

#[tokio::test]
async fn launch_sets_tags_userdata_imdsv2_shutdown_and_an_encrypted_gp3_root() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let fleet = Ec2Fleet::from_client(ec2.clone());
    let (ami, root) = ami_and_root(&ec2).await;
    let s = spec(&ami, "build-on-aws-demo-Build", "boa-token-1", 2);
    let ids = fleet.launch(&s).await.unwrap();
    assert_eq!(ids.len(), 2);

    let d = ec2
        .describe_instances()
        .set_instance_ids(Some(ids.clone()))
        .send()
        .await
        .unwrap();
    let insts: Vec<_> = d
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .collect();
    assert_eq!(insts.len(), 2);
    for i in &insts {
        let t: BTreeMap<&str, &str> = i
            .tags()
            .iter()
            .map(|t| (t.key().unwrap(), t.value().unwrap()))
            .collect();
        assert_eq!(t[tags::ACTIVITY], "build-on-aws-demo-Build");
        assert_eq!(t[tags::NAME], "wa-0-Build");
        assert_eq!(t[tags::STATE], "PrepareBuild");
        assert_eq!(i.instance_type().unwrap().as_str(), "c7i.large");
        assert_eq!(
            i.metadata_options().unwrap().http_tokens(),
            Some(&HttpTokensState::Required)
        );
        assert_eq!(
            i.metadata_options().unwrap().http_put_response_hop_limit(),
            Some(1),
            "containers on the worker must not reach its credentials"
        );
        assert_eq!(i.client_token(), Some("boa-token-1"));
        // The root volume: encrypted gp3 of the asked size, on the AMI's own root device (not
        // an extra unencrypted root beside it).
        assert_eq!(i.root_device_name(), Some(root.as_str()));
        assert_eq!(
            i.block_device_mappings().len(),
            1,
            "{:?}",
            i.block_device_mappings()
        );
        assert_eq!(
            i.block_device_mappings()[0].device_name(),
            Some(root.as_str())
        );
        let vol_id = i.block_device_mappings()[0]
            .ebs()
            .unwrap()
            .volume_id()
            .unwrap();
        let v = ec2
            .describe_volumes()
            .volume_ids(vol_id)
            .send()
            .await
            .unwrap();
        let v = &v.volumes()[0];
        assert_eq!(v.encrypted(), Some(true));
        assert_eq!(v.size(), Some(64));
        assert_eq!(v.volume_type().unwrap().as_str(), "gp3");
    }
    let ud = ec2
        .describe_instance_attribute()
        .instance_id(&ids[0])
        .attribute(InstanceAttributeName::UserData)
        .send()
        .await
        .unwrap();
    let b64 = ud.user_data().unwrap().value().unwrap();
    let decoded = aws_smithy_types::base64::decode(b64).unwrap();
    assert_eq!(String::from_utf8(decoded).unwrap(), s.user_data);
    let sd = ec2
        .describe_instance_attribute()
        .instance_id(&ids[0])
        .attribute(InstanceAttributeName::InstanceInitiatedShutdownBehavior)
        .send()
        .await
        .unwrap();
    assert_eq!(
        sd.instance_initiated_shutdown_behavior().unwrap().value(),
        Some("terminate")
    );
}

#[tokio::test]
async fn a_spot_launch_asks_for_a_one_time_spot_instance() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let fleet = Ec2Fleet::from_client(ec2.clone());
    let ami = some_ami(&ec2).await;
    let mut s = spec(&ami, "build-on-aws-demo-Build", "boa-spot", 1);
    s.purchase = Purchase::Spot;
    let ids = fleet.launch(&s).await.unwrap();
    let d = ec2
        .describe_instances()
        .instance_ids(&ids[0])
        .send()
        .await
        .unwrap();
    let i = &d.reservations()[0].instances()[0];
    assert_eq!(i.instance_lifecycle().map(|l| l.as_str()), Some("spot"));
}

#[tokio::test]
async fn instances_filter_by_tags_see_new_tags_and_drop_terminated_ones() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let fleet = Ec2Fleet::from_client(ec2.clone());
    let ami = some_ami(&ec2).await;
    let a = fleet
        .launch(&spec(&ami, "build-on-aws-demo-Build", "t-a", 2))
        .await
        .unwrap();
    let b = fleet
        .launch(&spec(&ami, "build-on-aws-demo-Publish", "t-b", 1))
        .await
        .unwrap();
    let filter = |act: &str| {
        vec![
            (tags::STACK.to_string(), "build-on-aws-demo".to_string()),
            (tags::ACTIVITY.to_string(), act.to_string()),
        ]
    };
    let mut got: Vec<String> = fleet
        .instances(&filter("build-on-aws-demo-Build"))
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    got.sort();
    let mut want = a.clone();
    want.sort();
    assert_eq!(got, want);
    let all = fleet
        .instances(&[(tags::STACK.to_string(), "build-on-aws-demo".to_string())])
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    assert!(
        all.iter()
            .all(|i| i.state.is_live() && i.launch_time.is_some())
    );

    fleet
        .tag(
            &b[0],
            &[(tags::WORK.to_string(), "busy".to_string())].into(),
        )
        .await
        .unwrap();
    let pub_ = fleet
        .instances(&filter("build-on-aws-demo-Publish"))
        .await
        .unwrap();
    assert_eq!(pub_[0].tags[tags::WORK], "busy");

    fleet.terminate(&a[..1]).await.unwrap();
    let left = fleet
        .instances(&filter("build-on-aws-demo-Build"))
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, a[1]);
    // moto shows the terminated one in a plain describe: the adapter's state filter hid it.
    let raw = ec2
        .describe_instances()
        .filters(Filter::builder().name("instance-id").values(&a[0]).build())
        .send()
        .await
        .unwrap();
    let st = raw.reservations()[0].instances()[0]
        .state()
        .unwrap()
        .name()
        .unwrap()
        .clone();
    assert_eq!(st.as_str(), "terminated");
}

#[tokio::test]
async fn errors_map_to_port_errors() {
    let moto = Moto::start();
    let fleet = Ec2Fleet::from_client(moto.ec2().await);
    match fleet.terminate(&["i-0000000000000dead".to_string()]).await {
        Err(PortError::NotFound(m)) => assert!(m.contains("InvalidInstanceID.NotFound"), "{m}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    // Nothing listens on a freshly closed port: a transport failure is transient.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = Ec2Fleet::from_client(aws_sdk_ec2::Client::new(
        &sdk_config_for(&format!("http://127.0.0.1:{port}")).await,
    ));
    match dead.instances(&[]).await {
        Err(e @ PortError::Transient(_)) => assert!(e.is_retryable()),
        other => panic!("expected Transient, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unknown_ami_is_refused_before_any_launch_naming_it() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let fleet = Ec2Fleet::from_client(ec2.clone());
    let e = fleet
        .launch(&spec(
            "ami-0123456789abcdef0",
            "build-on-aws-demo-Build",
            "t-x",
            1,
        ))
        .await
        .unwrap_err();
    assert!(!e.is_retryable(), "{e:?}");
    assert!(e.to_string().contains("ami-0123456789abcdef0"), "{e}");
    let d = ec2.describe_instances().send().await.unwrap();
    assert!(d.reservations().is_empty(), "nothing was launched");
}
