//! The provisioning sync against the real Keycloak. Each test syncs under a group
//! root of its own (`WIZBRAND_SYNC_GROUP_ROOT`) with users of its own, so tests that
//! run in parallel never see each other's orgs.

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;
use wizbrand::config::Config;
use wizbrand::keycloak::directory::KeycloakDirectory;
use wizbrand::sync::plan::Scope;
use wizbrand::sync::{CheckedBy, RunOptions, RunReport, RunStatus, Trigger};

use crate::helpers::{KeycloakAdmin, base_env, claims, fresh_database, unique, user_token};

pub(crate) struct SyncWorld {
    pub(crate) pool: PgPool,
    config: Config,
    pub(crate) root: String,
    pub(crate) admin: KeycloakAdmin,
    /// Suffix that makes this test's emails unique in the shared realm.
    tag: String,
}

impl SyncWorld {
    pub(crate) async fn new() -> SyncWorld {
        Self::with_env(|_| {}).await
    }

    async fn with_env(
        change: impl FnOnce(&mut std::collections::HashMap<String, String>),
    ) -> SyncWorld {
        let (url, pool) = fresh_database().await;
        let root = unique("t");
        let mut env = base_env(&url);
        env.insert("WIZBRAND_SYNC_GROUP_ROOT".into(), root.clone());
        change(&mut env);
        SyncWorld {
            pool,
            config: Config::from_source(&env).unwrap(),
            root,
            admin: KeycloakAdmin::connect().await,
            tag: unique(""),
        }
    }

    /// A world on a running app's database and group root (its scheduler syncs; this
    /// one looks, with dry runs and the Keycloak admin).
    pub(crate) async fn on_app(app: &crate::helpers::TestApp, root: &str) -> SyncWorld {
        let mut env = base_env(&app.database_url);
        env.insert("WIZBRAND_SYNC_GROUP_ROOT".into(), root.to_owned());
        SyncWorld {
            pool: app.pool.clone(),
            config: Config::from_source(&env).unwrap(),
            root: root.to_owned(),
            admin: KeycloakAdmin::connect().await,
            tag: unique(""),
        }
    }

    pub(crate) fn email(&self, name: &str) -> String {
        format!("{name}.{}@example.com", self.tag)
    }

    pub(crate) fn path(&self, rest: &str) -> String {
        format!("/{}{rest}", self.root)
    }

    /// A full run that reads every group (the realm is shared, so whether the event
    /// log is quiet is up to the other tests).
    pub(crate) async fn sync(&self) -> RunReport {
        self.sync_with(None).await
    }

    async fn sync_with(&self, full_read_every: Option<std::time::Duration>) -> RunReport {
        self.run(false, full_read_every).await
    }

    /// A full dry run: the plan, read from both sides.
    pub(crate) async fn dry_run(&self) -> RunReport {
        self.run(true, None).await
    }

    async fn run(&self, dry_run: bool, full_read_every: Option<std::time::Duration>) -> RunReport {
        let directory =
            KeycloakDirectory::new(&self.config.keycloak, 8, std::time::Duration::from_secs(5));
        let options = RunOptions {
            scope: Scope::All,
            trigger: Trigger::Cli,
            dry_run,
            root: self.root.clone(),
            full_read_every,
        };
        wizbrand::sync::run(&self.pool, &directory, &options, &|_, _| {})
            .await
            .unwrap()
    }

    pub(crate) async fn sql(&self, statement: &str) {
        sqlx::query(statement).execute(&self.pool).await.unwrap();
    }

    pub(crate) async fn add_org(&self, slug: &str, plan: &str, features: &[&str]) -> String {
        let features = features
            .iter()
            .map(|f| format!("'{f}'"))
            .collect::<Vec<_>>()
            .join(",");
        let id: uuid::Uuid = sqlx::query_scalar(&format!(
            "INSERT INTO orgs (slug, name, plan, features) VALUES ('{slug}', '{slug}', '{plan}', ARRAY[{features}]::text[]) RETURNING id"
        ))
        .fetch_one(&self.pool)
        .await
        .unwrap();
        id.to_string()
    }

