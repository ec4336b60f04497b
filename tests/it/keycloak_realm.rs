//! The realm export in keycloak-realm/ gives tokens the claims docs/design.md promises,
//! and users cannot change those claims themselves.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{AccountApi, KeycloakAdmin, claims, stack_var, unique, user_token};

/// An org group (`/<test root>/<slug>`, laid out like `/orgs/<slug>`) with its `org_id`, and a user in its ORG_ADMIN child
/// group whose claim attributes were set by an administrator.
struct Member {
    username: String,
    user_id: String,
    slug: String,
    org_id: String,
}

async fn member_with_admin_set_claims(admin: &KeycloakAdmin) -> Member {
    let username = unique("u-");
    let slug = unique("org-");
    let org_id = uuid::Uuid::new_v4().to_string();
    let user_id = admin.create_user(&username, "pw-123456").await;

    // A root of the test's own, not /orgs: a running sync would remove strangers there.
    let (_, location) = admin
        .send(
            Method::POST,
            "/groups",
            Some(json!({ "name": unique("t") })),
        )
        .await;
    let root = location.unwrap().rsplit('/').next().unwrap().to_owned();
    let (_, location) = admin
        .send(
            Method::POST,
            &format!("/groups/{root}/children"),
            Some(json!({ "name": slug, "attributes": { "org_id": [org_id] } })),
        )
        .await;
    let org_group = location.unwrap().rsplit('/').next().unwrap().to_owned();
    let (_, location) = admin
        .send(
            Method::POST,
            &format!("/groups/{org_group}/children"),
            Some(json!({ "name": "ORG_ADMIN" })),
        )
        .await;
    let role_group = location.unwrap().rsplit('/').next().unwrap().to_owned();
    for group in [&org_group, &role_group] {
        admin
            .send(
                Method::PUT,
                &format!("/users/{user_id}/groups/{group}"),
                None,
            )
            .await;
    }

    // Read-modify-write: PUT replaces the whole user.
    let mut user = admin.get(&format!("/users/{user_id}")).await;
    user["attributes"] = json!({
        "org_memberships": [json!({ slug.clone(): ["ORG_ADMIN"] }).to_string()],
        "preferred_org": [slug],
    });
    admin
        .send(Method::PUT, &format!("/users/{user_id}"), Some(user))
        .await;
    Member {
        username,
        user_id,
        slug,
        org_id,
    }
}

fn audiences(token: &Value) -> Vec<String> {
    match &token["aud"] {
        Value::String(one) => vec![one.clone()],
        Value::Array(many) => many
            .iter()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect(),
        _ => vec![],
    }
}

#[tokio::test]
async fn access_tokens_carry_org_claims_and_the_api_audience() {
    let admin = KeycloakAdmin::connect().await;
    let member = member_with_admin_set_claims(&admin).await;

    let tokens = user_token(&member.username, "pw-123456", "wizbrand-test").await;
    let access = claims(tokens["access_token"].as_str().unwrap());

    assert_eq!(
        access["iss"],
        format!("{}/realms/wizbrand", stack_var("KEYCLOAK_URL"))
    );
    assert_eq!(access["sub"], member.user_id);
    assert_eq!(
        access["org_memberships"],
        json!({ member.slug.clone(): ["ORG_ADMIN"] }),
        "org_memberships must be a JSON object, got {}",
        access["org_memberships"]
    );
    assert_eq!(access["tenant_ids"], json!([member.org_id]), "{access}");
    assert_eq!(access["preferred_org"], member.slug);
    assert!(
        audiences(&access).contains(&"wizbrand-api".to_owned()),
        "aud {:?}",
        access["aud"]
    );

    // A client without the wizbrand-orgs scope gets neither the claims nor the audience.
    let tokens = user_token(&member.username, "pw-123456", "wizbrand-noaud").await;
    let access = claims(tokens["access_token"].as_str().unwrap());
    assert!(
        !audiences(&access).contains(&"wizbrand-api".to_owned()),
        "{access}"
    );
    assert!(access.get("org_memberships").is_none(), "{access}");
}

#[tokio::test]
async fn users_cannot_change_their_org_claims_through_the_account_api() {
    let admin = KeycloakAdmin::connect().await;
    let member = member_with_admin_set_claims(&admin).await;
    let tokens = user_token(&member.username, "pw-123456", "wizbrand-test").await;
    let access_token = tokens["access_token"].as_str().unwrap();

    let account = AccountApi::of(access_token);
    let mut me = account.get().await;
    me["attributes"] = json!({
        "org_memberships": [r#"{"victim":["ORG_ADMIN"]}"#],
        "preferred_org": ["victim"],
        "tenant_ids": ["00000000-0000-0000-0000-000000000000"],
        // Whom the sync made the account for: set by a person, it would link them to
        // that member (src/sync/accounts.rs).
        "wizbrand_user": ["00000000-0000-0000-0000-000000000001"],
    });
    me["firstName"] = json!("Changed");
    let (status, body) = account.post(&me).await;
    // Keycloak either ignores the admin-only attributes or refuses the update.
    assert!(
        status.is_success() || status.is_client_error(),
        "{status} {body}"
    );

    let stored = admin.get(&format!("/users/{}", member.user_id)).await;
    assert_eq!(stored["attributes"]["preferred_org"], json!([member.slug]));
    assert!(
        stored["attributes"].get("wizbrand_user").is_none(),
        "a person set the sync's account marker: {stored}"
    );
    let tokens = user_token(&member.username, "pw-123456", "wizbrand-test").await;
    let access = claims(tokens["access_token"].as_str().unwrap());
    assert_eq!(
        access["org_memberships"],
        json!({ member.slug.clone(): ["ORG_ADMIN"] })
    );
    assert_eq!(access["preferred_org"], member.slug);
    assert_eq!(access["tenant_ids"], json!([member.org_id]));
}
