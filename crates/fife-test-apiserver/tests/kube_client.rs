//! The API test server driven by kube 5 clients: watchers across dropped streams and
//! 410 Gone, optimistic concurrency, and server-side apply by several managers.

use fife_test_apiserver::{ApiServer, Config, FaultPlan};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

async fn start() -> (ApiServer, kube::Client) {
    let config = Config {
        rollout_delay: Duration::from_millis(20),
        ..Config::default()
    };
    let server = ApiServer::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&server.kubeconfig()).unwrap();
    let options = kube::config::KubeConfigOptions::default();
    let client_config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .unwrap();
    (server, kube::Client::try_from(client_config).unwrap())
}

fn cm(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(json!({ "metadata": { "name": name }, "data": { "v": value } })).unwrap()
}

/// What a watcher consumer saw, by (name, resourceVersion).
#[derive(Default, Debug)]
struct Seen {
    applied: Vec<(String, String)>,
    deleted: Vec<(String, String)>,
    relists: usize,
    latest: BTreeMap<String, String>,
    relisting: BTreeMap<String, String>,
}

fn key(c: &ConfigMap) -> (String, String) {
    (
        c.metadata.name.clone().unwrap(),
        c.metadata.resource_version.clone().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_sees_every_change_once_across_drops_and_gone() {
    let (server, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &cm("before", "0"))
        .await
        .unwrap();

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stream = watcher::watcher(api.clone(), watcher::Config::default()).default_backoff();
    let consumer = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            if let Ok(event) = event
                && tx.send(event).is_err()
            {
                return;
            }
        }
    });
    let mut seen = Seen::default();
    // Drains events until `done` holds for what has been seen.
    async fn until(
        rx: &mut tokio::sync::mpsc::UnboundedReceiver<Event<ConfigMap>>,
        seen: &mut Seen,
        done: impl Fn(&Seen) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while !done(seen) {
            let event = tokio::time::timeout_at(deadline, rx.recv())
                .await
                .expect("watcher stalled")
                .expect("watcher ended");
            match event {
                Event::Apply(c) => {
                    seen.latest.insert(key(&c).0, key(&c).1);
                    seen.applied.push(key(&c));
                }
                Event::Delete(c) => {
                    seen.latest.remove(&key(&c).0);
                    seen.deleted.push(key(&c));
                }
                Event::Init => {
                    seen.relists += 1;
                    seen.relisting.clear();
                }
                Event::InitApply(c) => {
                    seen.relisting.insert(key(&c).0, key(&c).1);
                }
                Event::InitDone => seen.latest = std::mem::take(&mut seen.relisting),
            }
        }
    }
    until(&mut rx, &mut seen, |s| {
        s.relists == 1 && s.latest.contains_key("before")
    })
    .await;

    // Phase 1: changes, a dropped stream in the middle, more changes. The watcher
    // resumes from its last resourceVersion: every change arrives exactly once.
    let mut written = Vec::new();
    for i in 0..5 {
        written.push(key(&api
            .create(&PostParams::default(), &cm(&format!("a{i}"), "1"))
            .await
            .unwrap()));
    }
    server.drop_watches();
    for i in 0..5 {
        let patch = Patch::Merge(json!({ "data": { "v": "2" } }));
        written.push(key(&api
            .patch(&format!("a{i}"), &PatchParams::default(), &patch)
            .await
            .unwrap()));
    }
    let last = written.last().unwrap().clone();
    until(&mut rx, &mut seen, |s| s.applied.contains(&last)).await;
    assert_eq!(
        seen.relists, 1,
        "a dropped stream resumes without relisting"
    );
    let applied: BTreeSet<_> = seen.applied.iter().cloned().collect();
    assert_eq!(
        applied.len(),
        seen.applied.len(),
        "no change delivered twice: {:?}",
        seen.applied
    );
    assert_eq!(
        applied,
        written.iter().cloned().collect(),
        "every change delivered"
    );

    // Phase 2: the stream stays down (watch requests fail) while objects change and the
    // history is compacted, so the resume gets 410 Gone and the watcher relists; the
    // relist shows the state after the gap.
    server.set_faults(FaultPlan {
        error_rate: 1.0,
        error_codes: vec![500],
        path_contains: "watch=".into(),
        ..Default::default()
    });
    server.drop_watches();
    api.delete("a0", &Default::default()).await.unwrap();
    let during_gap = key(&api
        .patch(
            "a1",
            &PatchParams::default(),
            &Patch::Merge(json!({ "data": { "v": "3" } })),
        )
        .await
        .unwrap());
    server.compact();
    server.set_faults(FaultPlan::default());
    until(&mut rx, &mut seen, |s| {
        s.relists == 2 && s.latest.get("a1") == Some(&during_gap.1)
    })
    .await;
    assert!(
        !seen.latest.contains_key("a0"),
        "the relist drops objects deleted during the gap"
    );
    let before_relist = seen.applied.len();
    let after = key(&api
        .create(&PostParams::default(), &cm("after", "1"))
        .await
        .unwrap());
    api.delete("a2", &Default::default()).await.unwrap();
    until(&mut rx, &mut seen, |s| {
        s.deleted.iter().any(|(n, _)| n == "a2")
    })
    .await;
    assert_eq!(
        &seen.applied[before_relist..],
        &[after],
        "after the relist, each change once"
    );

    // The consumer's view equals the server's.
    let live: BTreeMap<String, String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(key)
        .collect();
    assert_eq!(seen.latest, live);
    consumer.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_on_one_resource_version_get_one_conflict() {
    let (_server, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let base = api
        .create(&PostParams::default(), &cm("race", "0"))
        .await
        .unwrap();
    for round in 0..5 {
        let current = api.get("race").await.unwrap();
        let writers = (0..4).map(|w| {
            let api = api.clone();
            let mut mine = current.clone();
            mine.data = Some([("v".to_string(), format!("{round}-{w}"))].into());
            async move { api.replace("race", &PostParams::default(), &mine).await }
        });
        let results = futures::future::join_all(writers).await;
        let wins = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "exactly one writer wins round {round}");
        for r in results.iter().filter_map(|r| r.as_ref().err()) {
            match r {
                kube::Error::Api(s) => {
                    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
                    assert!(
                        s.message.contains("the object has been modified"),
                        "{}",
                        s.message
                    );
                }
                other => panic!("expected a 409 Conflict, got {other}"),
            }
        }
    }
    // A stale update is refused even when nobody races.
    let err = api
        .replace("race", &PostParams::default(), &base)
        .await
        .unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.code == 409));
}

