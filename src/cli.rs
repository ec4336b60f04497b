//! The command line: `serve`, `migrate`, `check`, `sync`, `explain`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;

#[derive(Debug, Parser)]
#[command(
    name = "wizbrand",
    version,
    about = "The identity edge: gate, sign-in, admin and Keycloak sync"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// HTTP server (web, API, forward-auth, metrics) and the sync scheduler.
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Validate the configuration and reach Postgres and Keycloak.
    Check,
    /// One reconcile pass of Postgres into Keycloak now.
    Sync {
        /// Only this org.
        #[arg(long)]
        org: Option<String>,
        /// Print the plan without applying it.
        #[arg(long)]
        dry_run: bool,
        /// Read every group even when Keycloak's admin event log shows no change.
        #[arg(long)]
        full_read: bool,
    },
    /// Why the gate lets a person reach a URL or not, step by step (the gate's own
    /// decision, on the state in Postgres now).
    Explain {
        /// The person, by email.
        #[arg(long)]
        email: String,
        /// The URL they open, e.g. http://acme.seo.wizbrand.localhost:8000/reports.
        #[arg(long)]
        url: String,
        /// Decide as if they had chosen this org (for hosts that name none).
        #[arg(long)]
        org: Option<String>,
    },
}

/// Runs a command; every failure is printed in plain words and becomes exit code 1.
pub async fn run(cli: Cli) -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("wizbrand: configuration error: {e}");
            return ExitCode::FAILURE;
        }
    };
    crate::telemetry::init(config.log_format);
    // Before anything starts: without CA roots every call to Keycloak would fail.
    if matches!(cli.command, Command::Serve | Command::Sync { .. })
        && let Err(e) = crate::keycloak::check_trust_store()
    {
        eprintln!("wizbrand: {e}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Serve => serve(config).await,
        Command::Migrate => migrate(config).await,
        Command::Check => return crate::check::run(&config).await,
        Command::Sync {
            org,
            dry_run,
            full_read,
        } => sync_once(config, org, dry_run, full_read).await,
        Command::Explain { email, url, org } => explain(config, &email, &url, org.as_deref()).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wizbrand: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = crate::startup::Application::build(config).await?;
    tracing::info!(port = app.port(), "wizbrand is listening");
    if let Some(port) = app.ops_port() {
        tracing::info!(port, "metrics and readiness details on the ops listener");
    }
    app.run_until(crate::startup::shutdown_signal()).await
}

async fn migrate(config: Config) -> anyhow::Result<()> {
    let pool = crate::db::connect(&config).await?;
    crate::db::migrate(&pool).await?;
    println!("migrations applied");
    Ok(())
}

async fn explain(config: Config, email: &str, url: &str, org: Option<&str>) -> anyhow::Result<()> {
    use crate::forward_auth::explain::{Question, explain, find_person};
    let pool = crate::db::connect(&config).await?;
    // The gate's state as every replica loads it, and the gate's decision.
    let snapshot = crate::forward_auth::state::load(&pool).await?;
    let person = find_person(&pool, email).await?;
    let signer = match &config.gate.assertion {
        Some(settings) => Some(crate::forward_auth::assertion::Signer::new(
            settings,
            config.public_url.as_str(),
        )?),
        None => None,
    };
    let explanation = explain(
        &snapshot,
        &Question {
            person: &person,
            url,
            org,
            use_stored_choice: true,
        },
        signer.as_ref(),
    )?;
    print!("{}", explanation.to_text());
    Ok(())
}

async fn sync_once(
    config: Config,
    org: Option<String>,
    dry_run: bool,
    full_read: bool,
) -> anyhow::Result<()> {
    use std::io::Write;

    use crate::sync::plan::Scope;
    use crate::sync::{CheckedBy, RunStatus};

    let scope = match org {
        Some(raw) => Scope::Orgs([crate::domain::OrgSlug::parse(&raw)?].into()),
        None => Scope::All,
    };
    let pool = crate::db::connect(&config).await?;
    let directory = crate::keycloak::directory::KeycloakDirectory::new(
        &config.keycloak,
        config.sync_concurrency,
        std::time::Duration::from_secs(10),
    );
    let options = crate::sync::RunOptions {
        scope,
        trigger: crate::sync::Trigger::Cli,
        dry_run,
        root: config.sync_group_root.clone(),
        full_read_every: if full_read {
            None
        } else {
            config.sync_full_read_every
        },
    };
    let progress = |done: usize, total: usize| {
        let width = 30;
        let filled = done * width / total.max(1);
        eprint!(
            "\r[{}{}] {done}/{total}",
            "=".repeat(filled),
            " ".repeat(width - filled)
        );
        if done == total {
            eprintln!();
        }
        let _ = std::io::stderr().flush();
    };
    // SIGTERM or Ctrl-C stops the run at its next safe point (journalled
    // `interrupted`; the next run does the rest).
    let stop = tokio_util::sync::CancellationToken::new();
    let watch = async {
        crate::startup::shutdown_signal().await;
        eprintln!("\nstopping at the next safe point (between two operations)");
        stop.cancel();
        // The run ends this `select!`, at its safe point.
        std::future::pending().await
    };
    let report = tokio::select! {
        report = crate::sync::run_until(&pool, &directory, &options, &progress, &stop) => report,
        report = watch => report,
    }?;
    let mut out = std::io::stdout().lock();
    if report.checked_by() == Some(CheckedBy::Events) {
        writeln!(
            out,
            "plan: nothing to do (Postgres unchanged, and Keycloak's admin event log shows no \
             change by anyone else since the last verified run; --full-read reads every group)"
        )?;
    } else if report.plan.is_empty() {
        writeln!(out, "plan: nothing to do")?;
    } else {
        writeln!(
            out,
            "plan ({} operations{}):",
            report.plan.len(),
            if dry_run {
                ", not applied: --dry-run"
            } else {
                ""
            }
        )?;
        for line in &report.plan {
            writeln!(out, "  {line}")?;
        }
    }
    let c = &report.counts;
    // A dry run has no `sync_runs` row to name.
    let run = match report.run_id {
        Some(id) => format!("run {id}"),
        None => "dry run".to_owned(),
    };
    writeln!(
        out,
        "{run}: {} (created {}, updated {}, deleted {}, unchanged {}, failed {}) in {:.2}s, {} Keycloak writes",
        report.status,
        c.created,
        c.updated,
        c.deleted,
        c.unchanged,
        c.failed,
        report.seconds,
        report.writes()
    )?;
    let calls: Vec<String> = report
        .calls
        .iter()
        .map(|(name, n)| format!("{name}={n}"))
        .collect();
    writeln!(out, "Keycloak calls: {}", calls.join(" "))?;
    let waited: Vec<String> = report
        .call_seconds
        .iter()
        .map(|(name, s)| format!("{name}={s:.1}"))
        .collect();
    writeln!(
        out,
        "Keycloak seconds by call (summed over concurrent calls): {}",
        waited.join(" ")
    )?;
    for error in &report.errors {
        writeln!(out, "  error: {error}")?;
    }
    match report.status {
        RunStatus::Succeeded => Ok(()),
        RunStatus::Skipped => {
            writeln!(out, "another runner holds the sync lock; nothing was done")?;
            Ok(())
        }
        RunStatus::Interrupted => Err(anyhow::anyhow!(
            "sync interrupted; run `wizbrand sync` again to finish"
        )),
        other => Err(anyhow::anyhow!("sync {other}")),
    }
}