    pub(crate) async fn set_member(&self, slug: &str, name: &str, roles: &[&str]) {
        let email = self.email(name);
        let roles = roles
            .iter()
            .map(|r| format!("'{r}'"))
            .collect::<Vec<_>>()
            .join(",");
        self.sql(&format!(
            "INSERT INTO users (email) VALUES ('{email}') ON CONFLICT DO NOTHING"
        ))
        .await;
        self.sql(&format!(
            "INSERT INTO memberships (org_id, user_id, roles) \
             SELECT o.id, u.id, ARRAY[{roles}]::text[] FROM orgs o, users u \
             WHERE o.slug = '{slug}' AND u.email = '{email}' \
             ON CONFLICT (org_id, user_id) DO UPDATE SET roles = EXCLUDED.roles"
        ))
        .await;
    }

    /// Lets a user the sync created sign in with a password (a person would do this
    /// through the required actions by email).
    pub(crate) async fn activate(&self, email: &str) -> String {
        let user = self.admin.user_by_email(email).await.unwrap();
        let id = user["id"].as_str().unwrap().to_owned();
        self.admin
            .send(
                Method::PUT,
                &format!("/users/{id}/reset-password"),
                Some(json!({"type": "password", "value": "pw-123456", "temporary": false})),
            )
            .await;
        let mut user = self.admin.get(&format!("/users/{id}")).await;
        user["requiredActions"] = json!([]);
        // The realm's user profile asks people for their names at first sign-in.
        user["firstName"] = json!("Test");
        user["lastName"] = json!("Member");
        self.admin
            .send(Method::PUT, &format!("/users/{id}"), Some(user))
            .await;
        id
    }
}

/// The org roles among a token's realm roles (the group mappings give them).
pub(crate) fn realm_roles(access: &Value) -> Vec<String> {
    let mut roles: Vec<String> = access["realm_access"]["roles"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str())
        .filter(|r| r.starts_with("ORG_"))
        .map(str::to_owned)
        .collect();
    roles.sort();
    roles
}

fn assert_clean(report: &RunReport) {
    assert_eq!(report.status, RunStatus::Succeeded, "{report:#?}");
    assert!(report.errors.is_empty(), "{report:#?}");
}

