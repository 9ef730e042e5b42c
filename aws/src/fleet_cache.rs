//! A short-lived shared view of the fleet, so that every `Prepare` does not cost a
//! DescribeInstances.
//!
//! [`CachedFleet`] wraps any [`Fleet`]. `instances(filter)` is served from one DescribeInstances
//! per filter per `ttl` (a few seconds of pipeline time, [`FLEET_VIEW_TTL`]); concurrent callers
//! that miss share the one request in flight. What this process itself does is never missed:
//!
//! - its own launches are added to every view they match the moment RunInstances returns, and
//!   kept for [`LAUNCH_MEMORY`] on top of fresh views too (DescribeInstances is eventually
//!   consistent and may not list an instance launched a moment ago), so a launch is never
//!   double-counted: two `Prepare` calls in one warm Lambda container within the interval see
//!   each other's launches exactly as they would with a fresh DescribeInstances each;
//! - its own terminations show the instances as shutting down, and its own tags are applied.
//!
//! What other processes do (workers tagging themselves busy or idle, the health check, other
//! Lambda containers launching) is seen at the next refresh. Staleness may only make a caller
//! launch a worker more, never fewer, because a view holding a *registered idle* worker is never
//! reused: an idle worker is the one entry whose change (it took another task, or shut down
//! after its idle timeout) would make a caller count a spare worker that is not there, and wait.
//! Booting and busy workers going stale can only make the caller launch one worker more
//! (bounded by the worker cap), as a race between two fresh DescribeInstances does. An
//! exclusive step stays single by its lock in the bucket, not by this view.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;

use crate::ports::{Fleet, Instance, InstanceState, LaunchSpec, PortError, tags};

/// How long a view of the fleet is reused, in pipeline time (scale it with the stack's time
/// scale).
pub const FLEET_VIEW_TTL: Duration = Duration::from_secs(5);

/// How long this process's own launches are added to views that do not list them yet, in
/// pipeline time: longer than EC2's eventual consistency, far shorter than any boot timeout.
pub const LAUNCH_MEMORY: Duration = Duration::from_secs(30);

type Filter = Vec<(String, String)>;

#[derive(Debug, Clone)]
struct View {
    fetched: Instant,
    instances: Vec<Instance>,
}

#[derive(Debug, Clone)]
struct Launched {
    at: Instant,
    instance: Instance,
}

#[derive(Debug, Default)]
struct Own {
    /// This process's launches, newest last.
    launched: Vec<Launched>,
    /// Ids this process terminated, and when (forgotten after the launch memory, by when every
    /// view lists them as shutting down or not at all).
    terminated: BTreeMap<String, Instant>,
}

/// Counts of what the cache did, for tests and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// DescribeInstances requests made through the inner fleet.
    pub describes: u64,
    /// `instances()` calls answered from a view.
    pub served: u64,
}

/// A [`Fleet`] whose `instances()` is served from short-lived views (see the module docs).
pub struct CachedFleet {
    inner: Arc<dyn Fleet>,
    ttl: Duration,
    memory: Duration,
    views: Mutex<BTreeMap<Filter, Arc<tokio::sync::Mutex<Option<View>>>>>,
    own: Mutex<Own>,
    describes: AtomicU64,
    served: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn matches(tags: &BTreeMap<String, String>, filter: &[(String, String)]) -> bool {
    filter
        .iter()
        .all(|(k, v)| tags.get(k).is_some_and(|x| x == v))
}

/// A live worker that registered and is not busy: a view holding one is not reused.
fn is_registered_idle(i: &Instance) -> bool {
    i.state.is_live() && i.tags.get(tags::WORK).is_some_and(|w| w != "busy")
}

impl CachedFleet {
    /// Views reused for `ttl`, own launches remembered for `memory` (both real time: pass the
    /// pipeline durations through the stack's time scale).
    pub fn new(inner: Arc<dyn Fleet>, ttl: Duration, memory: Duration) -> CachedFleet {
        CachedFleet {
            inner,
            ttl,
            memory: memory.max(ttl),
            views: Mutex::new(BTreeMap::new()),
            own: Mutex::new(Own::default()),
            describes: AtomicU64::new(0),
            served: AtomicU64::new(0),
        }
    }

    /// [`FLEET_VIEW_TTL`] and [`LAUNCH_MEMORY`] divided by `time_scale`.
    pub fn for_time_scale(inner: Arc<dyn Fleet>, time_scale: f64) -> CachedFleet {
        let s = |d| boa_core::duration::scaled(d, time_scale);
        CachedFleet::new(inner, s(FLEET_VIEW_TTL), s(LAUNCH_MEMORY))
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            describes: self.describes.load(Ordering::Relaxed),
            served: self.served.load(Ordering::Relaxed),
        }
    }

