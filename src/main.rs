use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    // A `.env` file is optional; the real environment wins over it.
    let _ = dotenvy::dotenv();
    wizbrand::cli::run(wizbrand::cli::Cli::parse()).await
}