#[tokio::test]
async fn orgs_members_roles_and_claims_reach_keycloak_and_follow_changes() {
    let w = SyncWorld::new().await;
    let org_id = w.add_org("acme", "pro", &["seo", "files"]).await;
    w.set_member("acme", "ann", &["ORG_ADMIN"]).await;
    let ann = w.email("ann");
    assert!(w.admin.user_by_email(&ann).await.is_none());

    let report = w.sync().await;
    assert_clean(&report);

    // The group, its attributes and its role groups.
    let group = w
        .admin
        .find_group(&w.path("/acme"))
        .await
        .expect("org group");
    let mut features: Vec<String> =
        serde_json::from_value(group["attributes"]["features"].clone()).unwrap();
    features.sort();
    assert_eq!(features, ["files", "seo"]);
    assert_eq!(group["attributes"]["org_id"], json!([org_id]));
    assert_eq!(group["attributes"]["plan"], json!(["pro"]));
    // Each role group carries the realm role of its name; the org group none.
    for role in ["ORG_ADMIN", "ORG_MANAGER", "ORG_USER"] {
        let child = w
            .admin
            .find_group(&w.path(&format!("/acme/{role}")))
            .await
            .unwrap_or_else(|| panic!("{role}"));
        assert_eq!(child["realmRoles"], json!([role]), "{child}");
        assert_eq!(child["clientRoles"], json!({}), "{child}");
    }
    assert_eq!(group["realmRoles"], json!([]));

    // The member had no account: created, not verified, asked to set a password.
    let user = w.admin.user_by_email(&ann).await.expect("user created");
    assert_eq!(user["username"], ann);
    assert_eq!(user["emailVerified"], false);
    let mut actions: Vec<String> = serde_json::from_value(user["requiredActions"].clone()).unwrap();
    actions.sort();
    assert_eq!(actions, ["UPDATE_PASSWORD", "VERIFY_EMAIL"]);
    assert_eq!(
        w.admin.member_emails(&w.path("/acme")).await,
        [ann.as_str()]
    );
    assert_eq!(
        w.admin.member_emails(&w.path("/acme/ORG_ADMIN")).await,
        [ann.as_str()]
    );

    // Their token carries the claims.
    w.activate(&ann).await;
    let token = user_token(&ann, "pw-123456", "wizbrand-test").await;
    let access = claims(token["access_token"].as_str().unwrap());
    assert_eq!(access["org_memberships"], json!({"acme": ["ORG_ADMIN"]}));
    assert_eq!(access["tenant_ids"], json!([org_id]));
    assert_eq!(realm_roles(&access), ["ORG_ADMIN"]);

    // A role change moves them between role groups and changes the claim.
    w.set_member("acme", "ann", &["ORG_USER"]).await;
    w.set_member("acme", "ben", &["ORG_ADMIN"]).await;
    assert_clean(&w.sync().await);
    assert!(w.admin.member_emails(&w.path("/acme/ORG_ADMIN")).await == [w.email("ben")]);
    assert_eq!(
        w.admin.member_emails(&w.path("/acme/ORG_USER")).await,
        [ann.as_str()]
    );
    let token = user_token(&ann, "pw-123456", "wizbrand-test").await;
    let access = claims(token["access_token"].as_str().unwrap());
    assert_eq!(access["org_memberships"], json!({"acme": ["ORG_USER"]}));
    assert_eq!(realm_roles(&access), ["ORG_USER"]);

    // Removal: out of every group, claims emptied.
    w.sql(&format!(
        "DELETE FROM memberships WHERE user_id = (SELECT id FROM users WHERE email = '{ann}')"
    ))
    .await;
    assert_clean(&w.sync().await);
    assert_eq!(
        w.admin.member_emails(&w.path("/acme")).await,
        [w.email("ben")]
    );
    assert!(
        w.admin
            .member_emails(&w.path("/acme/ORG_USER"))
            .await
            .is_empty()
    );
    let token = user_token(&ann, "pw-123456", "wizbrand-test").await;
    let access = claims(token["access_token"].as_str().unwrap());
    assert!(access.get("org_memberships").is_none(), "{access}");
    assert!(
        access.get("tenant_ids").is_none_or(|t| t == &json!([])),
        "{access}"
    );

    // Deleting the org deletes its group; users stay.
    w.sql("DELETE FROM orgs WHERE slug = 'acme'").await;
    assert_clean(&w.sync().await);
    assert!(w.admin.find_group(&w.path("/acme")).await.is_none());
    assert!(w.admin.user_by_email(&ann).await.is_some());
}

