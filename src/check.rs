//! `wizbrand check`: is this configuration good, and can it reach what it needs?

use std::process::ExitCode;

use crate::config::Config;

/// Prints one line per check and fails when any failed.
pub async fn run(config: &Config) -> ExitCode {
    println!("ok   configuration is complete and well-formed");
    let mut failed = false;
    let mut report = |name: &str, result: Result<String, String>| match result {
        Ok(detail) => println!("ok   {name}: {detail}"),
        Err(detail) => {
            failed = true;
            println!("FAIL {name}: {detail}");
        }
    };

    report(
        "postgres",
        match crate::db::connect(config).await {
            Ok(pool) => match schema_status(&pool).await {
                Ok(applied) => Ok(applied),
                Err(e) => Err(format!("connected, but the schema could not be read: {e}")),
            },
            Err(e) => Err(e.to_string()),
        },
    );

    let http = match crate::keycloak::try_http_client(config.probe_timeout) {
        Ok(http) => http,
        Err(e) => {
            report("keycloak", Err(e.to_string()));
            return ExitCode::FAILURE;
        }
    };
    match crate::keycloak::discover(&http, &config.keycloak).await {
        Ok(discovery) => {
            report(
                "keycloak",
                Ok(format!("realm reached, issuer {}", discovery.issuer)),
            );
            report(
                "keycloak service account",
                crate::keycloak::service_account_token(&http, &config.keycloak, &discovery)
                    .await
                    .map(|_| format!("{} can sign in", config.keycloak.sync_client_id))
                    .map_err(|e| e.to_string()),
            );
        }
        Err(e) => report("keycloak", Err(e.to_string())),
    }

    match crate::mail::Mailer::new(config.lifecycle.mail.as_ref()) {
        Ok(mailer) if !mailer.configured() => {
            println!("skip mail: WIZBRAND_SMTP_URL is unset, so invitations cannot be sent")
        }
        Ok(mailer) => report(
            "mail",
            mailer
                .probe()
                .await
                .map(|()| "the SMTP server (WIZBRAND_SMTP_URL) answers".to_owned())
                .map_err(|e| e.to_string()),
        ),
        Err(e) => report("mail", Err(e.to_string())),
    }

    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Says how many of the embedded migrations the database has applied.
async fn schema_status(pool: &sqlx::PgPool) -> Result<String, sqlx::Error> {
    let embedded = crate::db::MIGRATOR.iter().count();
    let has_table: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables WHERE tablename = '_sqlx_migrations')",
    )
    .fetch_one(pool)
    .await?;
    if !has_table {
        return Ok(format!(
            "connected; 0 of {embedded} migrations applied (run `wizbrand migrate`)"
        ));
    }
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await?;
    Ok(format!(
        "connected; {applied} of {embedded} migrations applied"
    ))
}
