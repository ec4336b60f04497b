use std::net::SocketAddr;

use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

use crate::helpers::{TestApp, stack_var};

#[tokio::test]
async fn healthz_answers_with_a_request_id_and_metrics_count_it() {
    let app = TestApp::spawn().await;

    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
    let request_id = response.headers().get("x-request-id").cloned();
    assert!(
        request_id.is_some_and(|id| !id.is_empty()),
        "no X-Request-Id"
    );

    let metrics = app.ops_get("/metrics").await;
    assert_eq!(metrics.status(), 200);
    assert!(
        metrics
            .headers()
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/plain"))
    );
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains(
            r#"wizbrand_http_requests_total{method="GET",route="/healthz",status="200"} 1"#
        ),
        "metrics do not count the /healthz request:\n{text}"
    );
}

#[tokio::test]
async fn made_up_methods_and_paths_do_not_create_metric_series() {
    let app = TestApp::spawn().await;
    let long = "X".repeat(4006);
    for method in ["ANYTHING", long.as_str()] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = app
            .client
            .request(method, format!("{}/healthz", app.address))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error(), "{}", response.status());
    }
    let marker = uuid::Uuid::new_v4().to_string();
    for path in [format!("/no/such/{marker}"), format!("/api/v1/{marker}")] {
        assert_eq!(app.get(&path).await.status(), 404, "{path}");
    }

    let text = app.metrics().await;
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("wizbrand_http_requests_total{"))
        .collect();
    assert!(
        series
            .iter()
            .any(|l| l.contains(r#"method="other",route="/healthz""#)),
        "{series:?}"
    );
    for line in &series {
        assert!(
            !line.contains("ANYTHING") && !line.contains("XXXX") && !line.contains(&marker),
            "a client-chosen label: {line}"
        );
    }
}

/// Stands between wizbrand and Keycloak so a test can take Keycloak off the network
/// without stopping the Keycloak every other test shares.
pub(crate) struct Cable {
    pub(crate) address: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Cable {
    pub(crate) async fn plug(address: SocketAddr, upstream: SocketAddr) -> Cable {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(address).unwrap();
        let listener = socket.listen(64).unwrap();
        let address = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Cable { address, task }
    }

    /// Cuts the cable: the listener and every open connection go.
    pub(crate) async fn unplug(self) -> SocketAddr {
        self.task.abort();
        let _ = self.task.await;
        self.address
    }
}

/// The ops listener's `/readyz`, with its details.
async fn readiness(app: &TestApp) -> (u16, Value) {
    let response = app.ops_get("/readyz").await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// `/readyz` once it answers `wanted`: it serves a cached result for up to 5 s.
async fn readiness_becomes(app: &TestApp, wanted: u16) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, body) = readiness(app).await;
        if status == wanted {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {status} after 10 s: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn readyz_names_keycloak_while_it_is_unreachable_and_recovers() {
    let keycloak: url::Url = stack_var("KEYCLOAK_URL").parse().unwrap();
    let upstream = SocketAddr::from(([127, 0, 0, 1], keycloak.port().unwrap()));
    let cable = Cable::plug(SocketAddr::from(([127, 0, 0, 1], 0)), upstream).await;
    let port = cable.address.port();
    let app = TestApp::spawn_with(|env| {
        env.insert(
            "KEYCLOAK_INTERNAL_URL".into(),
            format!("http://127.0.0.1:{port}"),
        );
    })
    .await;

    let (status, body) = readiness(&app).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ready"], true);

    let address = cable.unplug().await;
    // Cached: a flood of callers costs one probe per 5 s.
    assert_eq!(readiness(&app).await.0, 200);
    let body = readiness_becomes(&app, 503).await;
    assert_eq!(body["ready"], false);
    assert_eq!(body["postgres"]["ok"], true, "{body}");
    assert_eq!(body["keycloak"]["ok"], false, "{body}");
    let error = body["keycloak"]["error"].as_str().unwrap();
    assert!(
        error.contains("Keycloak") && error.contains("unreachable"),
        "{error}"
    );
    // The public listener says only that it is not ready: no URL, no error text.
    let public = app.get("/readyz").await;
    assert_eq!(public.status(), 503);
    let public: Value = public.json().await.unwrap();
    assert_eq!(public, serde_json::json!({ "ready": false }));

    let _cable = Cable::plug(address, upstream).await;
    readiness_becomes(&app, 200).await;
}

#[tokio::test]
async fn readyz_names_postgres_when_the_database_is_gone() {
    let app = TestApp::spawn_with(|env| {
        // Nothing listens on port 9 (discard) on loopback here.
        env.insert(
            "DATABASE_URL".into(),
            "postgres://wizbrand:wizbrand@127.0.0.1:9/none".into(),
        );
        env.insert("WIZBRAND_MIGRATE_ON_START".into(), "false".into());
    })
    .await;
    let (status, body) = readiness(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["postgres"]["ok"], false, "{body}");
    assert_eq!(body["keycloak"]["ok"], true, "{body}");
}