#[tokio::test]
async fn hand_made_drift_is_repaired_and_a_second_run_writes_nothing() {
    let w = SyncWorld::new().await;
    w.add_org("acme", "pro", &["seo"]).await;
    w.set_member("acme", "ann", &["ORG_ADMIN"]).await;
    w.set_member("acme", "bob", &["ORG_USER"]).await;
    assert_clean(&w.sync().await);

    let second = w.sync().await;
    assert_clean(&second);
    assert_eq!(second.writes(), 0, "a no-op run wrote: {:?}", second.calls);
    assert!(second.plan.is_empty(), "{:?}", second.plan);
    let row: (String, i32, i32, i32, i32) = sqlx::query_as(
        "SELECT status, created, updated, deleted, unchanged FROM sync_runs WHERE id = $1",
    )
    .bind(second.run_id.unwrap())
    .fetch_one(&w.pool)
    .await
    .unwrap();
    assert_eq!(
        (row.0.as_str(), row.1, row.2, row.3),
        ("succeeded", 0, 0, 0)
    );
    assert!(row.4 > 0);

    // Drift, by hand in Keycloak.
    let bob = w.admin.user_by_email(&w.email("bob")).await.unwrap();
    let bob_id = bob["id"].as_str().unwrap();
    let admins = w.admin.group_id(&w.path("/acme/ORG_ADMIN")).await;
    w.admin
        .send(
            Method::PUT,
            &format!("/users/{bob_id}/groups/{admins}"),
            None,
        )
        .await;
    let acme_id = w.admin.group_id(&w.path("/acme")).await;
    let mut acme = w.admin.get(&format!("/groups/{acme_id}")).await;
    acme["attributes"]["plan"] = json!(["enterprise"]);
    w.admin
        .send(Method::PUT, &format!("/groups/{acme_id}"), Some(acme))
        .await;
    let managers = w.admin.group_id(&w.path("/acme/ORG_MANAGER")).await;
    w.admin
        .send(Method::DELETE, &format!("/groups/{managers}"), None)
        .await;
    let root_id = w.admin.group_id(&w.path("")).await;
    w.admin
        .send(
            Method::POST,
            &format!("/groups/{root_id}/children"),
            Some(json!({"name": "ghost"})),
        )
        .await;

    // A stray child group with a member.
    w.admin
        .send(
            Method::POST,
            &format!("/groups/{acme_id}/children"),
            Some(json!({"name": "intruders"})),
        )
        .await;
    let intruders = w.admin.group_id(&w.path("/acme/intruders")).await;
    w.admin
        .send(
            Method::PUT,
            &format!("/users/{bob_id}/groups/{intruders}"),
            None,
        )
        .await;

    let repair = w.sync().await;
    assert_clean(&repair);
    assert!(
        w.admin
            .find_group(&w.path("/acme/intruders"))
            .await
            .is_none()
    );
    assert_eq!(
        w.admin.member_emails(&w.path("/acme/ORG_ADMIN")).await,
        [w.email("ann")]
    );
    let acme = w.admin.get(&format!("/groups/{acme_id}")).await;
    assert_eq!(acme["attributes"]["plan"], json!(["pro"]));
    assert!(
        w.admin
            .find_group(&w.path("/acme/ORG_MANAGER"))
            .await
            .is_some()
    );
    assert!(w.admin.find_group(&w.path("/ghost")).await.is_none());
    assert_eq!(w.sync().await.writes(), 0);
}

