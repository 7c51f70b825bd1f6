//! Every failure class of the Prometheus provider, against a local HTTP stub that answers
//! what each test tells it to.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use fife_metrics::roles::prometheus_role_samples;
use fife_metrics::{
    Auth, ClientPool, ErrorClass, FailureCause, MetricError, MetricProvider, NoData,
    PrometheusProvider, PrometheusSource, Query, RoleQueries, Samples, Series, Window,
    measure_roles,
};

type Responder = dyn Fn(usize, &HeaderMap, &BTreeMap<String, String>) -> Response + Send + Sync;

struct StubState {
    requests: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    delay: Duration,
    responder: Box<Responder>,
}

struct Stub {
    address: String,
    state: Arc<StubState>,
}

impl Stub {
    async fn start(
        delay: Duration,
        responder: impl Fn(usize, &HeaderMap, &BTreeMap<String, String>) -> Response
        + Send
        + Sync
        + 'static,
    ) -> Stub {
        let state = Arc::new(StubState {
            requests: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            delay,
            responder: Box::new(responder),
        });
        let app = Router::new()
            .route("/api/v1/query", axum::routing::post(handle))
            .route("/api/v1/query_range", axum::routing::post(handle))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Stub { address, state }
    }

    fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    fn provider(&self, configure: impl FnOnce(&mut PrometheusSource)) -> PrometheusProvider {
        let mut source = PrometheusSource::new(&self.address);
        configure(&mut source);
        PrometheusProvider::new(&ClientPool::new(4), source).unwrap()
    }
}

async fn handle(State(state): State<Arc<StubState>>, headers: HeaderMap, body: String) -> Response {
    let n = state.requests.fetch_add(1, Ordering::SeqCst);
    let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_in_flight.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(state.delay).await;
    let form: BTreeMap<String, String> = url_decode_form(&body);
    let response = (state.responder)(n, &headers, &form);
    state.in_flight.fetch_sub(1, Ordering::SeqCst);
    response
}

