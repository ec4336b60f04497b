//! Storage: the Postgres pool, migrations, and every SQL statement, grouped by table.

pub(crate) mod apps;
pub(crate) mod audit;
pub(crate) mod changes;
pub(crate) mod domains;
pub(crate) mod gate;
pub(crate) mod host_tickets;
pub(crate) mod invitations;
pub(crate) mod logout_jtis;
pub(crate) mod members;
pub mod orgs;
pub(crate) mod scim_tokens;
pub(crate) mod scim_users;
pub(crate) mod sessions;
pub(crate) mod sso;
pub mod sync_state;

use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot connect to Postgres (DATABASE_URL): {0}")]
    Connect(#[source] sqlx::Error),
    #[error("migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Query(#[from] sqlx::Error),
}

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A pool that connects lazily, so the server starts (and says "not ready") while
/// Postgres is still coming up.
pub fn lazy_pool(config: &Config) -> Result<PgPool, DbError> {
    PgPoolOptions::new()
        .max_connections(config.database_max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy(config.database_url.expose_secret())
        .map_err(DbError::Connect)
}

/// Connects now, failing with a message that names DATABASE_URL.
pub async fn connect(config: &Config) -> Result<PgPool, DbError> {
    let pool = lazy_pool(config)?;
    ping(&pool).await.map_err(DbError::Connect)?;
    Ok(pool)
}

pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

pub async fn ping(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1").execute(pool).await.map(|_| ())
}