#[tokio::test]
async fn role_mappings_removed_or_added_by_hand_are_put_back_or_reported() {
    let w = SyncWorld::new().await;
    w.add_org("acme", "pro", &["seo"]).await;
    w.set_member("acme", "ann", &["ORG_ADMIN"]).await;
    assert_clean(&w.sync().await);

    // By hand: ORG_USER loses its role and gains the platform-admin role, the org group
    // gains ORG_ADMIN (every member would hold it), ORG_MANAGER gains a client role.
    let acme = w.admin.group_id(&w.path("/acme")).await;
    let users = w.admin.group_id(&w.path("/acme/ORG_USER")).await;
    let managers = w.admin.group_id(&w.path("/acme/ORG_MANAGER")).await;
    let mapping = |group: &str| format!("/groups/{group}/role-mappings/realm");
    w.admin
        .send(
            Method::DELETE,
            &mapping(&users),
            Some(json!([w.admin.get("/roles/ORG_USER").await])),
        )
        .await;
    w.admin
        .send(
            Method::POST,
            &mapping(&users),
            Some(json!([w.admin.get("/roles/wizbrand-admin").await])),
        )
        .await;
    w.admin
        .send(
            Method::POST,
            &mapping(&acme),
            Some(json!([w.admin.get("/roles/ORG_ADMIN").await])),
        )
        .await;
    let api = w.admin.get("/clients?clientId=wizbrand-api").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let reader = w
        .admin
        .get(&format!("/clients/{api}/roles/entitlements-reader"))
        .await;
    w.admin
        .send(
            Method::POST,
            &format!("/groups/{managers}/role-mappings/clients/{api}"),
            Some(json!([reader])),
        )
        .await;

    let repair = w.sync().await;
    let mut plan = repair.plan.clone();
    plan.sort();
    // The plan names the groups under this run's own group root.
    let root = &w.root;
    assert_eq!(
        plan,
        [
            format!("map realm roles ORG_USER to /{root}/acme/ORG_USER"),
            format!(
                "unmap client roles entitlements-reader of wizbrand-api from /{root}/acme/ORG_MANAGER"
            ),
            format!("unmap realm roles ORG_ADMIN from /{root}/acme"),
            format!("unmap realm roles wizbrand-admin from /{root}/acme/ORG_USER"),
        ]
    );
    // The realm roles are put right. The client role is reported, not removed: the
    // service account may not see client ids (no view-clients).
    assert_eq!(repair.status, RunStatus::Partial, "{repair:#?}");
    assert_eq!(repair.counts.failed, 1, "{repair:#?}");
    assert!(
        repair.errors[0].contains("client roles of wizbrand-api")
            && repair.errors[0].contains("remove them by hand"),
        "{:?}",
        repair.errors
    );
    for (path, roles) in [
        ("/acme", json!([])),
        ("/acme/ORG_ADMIN", json!(["ORG_ADMIN"])),
        ("/acme/ORG_MANAGER", json!(["ORG_MANAGER"])),
        ("/acme/ORG_USER", json!(["ORG_USER"])),
    ] {
        let group = w.admin.find_group(&w.path(path)).await.unwrap();
        assert_eq!(group["realmRoles"], roles, "{path}: {group}");
    }
    w.admin
        .send(
            Method::DELETE,
            &format!("/groups/{managers}/role-mappings/clients/{api}"),
            Some(json!([reader])),
        )
        .await;
    let again = w.sync().await;
    assert_clean(&again);
    assert_eq!(again.writes(), 0, "{:?}", again.calls);
}

#[tokio::test]
async fn a_run_skips_while_another_runner_holds_the_lock() {
    let w = SyncWorld::new().await;
    w.add_org("acme", "pro", &["seo"]).await;
    // Another replica: a connection of its own holding the advisory lock.
    let mut other = w.pool.acquire().await.unwrap();
    assert!(
        wizbrand::db::sync_state::try_lock(&mut other)
            .await
            .unwrap()
    );
    // A dry run only reads: it neither waits for the lock nor writes a row.
    let dry = w.dry_run().await;
    assert_eq!(dry.status, RunStatus::Succeeded, "{dry:#?}");
    assert_eq!(dry.run_id, None);
    assert!(
        dry.plan.contains(&format!("create group /{}/acme", w.root)),
        "{dry:#?}"
    );
    assert_eq!(dry.writes(), 0);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM sync_runs")
        .fetch_one(&w.pool)
        .await
        .unwrap();
    assert_eq!(rows, 0, "a dry run wrote a sync_runs row");
    let report = w.sync().await;
    assert_eq!(report.status, RunStatus::Skipped);
    assert!(w.admin.find_group(&w.path("/acme")).await.is_none());
    let status: String = sqlx::query_scalar("SELECT status FROM sync_runs WHERE id = $1")
        .bind(report.run_id.unwrap())
        .fetch_one(&w.pool)
        .await
        .unwrap();
    assert_eq!(status, "skipped");
    wizbrand::db::sync_state::unlock(&mut other).await.unwrap();
    assert_clean(&w.sync().await);
}

