//! The command line: `serve`, `migrate`, `check`, `sync`.

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
    let result = match cli.command {
        Command::Serve => serve(config).await,
        Command::Migrate => migrate(config).await,
        Command::Check => return crate::check::run(&config).await,
        Command::Sync { .. } => Err(anyhow::anyhow!(
            "the sync is not built yet (see the README's status section)"
        )),
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
    app.run_until_stopped().await?;
    Ok(())
}

async fn migrate(config: Config) -> anyhow::Result<()> {
    let pool = crate::db::connect(&config).await?;
    crate::db::migrate(&pool).await?;
    println!("migrations applied");
    Ok(())
}
