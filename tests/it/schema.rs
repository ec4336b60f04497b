//! The constraints that enforce the data model's rules, checked on real Postgres.

use crate::helpers::fresh_database;

async fn constraint_of(pool: &sqlx::PgPool, sql: &str) -> Option<String> {
    match sqlx::query(sql).execute(pool).await {
        Ok(_) => None,
        Err(sqlx::Error::Database(e)) => e.constraint().map(str::to_owned),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

#[tokio::test]
async fn org_slugs_are_unreserved_dns_labels_and_unique() {
    let (_, pool) = fresh_database().await;
    let insert = |slug: &str| format!("INSERT INTO orgs (slug, name) VALUES ('{slug}', 'x')");
    assert_eq!(constraint_of(&pool, &insert("acme")).await, None);
    assert_eq!(constraint_of(&pool, &insert("a-1")).await, None);
    assert_eq!(
        constraint_of(&pool, &insert("acme")).await.as_deref(),
        Some("orgs_slug_key")
    );
    for bad in ["Acme", "-acme", "acme-", "ac_me", "", &"a".repeat(64)] {
        assert_eq!(
            constraint_of(&pool, &insert(bad)).await.as_deref(),
            Some("orgs_slug_format"),
            "slug {bad:?}"
        );
    }
    for reserved in ["www", "auth", "api", "admin"] {
        assert_eq!(
            constraint_of(&pool, &insert(reserved)).await.as_deref(),
            Some("orgs_slug_not_reserved")
        );
    }
}

#[tokio::test]
async fn one_membership_per_user_and_org_with_known_roles_only() {
    let (_, pool) = fresh_database().await;
    sqlx::query("INSERT INTO orgs (slug, name) VALUES ('acme', 'Acme')")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO users (email) VALUES ('a@example.com')")
        .execute(&pool)
        .await
        .unwrap();
    let member = |roles: &str| {
        format!(
            "INSERT INTO memberships (org_id, user_id, roles) \
             SELECT o.id, u.id, {roles} FROM orgs o, users u"
        )
    };
    assert_eq!(
        constraint_of(&pool, &member("ARRAY['ORG_ADMIN']")).await,
        None
    );
    assert_eq!(
        constraint_of(&pool, &member("ARRAY['ORG_USER']"))
            .await
            .as_deref(),
        Some("memberships_pkey")
    );
    sqlx::query("DELETE FROM memberships")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        constraint_of(&pool, &member("ARRAY['OWNER']"))
            .await
            .as_deref(),
        Some("memberships_roles_known")
    );
    assert_eq!(
        constraint_of(&pool, &member("ARRAY[]::text[]"))
            .await
            .as_deref(),
        Some("memberships_roles_known")
    );
    assert_eq!(
        constraint_of(
            &pool,
            "INSERT INTO users (email) VALUES ('Upper@Example.com')"
        )
        .await
        .as_deref(),
        Some("users_email_normalised")
    );
}

#[tokio::test]
async fn changes_are_announced_for_the_gate_and_the_sync() {
    let (url, pool) = fresh_database().await;
    let mut listener = sqlx::postgres::PgListener::connect(&url).await.unwrap();
    listener.listen("wizbrand_changes").await.unwrap();
    sqlx::query("INSERT INTO orgs (slug, name) VALUES ('acme', 'Acme')")
        .execute(&pool)
        .await
        .unwrap();
    let note = tokio::time::timeout(std::time::Duration::from_secs(5), listener.recv())
        .await
        .expect("no notification within 5 s")
        .unwrap();
    let payload: serde_json::Value = serde_json::from_str(note.payload()).unwrap();
    assert_eq!(payload["table"], "orgs");
    assert_eq!(payload["op"], "INSERT");
    assert!(payload["org_id"].as_str().is_some_and(|id| id.len() == 36));
}