    /// Forgets every view: the next `instances()` of each filter asks the inner fleet.
    pub fn invalidate(&self) {
        lock(&self.views).clear();
    }

    fn slot(&self, filter: &Filter) -> Arc<tokio::sync::Mutex<Option<View>>> {
        Arc::clone(lock(&self.views).entry(filter.clone()).or_default())
    }

    /// A view with what this process did on top: its terminations, and its recent launches
    /// the view does not list yet.
    fn overlay(&self, filter: &[(String, String)], mut instances: Vec<Instance>) -> Vec<Instance> {
        let mut own = lock(&self.own);
        let memory = self.memory;
        own.launched.retain(|l| l.at.elapsed() < memory);
        own.terminated.retain(|_, at| at.elapsed() < memory);
        // Hundreds of launches over a view of hundreds of instances: look ids up, not scan.
        let listed: std::collections::HashSet<String> =
            instances.iter().map(|i| i.id.clone()).collect();
        for l in &own.launched {
            if !own.terminated.contains_key(&l.instance.id)
                && matches(&l.instance.tags, filter)
                && !listed.contains(&l.instance.id)
            {
                instances.push(l.instance.clone());
            }
        }
        for i in &mut instances {
            if own.terminated.contains_key(&i.id) && i.state.is_live() {
                i.state = InstanceState::ShuttingDown;
            }
        }
        instances
    }
}

#[async_trait]
impl Fleet for CachedFleet {
    async fn launch(&self, spec: &LaunchSpec) -> Result<Vec<String>, PortError> {
        let ids = self.inner.launch(spec).await?;
        let now = Instant::now();
        let mut own = lock(&self.own);
        for id in &ids {
            // A retried request (same ClientToken) returns the same ids: keep one entry each.
            if own.launched.iter().any(|l| &l.instance.id == id) {
                continue;
            }
            own.launched.push(Launched {
                at: now,
                instance: Instance {
                    id: id.clone(),
                    state: InstanceState::Pending,
                    instance_type: spec.instance_type.clone(),
                    launch_time: Some(Utc::now()),
                    tags: spec.tags.clone(),
                },
            });
        }
        Ok(ids)
    }

    async fn instances(&self, filter: &[(String, String)]) -> Result<Vec<Instance>, PortError> {
        let mut key: Filter = filter.to_vec();
        key.sort();
        let slot = self.slot(&key);
        let called = Instant::now();
        // Held across the request: concurrent misses of one filter wait for it and share it.
        let mut view = slot.lock().await;
        if let Some(v) = view.as_ref() {
            // Fetched while this call waited for the slot: as fresh as a request made now, idle
            // workers included (a burst of Prepare calls shares one request instead of making
            // one each, one after another).
            let fresh = v.fetched >= called;
            if fresh || v.fetched.elapsed() < self.ttl {
                let served = self.overlay(filter, v.instances.clone());
                if fresh || !served.iter().any(is_registered_idle) {
                    self.served.fetch_add(1, Ordering::Relaxed);
                    return Ok(served);
                }
            }
        }
        *view = None;
        let fetched = Instant::now();
        self.describes.fetch_add(1, Ordering::Relaxed);
        let instances = self.inner.instances(filter).await?;
        *view = Some(View {
            fetched,
            instances: instances.clone(),
        });
        Ok(self.overlay(filter, instances))
    }

    async fn tag(
        &self,
        instance_id: &str,
        new_tags: &BTreeMap<String, String>,
    ) -> Result<(), PortError> {
        self.inner.tag(instance_id, new_tags).await?;
        // A view that listed the instance may no longer match its filter: drop them all.
        self.invalidate();
        let mut own = lock(&self.own);
        for l in own
            .launched
            .iter_mut()
            .filter(|l| l.instance.id == instance_id)
        {
            l.instance.tags.extend(new_tags.clone());
        }
        Ok(())
    }

