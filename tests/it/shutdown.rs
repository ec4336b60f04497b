//! `wizbrand serve` stopped by SIGTERM, as an orchestrator stops it: the real binary,
//! under load, with slow requests in flight, and during a sync.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::faults::{every_org_is_synced, seed_orgs, sync_has_written};
use crate::helpers::{
    KeycloakAdmin, KillOnDrop, base_env, behind_traefik, free_port, fresh_database, unique,
    user_token,
};

/// What the grace period is set to in these tests.
const GRACE: Duration = Duration::from_secs(10);

/// `wizbrand serve` in a process of its own on `port`, its log in a file.
fn serve(env: &HashMap<String, String>, log: &std::path::Path) -> KillOnDrop {
    let log = std::fs::File::create(log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_wizbrand"))
        .arg("serve")
        .env_clear()
        .envs(env)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    KillOnDrop(child)
}

fn env_on(database_url: &str, port: u16) -> HashMap<String, String> {
    let mut env = base_env(database_url);
    env.insert("WIZBRAND_LISTEN".into(), format!("127.0.0.1:{port}"));
    env.insert(
        "WIZBRAND_PUBLIC_URL".into(),
        format!("http://127.0.0.1:{port}"),
    );
    env.insert(
        "WIZBRAND_SHUTDOWN_GRACE_SECONDS".into(),
        GRACE.as_secs().to_string(),
    );
    env
}

async fn until_ready(address: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("{address}/readyz")).await.is_err() {
        assert!(Instant::now() < deadline, "wizbrand serve did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for the process to end, up to `within`; its exit status and when.
async fn exit_within(child: &mut Child, within: Duration) -> (std::process::ExitStatus, Duration) {
    let began = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, began.elapsed());
        }
        assert!(
            began.elapsed() < within,
            "still running {within:?} after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How one request ended, seen from a client that speaks HTTP/1.1 over its own socket.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// A whole answer with this status.
    Answered(u16),
    /// The connection was refused: the listener is closed.
    Refused,
    /// Connected, request written, and the connection closed without a byte of answer:
    /// the server never read it (a connection still in the kernel's or the server's
    /// queue when the listener closed, or an idle kept-alive connection closed as the
    /// request arrived). Nothing was done; the client may send it again.
    Unread,
    /// Anything else: a cut answer, a reset after part of it, a malformed one.
    Broken(String),
}

/// One request on a fresh connection, `Connection: close`; the answer read to its end.
async fn once(port: u16, head: &str, body: &[u8], pause: Option<(usize, Duration)>) -> Outcome {
    let mut stream = match TcpStream::connect(("127.0.0.1", port)).await {
        Ok(stream) => stream,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Outcome::Refused,
        Err(e) => return Outcome::Broken(format!("connect: {e}")),
    };
    let written = async {
        stream.write_all(head.as_bytes()).await?;
        match pause {
            Some((at, wait)) => {
                stream.write_all(&body[..at]).await?;
                stream.flush().await?;
                tokio::time::sleep(wait).await;
                stream.write_all(&body[at..]).await
            }
            None => stream.write_all(body).await,
        }
    }
    .await;
    let mut answer = Vec::new();
    let read = stream.read_to_end(&mut answer).await;
    if answer.is_empty() {
        // Written or not, nothing came back: the request was never read.
        return match (written, read) {
            (Ok(()), Ok(_)) | (Err(_), _) | (_, Err(_)) => Outcome::Unread,
        };
    }
    if let Err(e) = read {
        return Outcome::Broken(format!("reset after {} bytes of answer: {e}", answer.len()));
    }
    parse(&answer)
}

/// The status of a whole `Connection: close` answer (its body as long as it says).
fn parse(answer: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(answer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Outcome::Broken(format!("no end of head: {text:?}"));
    };
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .unwrap_or(0);
    let length = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())
            .flatten()
    });
    match length {
        Some(length) if body.len() != length => Outcome::Broken(format!(
            "{status}: body of {} bytes, {length} announced",
            body.len()
        )),
        _ if status == 0 => Outcome::Broken(format!("no status: {head:?}")),
        _ => Outcome::Answered(status),
    }
}

/// A client that keeps its connection open between requests, as Traefik does.
struct KeptAlive {
    port: u16,
    stream: Option<TcpStream>,
}

impl KeptAlive {
    /// `GET path` on the open connection (or a new one); the answer read by its
    /// `Content-Length`. A `Connection: close` answer closes the connection.
    async fn get(&mut self, path: &str) -> Outcome {
        let mut stream = match self.stream.take() {
            Some(stream) => stream,
            None => match TcpStream::connect(("127.0.0.1", self.port)).await {
                Ok(stream) => stream,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    return Outcome::Refused;
                }
                Err(e) => return Outcome::Broken(format!("connect: {e}")),
            },
        };
        let head = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        if stream.write_all(head.as_bytes()).await.is_err() {
            return Outcome::Unread;
        }
        let mut answer = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&answer[..end]).to_lowercase();
                let Some(length) = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                else {
                    return Outcome::Broken(format!("no content-length: {head:?}"));
                };
                if answer.len() >= end + 4 + length {
                    let outcome = parse(&answer[..end + 4 + length]);
                    if !head.contains("connection: close") {
                        self.stream = Some(stream);
                    }
                    return outcome;
                }
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) if answer.is_empty() => return Outcome::Unread,
                Ok(0) => return Outcome::Broken(format!("closed after {} bytes", answer.len())),
                Err(e) => return Outcome::Broken(format!("after {} bytes: {e}", answer.len())),
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Connection: close\r\n\r\n")
}