fn deployment(manager_fields: serde_json::Value) -> serde_json::Value {
    let mut d =
        json!({ "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "web" } });
    fife_test_apiserver::patch::merge_patch(&mut d, &manager_fields);
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_merges_two_managers_like_the_real_server() {
    let (_server, client) = start().await;
    let api: Api<Deployment> = Api::namespaced(client, "default");
    let fife = PatchParams::apply("fife");
    let mesh = PatchParams::apply("mesh");
    let ours = deployment(json!({
        "metadata": { "labels": { "app": "web", "fife.dev/role": "canary" } },
        "spec": { "replicas": 2, "selector": { "matchLabels": { "app": "web" } },
            "template": { "metadata": { "labels": { "app": "web" } },
                "spec": { "containers": [{ "name": "app", "image": "web:1" }] } } } }));
    let created = api.patch("web", &fife, &Patch::Apply(&ours)).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));

    // A second manager adds a label and a sidecar: both managers' fields coexist.
    let theirs = deployment(json!({
        "metadata": { "labels": { "mesh": "on" } },
        "spec": { "template": { "spec": { "containers": [{ "name": "proxy", "image": "proxy:1" }] } } } }));
    let merged = api
        .patch("web", &mesh, &Patch::Apply(&theirs))
        .await
        .unwrap();
    let labels = merged.metadata.labels.clone().unwrap();
    assert_eq!(labels.len(), 3, "{labels:?}");
    let names: Vec<String> = merged
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers
        .iter()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(names, vec!["app", "proxy"]);

    // Another manager may not take replicas without force.
    let autoscaler = PatchParams::apply("autoscaler");
    let scale = deployment(json!({ "spec": { "replicas": 7 } }));
    let err = api
        .patch("web", &autoscaler, &Patch::Apply(&scale))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
            assert!(
                s.message.contains(".spec.replicas") && s.message.contains("fife"),
                "{}",
                s.message
            );
        }
        other => panic!("expected a conflict, got {other}"),
    }
    // Same value as the owner: shared ownership, no conflict.
    api.patch(
        "web",
        &autoscaler,
        &Patch::Apply(&deployment(json!({ "spec": { "replicas": 2 } }))),
    )
    .await
    .unwrap();

    // Fife re-applies with a new image and without the canary label: its own dropped
    // label goes, the mesh's label and sidecar stay.
    let mut next = ours.clone();
    next["metadata"]["labels"] = json!({ "app": "web" });
    next["spec"]["template"]["spec"]["containers"][0]["image"] = json!("web:2");
    let after = api.patch("web", &fife, &Patch::Apply(&next)).await.unwrap();
    let labels = after.metadata.labels.clone().unwrap();
    assert_eq!(
        labels.keys().cloned().collect::<Vec<_>>(),
        vec!["app".to_string(), "mesh".to_string()]
    );
    let containers = &after
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers;
    assert_eq!(
        containers
            .iter()
            .map(|c| c.image.clone().unwrap())
            .collect::<Vec<_>>(),
        vec!["web:2", "proxy:1"]
    );
    assert_eq!(
        after.metadata.generation,
        Some(3),
        "spec changes bump generation; label changes do not"
    );

    // Force moves replicas to the autoscaler; fife dropping replicas then keeps them.
    api.patch("web", &autoscaler.clone().force(), &Patch::Apply(&scale))
        .await
        .unwrap();
    let mut without_replicas = next.clone();
    without_replicas["spec"]
        .as_object_mut()
        .unwrap()
        .remove("replicas");
    let d = api
        .patch("web", &fife, &Patch::Apply(&without_replicas))
        .await
        .unwrap();
    assert_eq!(d.spec.unwrap().replicas, Some(7));

    // Status through server-side apply on the status subresource (how Fife writes it):
    // spec is untouched, generation unchanged.
    let status = json!({ "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "web" },
        "status": { "observedGeneration": 99 } });
    let before = api.get("web").await.unwrap();
    let s = api
        .patch_status(
            "web",
            &PatchParams::apply("fife").force(),
            &Patch::Apply(&status),
        )
        .await
        .unwrap();
    assert_eq!(s.status.unwrap().observed_generation, Some(99));
    assert_eq!(s.metadata.generation, before.metadata.generation);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_status_follows_spec_unless_never_ready() {
    let (_server, client) = start().await;
    let api: Api<Deployment> = Api::namespaced(client, "default");
    let make = |name: &str, never: bool| {
        let mut d = deployment(
            json!({ "metadata": { "name": name }, "spec": { "replicas": 3,
            "selector": { "matchLabels": { "app": name } },
            "template": { "metadata": { "labels": { "app": name } }, "spec": { "containers": [{ "name": "app", "image": "x" }] } } } }),
        );
        if never {
            d["metadata"]["annotations"] = json!({ "testkit.fife.dev/never-ready": "true" });
        }
        serde_json::from_value::<Deployment>(d).unwrap()
    };
    api.create(&PostParams::default(), &make("ready", false))
        .await
        .unwrap();
    api.create(&PostParams::default(), &make("stuck", true))
        .await
        .unwrap();
    let wait = |name: &'static str| {
        let api = api.clone();
        async move {
            for _ in 0..200 {
                let d = api.get(name).await.unwrap();
                if d.status.as_ref().and_then(|s| s.observed_generation) == d.metadata.generation {
                    return d.status.unwrap();
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("{name} never observed its generation");
        }
    };
    let ready = wait("ready").await;
    assert_eq!(
        (
            ready.ready_replicas,
            ready.available_replicas,
            ready.updated_replicas
        ),
        (Some(3), Some(3), Some(3))
    );
    let stuck = wait("stuck").await;
    assert_eq!(
        (
            stuck.ready_replicas,
            stuck.updated_replicas,
            stuck.unavailable_replicas
        ),
        (None, Some(3), Some(3))
    );
    // Scaling through the scale subresource is followed too.
    api.patch_scale(
        "ready",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "replicas": 5 } })),
    )
    .await
    .unwrap();
    let mut last = None;
    for _ in 0..200 {
        let s = api.get("ready").await.unwrap().status.unwrap();
        if s.ready_replicas == Some(5) {
            last = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(last.and_then(|s| s.observed_generation), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults_reach_the_client_and_list_pages_hold_together() {
    let (server, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    for i in 0..25 {
        api.create(&PostParams::default(), &cm(&format!("c{i:02}"), "x"))
            .await
            .unwrap();
    }
    let mut names = Vec::new();
    let mut params = ListParams::default().limit(10);
    loop {
        let page = api.list(&params).await.unwrap();
        names.extend(page.items.iter().map(|c| c.metadata.name.clone().unwrap()));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    assert_eq!(names.len(), 25);
    // Injected 500s reach the caller; 429s come with Retry-After (checked without the
    // kube client, which retries them by itself).
    server.set_faults(FaultPlan {
        error_rate: 1.0,
        error_codes: vec![500],
        seed: 1,
        ..Default::default()
    });
    match api.get("c00").await.unwrap_err() {
        kube::Error::Api(s) => assert_eq!((s.code, s.reason.as_str()), (500, "InternalError")),
        other => panic!("expected 500, got {other}"),
    }
    server.set_faults(FaultPlan {
        error_rate: 1.0,
        error_codes: vec![429],
        seed: 1,
        ..Default::default()
    });
    let raw = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/namespaces/default/configmaps/c00",
            server.url()
        ))
        .bearer_auth(fife_test_apiserver::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 429);
    assert_eq!(raw.headers()["retry-after"], "1");
    let status: serde_json::Value = raw.json().await.unwrap();
    assert_eq!(status["reason"], "TooManyRequests");
    // A share of requests fails, reproducibly for a seed.
    let plan = FaultPlan {
        error_rate: 0.3,
        error_codes: vec![500],
        seed: 42,
        ..Default::default()
    };
    let mut outcomes = Vec::new();
    for _ in 0..2 {
        server.set_faults(plan.clone());
        let mut run = Vec::new();
        for _ in 0..40 {
            run.push(api.get("c00").await.is_ok());
        }
        outcomes.push(run);
    }
    assert_eq!(outcomes[0], outcomes[1], "same seed, same faults");
    let failures = outcomes[0].iter().filter(|ok| !**ok).count();
    assert!(
        (4..=24).contains(&failures),
        "about 30% of 40 requests fail, got {failures}"
    );
    server.set_faults(FaultPlan::default());
    api.get("c00").await.unwrap();

    // The same controls over HTTP, for scripts and the demo.
    let http = reqwest::Client::new();
    let plan = json!({ "errorRate": 1.0, "errorCodes": [409], "pathContains": "configmaps/c01" });
    let r = http
        .put(format!("{}/testkit/faults", server.url()))
        .body(plan.to_string())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    match api.get("c01").await.unwrap_err() {
        kube::Error::Api(s) => assert_eq!((s.code, s.reason.as_str()), (409, "Conflict")),
        other => panic!("expected 409, got {other}"),
    }
    api.get("c02").await.unwrap();
    let current: serde_json::Value = http
        .get(format!("{}/testkit/faults", server.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(current["errorCodes"], json!([409]));
    http.put(format!("{}/testkit/faults", server.url()))
        .body("{}")
        .send()
        .await
        .unwrap();
    api.get("c01").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_list_watcher_gets_initial_events_then_changes() {
    let (_server, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    for i in 0..3 {
        api.create(&PostParams::default(), &cm(&format!("s{i}"), "1"))
            .await
            .unwrap();
    }
    let stream = watcher::watcher(api.clone(), watcher::Config::default().streaming_lists());
    let mut stream = std::pin::pin!(stream);
    let mut initial = Vec::new();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match event {
            Event::Init => {}
            Event::InitApply(c) => initial.push(c.metadata.name.unwrap()),
            Event::InitDone => break,
            other => panic!("unexpected before InitDone: {other:?}"),
        }
    }
    assert_eq!(initial, vec!["s0", "s1", "s2"]);
    api.create(&PostParams::default(), &cm("s3", "1"))
        .await
        .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(event, Event::Apply(c) if c.metadata.name.as_deref() == Some("s3")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorder_events_are_created_then_patched_as_a_series() {
    use k8s_openapi::api::events::v1::Event as K8sEvent;
    use kube::Resource;
    use kube::runtime::events::{Event as RecordedEvent, EventType, Recorder, Reporter};
    let (_server, client) = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let target = cms
        .create(&PostParams::default(), &cm("subject", "1"))
        .await
        .unwrap();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "fife".into(),
            instance: None,
        },
    );
    let event = RecordedEvent {
        type_: EventType::Normal,
        reason: "WeightChanged".into(),
        note: Some("canary weight 5%".into()),
        action: "SetWeight".into(),
        secondary: None,
    };
    let reference = target.object_ref(&());
    recorder.publish(&event, &reference).await.unwrap();
    recorder.publish(&event, &reference).await.unwrap();
    let events: Api<K8sEvent> = Api::namespaced(client, "default");
    let listed = events.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(
        listed.len(),
        1,
        "the repeat is recorded as a series on the same Event"
    );
    let recorded = &listed[0];
    assert_eq!(recorded.reason.as_deref(), Some("WeightChanged"));
    assert_eq!(recorded.series.as_ref().map(|s| s.count), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_survives_streams_cut_after_every_event() {
    let (server, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    server.set_faults(FaultPlan {
        drop_watch_after_events: 1,
        ..Default::default()
    });
    let stream = watcher::watcher(api.clone(), watcher::Config::default())
        .default_backoff()
        .applied_objects();
    let mut stream = std::pin::pin!(stream);
    let mut written = BTreeSet::new();
    for i in 0..5 {
        written.insert(key(&api
            .create(&PostParams::default(), &cm(&format!("d{i}"), "1"))
            .await
            .unwrap()));
    }
    let mut seen = Vec::new();
    while seen.len() < written.len() {
        let c = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push(key(&c));
    }
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), written);
    let next = key(&api
        .create(&PostParams::default(), &cm("d5", "1"))
        .await
        .unwrap());
    let c = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        key(&c),
        next,
        "after a cut, the resumed watch delivers the next change, not a repeat"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_counted_by_user_agent_and_verb() {
    let (server, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &cm("counted", "0"))
        .await
        .unwrap();
    api.get("counted").await.unwrap();
    api.get("counted").await.unwrap();
    api.list(&ListParams::default()).await.unwrap();
    let http = reqwest::Client::builder()
        .user_agent("scale-driver")
        .build()
        .unwrap();
    let url = format!(
        "{}/api/v1/namespaces/default/configmaps/counted",
        server.url()
    );
    http.get(&url)
        .bearer_auth(fife_test_apiserver::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    http.get(format!("{}/version", server.url()))
        .bearer_auth(fife_test_apiserver::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();

    let counts = server.request_counts();
    let driver = &counts["scale-driver"];
    assert_eq!(driver.get("get"), Some(&1), "{counts:?}");
    assert_eq!(driver.values().sum::<u64>(), 1, "discovery is not counted");
    let (_, kube) = counts
        .iter()
        .find(|(agent, _)| agent.as_str() != "scale-driver")
        .expect("the kube client's requests are counted under its own agent");
    assert_eq!(
        (kube.get("create"), kube.get("get"), kube.get("list")),
        (Some(&1), Some(&2), Some(&1)),
        "{counts:?}"
    );
    let served: RequestCountsJson = reqwest::get(format!("{}/testkit/requests", server.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(served["scale-driver"]["get"], 1);
}

type RequestCountsJson = BTreeMap<String, BTreeMap<String, u64>>;