    async fn terminate(&self, instance_ids: &[String]) -> Result<(), PortError> {
        let r = self.inner.terminate(instance_ids).await;
        // Even a failed request may have terminated some: count them gone until a fresh view.
        let now = Instant::now();
        lock(&self.own)
            .terminated
            .extend(instance_ids.iter().map(|id| (id.clone(), now)));
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::FakeFleet;
    use crate::ports::Purchase;

    const HOUR: Duration = Duration::from_secs(3600);

    fn filter(activity: &str) -> Vec<(String, String)> {
        vec![
            (tags::STACK.to_string(), "s".to_string()),
            (tags::ACTIVITY.to_string(), activity.to_string()),
        ]
    }

    fn spec(activity: &str, token: &str) -> LaunchSpec {
        LaunchSpec {
            count: 1,
            instance_type: "c7i.large".into(),
            purchase: Purchase::OnDemand,
            client_token: token.into(),
            ami: "ami-1".into(),
            disk_gb: 8,
            imds_hop_limit: 1,
            instance_profile: String::new(),
            subnet: None,
            security_groups: vec![],
            user_data: String::new(),
            tags: filter(activity).into_iter().collect(),
        }
    }

    fn cached(ttl: Duration) -> (Arc<FakeFleet>, CachedFleet) {
        let fake = Arc::new(FakeFleet::new());
        let c = CachedFleet::new(fake.clone(), ttl, HOUR);
        (fake, c)
    }

    fn ids(v: &[Instance]) -> Vec<String> {
        let mut v: Vec<String> = v.iter().map(|i| i.id.clone()).collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn one_describe_serves_the_interval_and_own_launches_are_in_it() {
        let (fake, c) = cached(HOUR);
        assert!(c.instances(&filter("A")).await.unwrap().is_empty());
        let a = c.launch(&spec("A", "t1")).await.unwrap();
        let seen = c.instances(&filter("A")).await.unwrap();
        assert_eq!(
            ids(&seen),
            a,
            "the second caller sees the first one's launch"
        );
        assert_eq!(seen[0].state, InstanceState::Pending);
        let b = c.launch(&spec("A", "t2")).await.unwrap();
        // A retried request (same token) returns the same ids: still one instance each.
        assert_eq!(c.launch(&spec("A", "t2")).await.unwrap(), b);
        let seen = c.instances(&filter("A")).await.unwrap();
        assert_eq!(seen.len(), 2);
        // Another activity's view does not hold them.
        assert!(c.instances(&filter("B")).await.unwrap().is_empty());
        assert_eq!(
            c.stats(),
            CacheStats {
                describes: 2,
                served: 2
            }
        );
        assert_eq!(fake.live_ids().len(), 2);
    }

    #[tokio::test]
    async fn own_launches_survive_a_lagging_describe() {
        // ttl zero: every call asks EC2, which does not list the new instance yet.
        let (fake, c) = cached(Duration::ZERO);
        fake.lag_describe();
        let a = c.launch(&spec("A", "t1")).await.unwrap();
        assert!(fake.instances(&filter("A")).await.unwrap().is_empty());
        assert_eq!(ids(&c.instances(&filter("A")).await.unwrap()), a);
        fake.settle();
        assert_eq!(
            ids(&c.instances(&filter("A")).await.unwrap()),
            a,
            "listed once"
        );
        assert_eq!(c.stats().describes, 2);
    }

    #[tokio::test]
    async fn a_view_with_an_idle_worker_is_never_reused() {
        let (fake, c) = cached(HOUR);
        let f = filter("A");
        let busy: Vec<(&str, &str)> = vec![
            (tags::STACK, "s"),
            (tags::ACTIVITY, "A"),
            (tags::WORK, "busy"),
        ];
        fake.add("i-busy", InstanceState::Running, &busy);
        c.instances(&f).await.unwrap();
        c.instances(&f).await.unwrap();
        assert_eq!(c.stats().describes, 1, "busy and booting workers: reused");
        let idle: Vec<(&str, &str)> = vec![
            (tags::STACK, "s"),
            (tags::ACTIVITY, "A"),
            (tags::WORK, "idle"),
        ];
        fake.add("i-idle", InstanceState::Running, &idle);
        c.invalidate();
        c.instances(&f).await.unwrap();
        // The idle worker may take another task or shut down at any moment: ask again.
        fake.add("i-idle", InstanceState::Terminated, &idle);
        let seen = c.instances(&f).await.unwrap();
        assert_eq!(c.stats().describes, 3);
        assert_eq!(ids(&seen), ["i-busy"]);
    }

    /// A fleet whose DescribeInstances takes a while, so that calls overlap.
    struct SlowDescribe(Arc<FakeFleet>);

    #[async_trait]
    impl Fleet for SlowDescribe {
        async fn launch(&self, spec: &LaunchSpec) -> Result<Vec<String>, PortError> {
            self.0.launch(spec).await
        }
        async fn instances(&self, f: &[(String, String)]) -> Result<Vec<Instance>, PortError> {
            tokio::time::sleep(Duration::from_millis(30)).await;
            self.0.instances(f).await
        }
        async fn tag(&self, id: &str, t: &BTreeMap<String, String>) -> Result<(), PortError> {
            self.0.tag(id, t).await
        }
        async fn terminate(&self, ids: &[String]) -> Result<(), PortError> {
            self.0.terminate(ids).await
        }
    }

    #[tokio::test]
    async fn a_burst_shares_the_describes_made_while_it_waited_even_with_an_idle_worker() {
        let fake = Arc::new(FakeFleet::new());
        let idle: Vec<(&str, &str)> = vec![
            (tags::STACK, "s"),
            (tags::ACTIVITY, "A"),
            (tags::WORK, "idle"),
        ];
        fake.add("i-idle", InstanceState::Running, &idle);
        let c = Arc::new(CachedFleet::new(
            Arc::new(SlowDescribe(fake.clone())),
            HOUR,
            HOUR,
        ));
        let mut burst = tokio::task::JoinSet::new();
        for _ in 0..10 {
            let c = Arc::clone(&c);
            burst.spawn(async move { c.instances(&filter("A")).await });
        }
        while let Some(r) = burst.join_next().await {
            assert_eq!(ids(&r.unwrap().unwrap()), ["i-idle"]);
        }
        // The first call's request, then one made after the others had started waiting: every
        // later caller of the burst takes that one.
        assert_eq!(c.stats().describes, 2, "{:?}", c.stats());
        // A call after the burst asks again: the idle worker may have changed since.
        c.instances(&filter("A")).await.unwrap();
        assert_eq!(c.stats().describes, 3);
    }

    #[tokio::test]
    async fn a_call_dropped_during_its_request_lets_the_waiting_calls_make_theirs() {
        let fake = Arc::new(FakeFleet::new());
        fake.add(
            "i-1",
            InstanceState::Running,
            &[(tags::STACK, "s"), (tags::ACTIVITY, "A")],
        );
        let c = Arc::new(CachedFleet::new(
            Arc::new(SlowDescribe(fake.clone())),
            HOUR,
            HOUR,
        ));
        let first = {
            let c = Arc::clone(&c);
            tokio::spawn(async move { c.instances(&filter("A")).await })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        let second = {
            let c = Arc::clone(&c);
            tokio::spawn(async move { c.instances(&filter("A")).await })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        // The first call's Lambda invocation is cancelled while its request is in flight.
        first.abort();
        let seen = tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("the waiting call is not left waiting")
            .unwrap()
            .unwrap();
        assert_eq!(ids(&seen), ["i-1"]);
        assert_eq!(c.stats().describes, 2, "the dropped request, then its own");
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_describe_and_errors_are_not_kept() {
        let (fake, c) = cached(HOUR);
        let f = filter("A");
        let (x, y) = tokio::join!(c.instances(&f), c.instances(&f));
        assert!(x.unwrap().is_empty() && y.unwrap().is_empty());
        assert_eq!(c.stats().describes, 1);

        let (fake2, c2) = cached(HOUR);
        fake2.fail_instances(PortError::Throttled("RequestLimitExceeded".into()));
        assert!(c2.instances(&f).await.is_err());
        assert!(c2.instances(&f).await.is_err());
        assert_eq!(c2.stats().describes, 2, "a failure is asked again");
        drop(fake);
    }

    #[tokio::test]
    async fn own_terminations_and_tags_show_at_once() {
        let (fake, c) = cached(HOUR);
        let f = filter("A");
        let a = c.launch(&spec("A", "t1")).await.unwrap();
        assert_eq!(c.instances(&f).await.unwrap().len(), 1);
        c.terminate(&a).await.unwrap();
        let seen = c.instances(&f).await.unwrap();
        assert!(seen.iter().all(|i| !i.state.is_live()), "{seen:?}");
        assert_eq!(fake.terminated(), a);

        let b = c.launch(&spec("A", "t2")).await.unwrap();
        c.tag(
            &b[0],
            &[(tags::WORK.to_string(), "busy".to_string())].into(),
        )
        .await
        .unwrap();
        let seen = c.instances(&f).await.unwrap();
        let tagged = seen.iter().find(|i| i.id == b[0]).unwrap();
        assert_eq!(tagged.tags[tags::WORK], "busy");
    }
}