#[tokio::test]
async fn sigterm_under_load_finishes_every_accepted_request_and_exits_0_within_the_grace_period() {
    let (database_url, pool) = fresh_database().await;
    let port = free_port();
    let address = format!("http://127.0.0.1:{port}");
    let mut env = env_on(&database_url, port);
    behind_traefik(&mut env);
    let log = std::env::temp_dir().join(format!("wizbrand-shutdown-{port}.log"));
    let mut child = serve(&env, &log);
    until_ready(&address).await;
    let token = user_token("dana", "dana", "wizbrand-test").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // The gate and the API verify the token with Keycloak's keys: fetched now, not
    // during the shutdown.
    let warm = reqwest::Client::new()
        .get(format!("{address}/api/v1/orgs"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(warm.status(), 200);

    // Load: clients asking /healthz, /readyz and the gate as fast as they get answers,
    // each on a fresh connection, until the server is gone.
    let gone = Arc::new(AtomicBool::new(false));
    let mut load = tokio::task::JoinSet::new();
    let gate_head = get(
        "/forward-auth",
        &format!(
            "X-Forwarded-Host: acme.seo.wizbrand.localhost\r\nX-Forwarded-Proto: http\r\n\
             X-Forwarded-Uri: /\r\nX-Forwarded-Method: GET\r\nAuthorization: Bearer {token}\r\n"
        ),
    );
    for client in 0..12 {
        let head = match client % 3 {
            0 => get("/healthz", ""),
            1 => get("/readyz", ""),
            _ => gate_head.clone(),
        };
        let gone = Arc::clone(&gone);
        load.spawn(async move {
            let mut outcomes = Vec::new();
            let mut refused_in_a_row = 0;
            while refused_in_a_row < 3 && !gone.load(Ordering::SeqCst) {
                let outcome = once(port, &head, b"", None).await;
                refused_in_a_row = if outcome == Outcome::Refused {
                    refused_in_a_row + 1
                } else {
                    0
                };
                outcomes.push((Instant::now(), outcome));
            }
            outcomes
        });
    }
    // And clients that keep their connection, as Traefik does.
    for _ in 0..4 {
        let gone = Arc::clone(&gone);
        load.spawn(async move {
            let mut client = KeptAlive { port, stream: None };
            let mut outcomes = Vec::new();
            let mut refused_in_a_row = 0;
            while refused_in_a_row < 3 && !gone.load(Ordering::SeqCst) {
                let outcome = client.get("/healthz").await;
                refused_in_a_row = if outcome == Outcome::Refused {
                    refused_in_a_row + 1
                } else {
                    0
                };
                outcomes.push((Instant::now(), outcome));
            }
            outcomes
        });
    }
    let clients = 16;
    // Slow requests: org creations whose bodies take 1.5 s to arrive, SIGTERM half-way.
    let mut slow = tokio::task::JoinSet::new();
    for i in 0..4 {
        let body = format!(r#"{{"slug": "slow-{i}", "name": "Slow {i}"}}"#).into_bytes();
        let head = format!(
            "POST /api/v1/orgs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        slow.spawn(async move {
            once(
                port,
                &head,
                &body,
                Some((body.len() / 2, Duration::from_millis(1500))),
            )
            .await
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let signalled = Instant::now();
    sigterm(&child.0);

    let (status, took) = exit_within(&mut child.0, GRACE + Duration::from_secs(5)).await;
    gone.store(true, Ordering::SeqCst);
    let logs = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    assert!(status.success(), "exit {status:?}; log:\n{logs}");
    assert!(took < GRACE, "took {took:?} of a {GRACE:?} grace period");
    assert!(logs.contains("shutting down"), "{logs}");

    // Every slow request was in flight at SIGTERM (its head read, its body coming):
    // each was answered, and did what it asked.
    while let Some(outcome) = slow.join_next().await {
        assert_eq!(outcome.unwrap(), Outcome::Answered(201), "log:\n{logs}");
    }
    let slugs: Vec<String> =
        sqlx::query_scalar("SELECT slug FROM orgs WHERE slug LIKE 'slow-%' ORDER BY slug")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(slugs, ["slow-0", "slow-1", "slow-2", "slow-3"]);

    let mut answered_after = 0;
    let mut tally: HashMap<String, usize> = HashMap::new();
    while let Some(outcomes) = load.join_next().await {
        for (at, outcome) in outcomes.unwrap() {
            match &outcome {
                Outcome::Answered(status) => {
                    assert!(*status < 500, "{outcome:?}; log:\n{logs}");
                    if at > signalled {
                        answered_after += 1;
                    }
                }
                Outcome::Broken(why) => panic!("an accepted request failed: {why}; log:\n{logs}"),
                Outcome::Refused | Outcome::Unread => {}
            }
            *tally.entry(format!("{outcome:?}")).or_default() += 1;
        }
    }
    let answered: usize = tally
        .iter()
        .filter(|(k, _)| k.starts_with("Answered"))
        .map(|(_, n)| n)
        .sum();
    assert!(answered > 100, "little load: {tally:?}");
    assert!(
        tally.contains_key("Refused"),
        "the listener closed: {tally:?}"
    );
    // Unread: a client's connection that was still queued (in the kernel or the
    // server) when the listener closed, or a kept-alive one closed idle as the next
    // request arrived; at most that one or two per client, not a stream of them.
    let unread = tally.get("Unread").copied().unwrap_or(0);
    assert!(unread <= 2 * clients, "{tally:?}");
    eprintln!("load: {tally:?}; {answered_after} answered after SIGTERM; stopped in {took:?}");
}

#[tokio::test]
async fn sigterm_during_a_sync_stops_it_between_operations_and_the_next_run_finishes_it() {
    let (database_url, pool) = fresh_database().await;
    let root = unique("t");
    let tag = unique("");
    seed_orgs(&pool, &tag).await;
    // A realm of its own: reading every account of the shared realm (which the other
    // tests fill) would take most of the time.
    let master = KeycloakAdmin::connect().await;
    let realm = unique("stop");
    master.create_realm_copy(&realm).await;
    let admin = master.for_realm(&realm);
    let port = free_port();
    let mut env = env_on(&database_url, port);
    env.insert("KEYCLOAK_REALM".into(), realm.clone());
    env.insert("WIZBRAND_SYNC_ENABLED".into(), "true".into());
    env.insert("WIZBRAND_SYNC_GROUP_ROOT".into(), root.clone());
    // One call at a time: the start-up run is long enough to be caught half-way.
    env.insert("WIZBRAND_SYNC_CONCURRENCY".into(), "1".into());
    let log = std::env::temp_dir().join(format!("wizbrand-shutdown-{port}.log"));
    let mut child = serve(&env, &log);
    sync_has_written(&admin, &root).await;
    sigterm(&child.0);

    let (status, took) = exit_within(&mut child.0, GRACE + Duration::from_secs(5)).await;
    let logs = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    assert!(status.success(), "exit {status:?}; log:\n{logs}");
    assert!(took < GRACE, "took {took:?}; log:\n{logs}");

    // The journal says what happened: stopped, what it did, what it left.
    let (status, finished, created, failed, errors): (
        String,
        Option<chrono::DateTime<chrono::Utc>>,
        i32,
        i32,
        serde_json::Value,
    ) = sqlx::query_as(
        "SELECT status, finished_at, created, failed, errors FROM sync_runs ORDER BY id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(status, "interrupted", "{errors}; log:\n{logs}");
    assert!(finished.is_some());
    assert!(created > 0, "it wrote before it stopped");
    assert_eq!(failed, 0, "{errors}");
    let said = errors.as_array().unwrap().last().unwrap().as_str().unwrap();
    let left: usize = said
        .split(" of ")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of operations left in `{said}`"));
    assert!(said.contains("operations not started"), "{said}");
    assert!(left > 0, "{said}");
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM sync_runs WHERE status = 'running'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(runs, 0, "no run is left `running`");

    // The next run does exactly what was left, and then there is nothing to do.
    let config = wizbrand::config::Config::from_source(&env).unwrap();
    let directory = wizbrand::keycloak::directory::KeycloakDirectory::new(
        &config.keycloak,
        4,
        Duration::from_secs(5),
    );
    let options = wizbrand::sync::RunOptions {
        scope: wizbrand::sync::plan::Scope::All,
        trigger: wizbrand::sync::Trigger::Cli,
        dry_run: false,
        root: root.clone(),
        full_read_every: None,
    };
    let next = wizbrand::sync::run(&pool, &directory, &options, &|_, _| {})
        .await
        .unwrap();
    assert_eq!(
        next.status,
        wizbrand::sync::RunStatus::Succeeded,
        "{next:#?}"
    );
    let c = &next.counts;
    assert_eq!(
        usize::try_from(c.created + c.updated + c.deleted).unwrap(),
        left,
        "{next:#?}"
    );
    let again = wizbrand::sync::run(&pool, &directory, &options, &|_, _| {})
        .await
        .unwrap();
    assert_eq!(again.writes(), 0, "converged: {again:#?}");
    every_org_is_synced(&admin, &root, &tag).await;
    master.delete_realm(&realm).await;
}