#[tokio::test]
async fn keycloak_down_fails_the_run_with_the_reason_and_the_next_run_converges() {
    let down = SyncWorld::with_env(|env| {
        env.insert("KEYCLOAK_INTERNAL_URL".into(), "http://127.0.0.1:9".into());
    })
    .await;
    down.add_org("acme", "pro", &["seo"]).await;
    down.set_member("acme", "ann", &["ORG_ADMIN"]).await;
    let report = down.sync().await;
    assert_eq!(report.status, RunStatus::Failed);
    let (status, errors): (String, Value) =
        sqlx::query_as("SELECT status, errors FROM sync_runs WHERE id = $1")
            .bind(report.run_id.unwrap())
            .fetch_one(&down.pool)
            .await
            .unwrap();
    assert_eq!(status, "failed");
    assert!(errors.to_string().contains("unreachable"), "{errors}");
    let members: i64 = sqlx::query_scalar("SELECT count(*) FROM memberships")
        .fetch_one(&down.pool)
        .await
        .unwrap();
    assert_eq!(members, 1, "Postgres lost data");

    // Keycloak back (the real URL): the next run converges.
    let up = SyncWorld {
        config: Config::from_source(&{
            let mut env = base_env("postgres://unused@127.0.0.1:1/x");
            env.insert("WIZBRAND_SYNC_GROUP_ROOT".into(), down.root.clone());
            env
        })
        .unwrap(),
        ..down
    };
    assert_clean(&up.sync().await);
    assert_eq!(
        up.admin.member_emails(&up.path("/acme/ORG_ADMIN")).await,
        [up.email("ann")]
    );
}