fn url_decode_form(body: &str) -> BTreeMap<String, String> {
    body.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.replace('+', " ").into_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn json(status: u16, body: &str) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

fn vector(values: &[&str]) -> String {
    let result: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| format!(r#"{{"metric":{{"pod":"p{i}"}},"value":[1700000000,"{v}"]}}"#))
        .collect();
    format!(
        r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
        result.join(",")
    )
}

fn instant(text: &str) -> Query {
    Query::instant(text, UNIX_EPOCH + Duration::from_secs(1_700_000_000))
}

async fn fail(provider: &PrometheusProvider, query: &Query) -> MetricError {
    match provider.measure(query).await {
        Ok(samples) => panic!("expected an error, got {samples:?}"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn instant_query_returns_one_value_per_series() {
    let stub = Stub::start(Duration::ZERO, |_, _, form| {
        assert_eq!(form["query"], "up");
        assert_eq!(form["time"], "1700000000.000");
        json(200, &vector(&["1", "0.5"]))
    })
    .await;
    let samples = stub.provider(|_| {}).measure(&instant("up")).await.unwrap();
    assert_eq!(
        samples,
        Samples {
            values: vec![1.0, 0.5],
            series: 2,
            dropped_non_finite: 0,
            by_series: vec![
                Series {
                    labels: BTreeMap::from([("pod".to_owned(), "p0".to_owned())]),
                    points: vec![(1_700_000_000_000, 1.0)],
                },
                Series {
                    labels: BTreeMap::from([("pod".to_owned(), "p1".to_owned())]),
                    points: vec![(1_700_000_000_000, 0.5)],
                },
            ],
        }
    );
}

#[tokio::test]
async fn range_query_sends_the_window_and_flattens_the_matrix() {
    let stub = Stub::start(Duration::ZERO, |_, _, form| {
        assert_eq!(form["start"], "1699999700.000");
        assert_eq!(form["end"], "1700000000.000");
        assert_eq!(form["step"], "15");
        json(
            200,
            r#"{"status":"success","data":{"resultType":"matrix","result":[
              {"metric":{"pod":"a"},"values":[[1,"0.1"],[2,"0.2"]]},
              {"metric":{"pod":"b"},"values":[[1,"0.3"]]}]}}"#,
        )
    })
    .await;
    let query = Query::range(
        "q",
        Duration::from_secs(300),
        Duration::from_secs(15),
        UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    );
    let samples = stub.provider(|_| {}).measure(&query).await.unwrap();
    assert_eq!(samples.values, vec![0.1, 0.2, 0.3]);
    assert_eq!(samples.series, 2);
    let identity: Vec<_> = samples
        .by_series
        .iter()
        .map(|s| (s.labels["pod"].as_str(), s.points.clone()))
        .collect();
    assert_eq!(
        identity,
        vec![
            ("a", vec![(1000, 0.1), (2000, 0.2)]),
            ("b", vec![(1000, 0.3)])
        ],
        "each point keeps its series and its time"
    );
}

#[tokio::test]
async fn connection_refused_is_named_and_retried_briefly() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let provider =
        PrometheusProvider::new(&ClientPool::new(1), PrometheusSource::new(&address)).unwrap();
    let err = fail(&provider, &instant("up")).await;
    assert_eq!(err.cause, FailureCause::ConnectionRefused);
    assert_eq!(err.class(), ErrorClass::SourceFailure);
    let text = err.to_string();
    assert!(
        text.contains(&address) && text.contains("`up`") && text.contains("connection refused"),
        "{text}"
    );
}

#[tokio::test]
async fn unresolvable_host_is_a_dns_error() {
    let provider = PrometheusProvider::new(
        &ClientPool::new(1),
        PrometheusSource::new("http://fife-no-such-host.invalid:9090"),
    )
    .unwrap();
    let err = fail(&provider, &instant("up")).await;
    match &err.cause {
        FailureCause::Dns { host, .. } => assert_eq!(host, "fife-no-such-host.invalid"),
        other => panic!("expected a DNS error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_slow_server_times_out() {
    let stub = Stub::start(Duration::from_secs(5), |_, _, _| json(200, &vector(&["1"]))).await;
    let provider = stub.provider(|s| s.timeout = Duration::from_millis(200));
    let err = fail(&provider, &instant("up")).await;
    assert_eq!(
        err.cause,
        FailureCause::Timeout {
            after: Duration::from_millis(200),
            attempts: 1
        }
    );
    assert!(err.to_string().contains("timed out after 0.2 s"), "{err}");
}

#[tokio::test]
async fn http_status_carries_the_body_error_and_4xx_is_not_retried() {
    let stub = Stub::start(Duration::ZERO, |_, _, _| {
        json(403, r#"{"error":"token expired"}"#)
    })
    .await;
    let err = fail(&stub.provider(|_| {}), &instant("up")).await;
    assert_eq!(
        err.cause,
        FailureCause::HttpStatus {
            status: 403,
            message: "token expired".into()
        }
    );
    assert_eq!(stub.requests(), 1);
}

#[tokio::test]
async fn prometheus_status_error_carries_error_type() {
    let stub = Stub::start(Duration::ZERO, |_, _, _| {
        json(400, r#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected \")\""}"#)
    })
    .await;
    let err = fail(&stub.provider(|_| {}), &instant("sum(x))")).await;
    match &err.cause {
        FailureCause::Prometheus {
            status: 400,
            error_type,
            message,
        } => {
            assert_eq!(error_type, "bad_data");
            assert!(message.contains("parse error"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(stub.requests(), 1);
}

#[tokio::test]
async fn overload_answers_are_retried_until_success() {
    let stub = Stub::start(Duration::ZERO, |n, _, _| match n {
        0 => json(
            503,
            r#"{"status":"error","errorType":"unavailable","error":"overloaded"}"#,
        ),
        1 => json(429, "slow down"),
        _ => json(200, &vector(&["2"])),
    })
    .await;
    let provider = stub.provider(|s| s.retry.initial_backoff = Duration::from_millis(10));
    let samples = provider.measure(&instant("up")).await.unwrap();
    assert_eq!(samples.values, vec![2.0]);
    assert_eq!(stub.requests(), 3);
}

#[tokio::test]
async fn retries_are_bounded() {
    let stub = Stub::start(Duration::ZERO, |_, _, _| json(502, "bad gateway")).await;
    let provider = stub.provider(|s| {
        s.retry.initial_backoff = Duration::from_millis(5);
        s.retry.max_attempts = 4;
    });
    let err = fail(&provider, &instant("up")).await;
    assert_eq!(
        err.cause,
        FailureCause::HttpStatus {
            status: 502,
            message: "bad gateway".into()
        }
    );
    assert_eq!(stub.requests(), 4);
}

#[tokio::test]
async fn wrong_result_type_nan_and_empty_are_classified() {
    let stub = Stub::start(Duration::ZERO, |_, _, form| match form["query"].as_str() {
        "matrix" => json(
            200,
            r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#,
        ),
        "nan" => json(200, &vector(&["NaN"])),
        "inf" => json(200, &vector(&["1", "+Inf"])),
        _ => json(200, &vector(&[])),
    })
    .await;
    let provider = stub.provider(|_| {});
    let err = fail(&provider, &instant("matrix")).await;
    assert!(
        matches!(
            err.cause,
            FailureCause::UnexpectedResultType {
                expected: "vector",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.class(), ErrorClass::SourceFailure);
    for query in ["nan", "inf"] {
        let err = fail(&provider, &instant(query)).await;
        assert!(
            matches!(err.cause, FailureCause::NoData(NoData::NonFinite { .. })),
            "{err}"
        );
        assert_eq!(err.class(), ErrorClass::NoData);
    }
    let err = fail(&provider, &instant("empty")).await;
    assert_eq!(err.cause, FailureCause::NoData(NoData::EmptyResult));
    assert_eq!(err.class(), ErrorClass::NoData);
}

#[tokio::test]
async fn oversized_responses_are_cut_off_while_streaming() {
    let stub = Stub::start(Duration::ZERO, |_, _, form| {
        let series = r#"{"metric":{"pod":"a-fairly-long-pod-name-0123456789"},"value":[1,"1"]},"#;
        let big = series.repeat(20_000);
        if form["query"] == "chunked" {
            // No Content-Length: the limit must hold while the body streams in.
            let chunks = vec![Ok::<_, std::io::Error>(big.clone()), Ok(big)];
            Response::builder()
                .status(200)
                .body(Body::from_stream(futures::stream::iter(chunks)))
                .unwrap()
        } else {
            json(200, &big)
        }
    })
    .await;
    let provider = stub.provider(|s| s.max_response_bytes = 64 * 1024);
    for query in ["chunked", "sized"] {
        let err = fail(&provider, &instant(query)).await;
        assert_eq!(
            err.cause,
            FailureCause::ResponseTooLarge { limit: 64 * 1024 },
            "{query}"
        );
    }
}

#[tokio::test]
async fn bearer_and_basic_auth_are_sent() {
    let stub = Stub::start(Duration::ZERO, |_, headers, _| {
        match headers.get("authorization").and_then(|v| v.to_str().ok()) {
            // "fife:s3cret" in base64.
            Some("Bearer t0ken") | Some("Basic ZmlmZTpzM2NyZXQ=") => json(200, &vector(&["1"])),
            _ => json(401, r#"{"error":"unauthorized"}"#),
        }
    })
    .await;
    let bearer = stub.provider(|s| {
        s.auth = Some(Auth::Bearer {
            token: "t0ken".into(),
        })
    });
    let basic = stub.provider(|s| {
        s.auth = Some(Auth::Basic {
            username: "fife".into(),
            password: "s3cret".into(),
        })
    });
    let wrong = stub.provider(|s| {
        s.auth = Some(Auth::Bearer {
            token: "nope".into(),
        })
    });
    assert!(bearer.measure(&instant("up")).await.is_ok());
    assert!(basic.measure(&instant("up")).await.is_ok());
    let err = fail(&wrong, &instant("up")).await;
    assert!(
        matches!(err.cause, FailureCause::HttpStatus { status: 401, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn the_pool_caps_concurrent_queries() {
    let stub = Stub::start(Duration::from_millis(50), |_, _, _| {
        json(200, &vector(&["1"]))
    })
    .await;
    let pool = ClientPool::new(2);
    let provider = PrometheusProvider::new(&pool, PrometheusSource::new(&stub.address)).unwrap();
    let query = instant("up");
    let all = futures::future::join_all((0..6).map(|_| provider.measure(&query))).await;
    assert!(all.iter().all(Result::is_ok));
    assert_eq!(stub.requests(), 6);
    assert_eq!(stub.state.max_in_flight.load(Ordering::SeqCst), 2);
    assert_eq!(pool.available_slots(), 2);
}

#[tokio::test]
async fn roles_render_the_template_for_each_side() {
    let stub = Stub::start(Duration::ZERO, |_, _, form| {
        let value = match form["query"].as_str() {
            r#"p50{service="checkout",fife_role="canary"}"# => "0.2",
            r#"p50{service="checkout",fife_role="baseline"}"# => "0.1",
            // No stable pods: an empty matrix is not an error for the stable side.
            r#"p50{service="checkout",fife_role="stable"}"# => {
                return json(
                    200,
                    r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#,
                );
            }
            other => panic!("unexpected query {other}"),
        };
        json(
            200,
            &format!(r#"{{"status":"success","data":{{"resultType":"matrix","result":[{{"metric":{{"pod":"x"}},"values":[[1,"{value}"]]}}]}}}}"#),
        )
    })
    .await;
    let provider = stub.provider(|_| {});
    let args = BTreeMap::from([("service".to_owned(), "checkout".to_owned())]);
    let template =
        RoleQueries::PerRole(r#"p50{service="{{args.service}}",fife_role="{{role}}"}"#.into());
    let window = Window::Range {
        lookback: Duration::from_secs(60),
        step: Duration::from_secs(15),
    };
    let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let samples = measure_roles(&provider, &template, &args, window, at)
        .await
        .unwrap();
    assert_eq!(samples.canary.values, vec![0.2]);
    assert_eq!(samples.baseline.values, vec![0.1]);
    assert_eq!(samples.canary.by_series[0].labels["pod"], "x");
    assert_eq!(samples.stable, None, "stable pods are optional");

    let missing = measure_roles(&provider, &template, &BTreeMap::new(), window, at)
        .await
        .unwrap_err();
    assert!(
        matches!(missing.cause, FailureCause::Template(_)),
        "{missing}"
    );
    assert!(
        missing.to_string().contains("{{args.service}}"),
        "{missing}"
    );
    assert_eq!(stub.requests(), 3, "a template error sends nothing");
}

#[tokio::test]
async fn the_cli_helper_names_url_query_and_cause_on_one_line() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let queries = RoleQueries::Separate {
        canary: "lat{fife_role=\"canary\"}".into(),
        baseline: "lat{fife_role=\"baseline\"}".into(),
    };
    let err = prometheus_role_samples(
        &address,
        &queries,
        Duration::from_secs(60),
        Duration::from_secs(5),
        UNIX_EPOCH,
    )
    .await
    .unwrap_err();
    let line = err.to_string();
    assert!(!line.contains('\n'));
    assert!(
        line.contains(&address)
            && line.contains("lat{fife_role=")
            && line.contains("connection refused"),
        "{line}"
    );

    let err = prometheus_role_samples(
        "localhost:9090",
        &queries,
        Duration::from_secs(60),
        Duration::from_secs(5),
        UNIX_EPOCH,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err.cause, FailureCause::InvalidSource { .. }),
        "{err}"
    );
}