#[tokio::test]
async fn other_user_data_survives_the_sync() {
    let w = SyncWorld::new().await;
    let ann = w.email("ann");
    w.admin
        .create_user(&ann.replace("@example.com", ""), "pw-123456")
        .await;
    // create_user sets email <name>@example.com, which is `ann`.
    let user = w.admin.user_by_email(&ann).await.unwrap();
    let id = user["id"].as_str().unwrap().to_owned();
    let mut edited = user.clone();
    edited["firstName"] = json!("Ann");
    edited["lastName"] = json!("Example");
    w.admin
        .send(Method::PUT, &format!("/users/{id}"), Some(edited))
        .await;

    w.add_org("acme", "pro", &["seo"]).await;
    w.set_member("acme", "ann", &["ORG_MANAGER"]).await;
    assert_clean(&w.sync().await);

    let after = w.admin.get(&format!("/users/{id}")).await;
    assert_eq!(after["firstName"], "Ann");
    assert_eq!(after["lastName"], "Example");
    assert_eq!(after["emailVerified"], true);
    assert_eq!(
        after["attributes"]["org_memberships"],
        json!([r#"{"acme":["ORG_MANAGER"]}"#])
    );
}

#[tokio::test]
async fn the_command_line_prints_the_plan_and_dry_run_changes_nothing() {
    let w = SyncWorld::new().await;
    w.add_org("acme", "pro", &["seo"]).await;
    w.set_member("acme", "ann", &["ORG_ADMIN"]).await;
    let mut env = base_env(secrecy::ExposeSecret::expose_secret(&w.config.database_url));
    env.insert("WIZBRAND_SYNC_GROUP_ROOT".into(), w.root.clone());
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_wizbrand"))
            .args(args)
            .env_clear()
            .envs(&env)
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap()
    };

    let dry = run(&["sync", "--dry-run"]);
    let out = String::from_utf8_lossy(&dry.stdout);
    assert!(
        dry.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(out.contains("not applied: --dry-run"), "{out}");
    assert!(out.contains("dry run: succeeded"), "{out}");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM sync_runs")
        .fetch_one(&w.pool)
        .await
        .unwrap();
    assert_eq!(rows, 0, "a dry run wrote a sync_runs row");
    assert!(
        out.contains(&format!("create group /{}/acme", w.root)),
        "{out}"
    );
    assert!(
        out.contains(&format!("create user {}", w.email("ann"))),
        "{out}"
    );
    assert!(
        w.admin.find_group(&w.path("/acme")).await.is_none(),
        "dry run applied"
    );

    let real = run(&["sync", "--org", "acme"]);
    let out = String::from_utf8_lossy(&real.stdout);
    assert!(real.status.success(), "{out}");
    assert!(out.contains(": succeeded (created"), "{out}");
    assert!(w.admin.find_group(&w.path("/acme")).await.is_some());

    let again = run(&["sync"]);
    let out = String::from_utf8_lossy(&again.stdout);
    assert!(out.contains("plan: nothing to do"), "{out}");
    assert!(out.contains(", 0 Keycloak writes"), "{out}");

    let bad = run(&["sync", "--org", "Not A Slug"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a valid org slug"));
}

#[tokio::test]
async fn between_full_reads_a_quiet_event_log_stands_in_for_reading_every_group() {
    // A realm of its own: the other tests' admin calls would otherwise fill the event
    // log, and any change by someone else rightly means a full read.
    let master = KeycloakAdmin::connect().await;
    let realm = unique("quiet");
    master.create_realm_copy(&realm).await;
    let mut w = SyncWorld::with_env(|env| {
        env.insert("KEYCLOAK_REALM".into(), realm.clone());
    })
    .await;
    w.admin = master.for_realm(&realm);
    let every = w.config.sync_full_read_every;
    assert_eq!(
        every,
        Some(std::time::Duration::from_secs(3600)),
        "the default"
    );
    let checked_by = |report: &RunReport| report.checked_by();

    w.add_org("acme", "pro", &["seo"]).await;
    w.set_member("acme", "ann", &["ORG_ADMIN"]).await;
    let first = w.sync_with(every).await;
    assert_clean(&first);
    assert!(first.writes() > 0);
    assert_eq!(
        checked_by(&first),
        None,
        "a run that wrote vouches for nothing"
    );
    let verify = w.sync_with(every).await;
    assert_eq!(verify.writes(), 0);
    assert_eq!(checked_by(&verify), Some(CheckedBy::Read));

    // Nothing changed: two calls instead of reading groups, members and users. The
    // first run's own writes are in the log and do not count.
    let quiet = w.sync_with(every).await;
    assert_clean(&quiet);
    assert_eq!(
        checked_by(&quiet),
        Some(CheckedBy::Events),
        "{:?}",
        quiet.calls
    );
    assert_eq!(quiet.writes(), 0);
    assert!(
        quiet
            .calls
            .keys()
            .all(|k| *k == "read:events_config" || *k == "read:admin_events"),
        "{:?}",
        quiet.calls
    );
    assert_eq!(quiet.counts.unchanged, verify.counts.unchanged);
    let row: (String, Option<String>) =
        sqlx::query_as("SELECT status, checked_by FROM sync_runs WHERE id = $1")
            .bind(quiet.run_id.unwrap())
            .fetch_one(&w.pool)
            .await
            .unwrap();
    assert_eq!(row, ("succeeded".into(), Some("events".into())));
    assert_eq!(
        checked_by(&w.sync_with(every).await),
        Some(CheckedBy::Events),
        "checks chain"
    );

    // A change by hand (someone else in the log) makes the next run read and repair.
    let acme_id = w.admin.group_id(&w.path("/acme")).await;
    let mut acme = w.admin.get(&format!("/groups/{acme_id}")).await;
    acme["attributes"]["plan"] = json!(["enterprise"]);
    w.admin
        .send(Method::PUT, &format!("/groups/{acme_id}"), Some(acme))
        .await;
    // Past the clock margin, so the repair's check does not see this change again.
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    let repair = w.sync_with(every).await;
    assert_clean(&repair);
    assert_eq!(repair.counts.updated, 1, "{:?}", repair.plan);
    let acme = w.admin.get(&format!("/groups/{acme_id}")).await;
    assert_eq!(acme["attributes"]["plan"], json!(["pro"]));
    assert_eq!(checked_by(&w.sync_with(every).await), Some(CheckedBy::Read));
    assert_eq!(
        checked_by(&w.sync_with(every).await),
        Some(CheckedBy::Events)
    );

    // A change in Postgres makes it read too.
    w.set_member("acme", "bob", &["ORG_USER"]).await;
    let change = w.sync_with(every).await;
    assert!(change.writes() > 0, "{:?}", change.calls);
    assert_eq!(
        w.admin.member_emails(&w.path("/acme/ORG_USER")).await,
        [w.email("bob")]
    );
    assert_eq!(checked_by(&w.sync_with(every).await), Some(CheckedBy::Read));

    // The last full read too old: read.
    let aged = w.sync_with(Some(std::time::Duration::from_millis(1))).await;
    assert_eq!(checked_by(&aged), Some(CheckedBy::Read));

    // The log turned off: it cannot vouch for anything, so every run reads.
    let mut events = w.admin.get("/events/config").await;
    events["adminEventsEnabled"] = json!(false);
    w.admin
        .send(Method::PUT, "/events/config", Some(events))
        .await;
    assert_eq!(checked_by(&w.sync_with(every).await), Some(CheckedBy::Read));
    assert_eq!(checked_by(&w.sync_with(every).await), Some(CheckedBy::Read));

    master.delete_realm(&realm).await;
}

/// Issue 17: the sync page's dry run listed "set claims of dave: org_memberships={}"
/// for a member removed earlier while every run had succeeded. The runs were the wrong
/// side: the removal's run was scoped to the org, and a scoped run writes only the
/// claims of the org's present members, so the removed one kept the org in their
/// claims until a full run. A removal now asks for a full run.
#[tokio::test]
async fn a_member_removed_through_the_scheduler_loses_their_claims_and_nothing_is_left_to_do() {
    let root = unique("t");
    let app = crate::helpers::TestApp::spawn_with(|env| {
        env.insert("WIZBRAND_SYNC_ENABLED".into(), "true".into());
        env.insert("WIZBRAND_SYNC_GROUP_ROOT".into(), root.clone());
        // No run on the clock during the test: only changes start runs.
        env.insert("WIZBRAND_SYNC_CRON".into(), "0 0 0 1 1 *".into());
    })
    .await;
    let w = SyncWorld::on_app(&app, &root).await;
    w.add_org("acme", "pro", &["seo"]).await;
    w.set_member("acme", "ann", &["ORG_ADMIN"]).await;
    w.set_member("acme", "dave", &["ORG_USER"]).await;
    let dave = w.email("dave");
    let claims_of = |email: String| {
        let admin = &w.admin;
        async move {
            admin
                .user_by_email(&email)
                .await
                .map(|u| u["attributes"]["org_memberships"].clone())
        }
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while claims_of(dave.clone()).await != Some(json!([r#"{"acme":["ORG_USER"]}"#])) {
        assert!(
            std::time::Instant::now() < deadline,
            "the scheduler did not give dave his claims: {:?}",
            claims_of(dave.clone()).await
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }

    // Let the runs that the accounts' links start finish: the removal's own run is
    // the point (one queued beside it would make it a full run).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        let busy: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sync_runs WHERE finished_at IS NULL \
             OR finished_at > now() - interval '2 seconds'",
        )
        .fetch_one(&w.pool)
        .await
        .unwrap();
        if busy == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sync never settled"
        );
    }
    w.sql(&format!(
        "DELETE FROM memberships WHERE user_id = (SELECT id FROM users WHERE email = '{dave}')"
    ))
    .await;
    // The runs the removal starts leave nothing for a dry run to find.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let plan = w.dry_run().await.plan;
        let out_of_groups = w
            .admin
            .member_emails(&w.path("/acme/ORG_USER"))
            .await
            .is_empty();
        if plan.is_empty() && out_of_groups {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "work left undone after the removal: {plan:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert_eq!(claims_of(dave.clone()).await, Some(Value::Null));
    let runs: Vec<(String, Option<String>, String)> = sqlx::query_as(
        "SELECT trigger, scope, status FROM sync_runs WHERE id > (SELECT min(id) FROM sync_runs) ORDER BY id",
    )
    .fetch_all(&w.pool)
    .await
    .unwrap();
    assert!(
        runs.iter().all(|(_, _, status)| status == "succeeded"),
        "{runs:?}"
    );
}
