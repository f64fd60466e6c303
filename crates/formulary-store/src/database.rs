use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, ConnectOptions, Connection, Executor};

use crate::error::StoreError;

/// How many times a write is tried when concurrent writers keep conflicting with it.
const WRITE_ATTEMPTS: u32 = 12;

/// A boxed future borrowing a connection, as returned by the closures given to
/// [`Database::transact`].
pub(crate) type TransactionFuture<'t, T> =
    Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 't>>;

/// The record store: a pool of connections to SQLite or PostgreSQL with the schema applied.
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    /// A pool closed from the start, used instead of `pool` while offline: every query fails at
    /// once ([`StoreError::Unavailable`]) instead of waiting for a connection that cannot be
    /// made.
    closed: AnyPool,
    /// One connection of its own for health probes, so that a busy pool (every connection taken
    /// by requests) does not make the database look down, and a down database is noticed
    /// without waiting for the pool's acquire timeout.
    probe_pool: AnyPool,
    is_sqlite: bool,
    /// The PostgreSQL URL, kept for the change listener's own connection (`None` on SQLite).
    listen_url: Option<ListenUrl>,
    /// Whether the database is reached yet, and the local copy served meanwhile (shared by
    /// every clone: see `offline`).
    pub(crate) offline: std::sync::Arc<crate::offline::OfflineState>,
}

/// A database URL that may hold a password: shown redacted in `Debug` output.
#[derive(Clone)]
struct ListenUrl(String);

impl std::fmt::Debug for ListenUrl {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&redact_url(&self.0))
    }
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Removes the password from a database URL so that it can be shown in messages and logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("REDACTED"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => url
            .split('@')
            .next_back()
            .map_or_else(String::new, |host| format!("…@{host}")),
    }
}

impl Database {
    /// Opens the database at `url` (`sqlite://PATH` — created if missing — or `postgres://…`)
    /// and applies any pending migrations.
    pub async fn open(url: &str) -> Result<Database, StoreError> {
        let database = Database::lazy(url)?;
        // One connection now, so that a database that cannot be reached says so at once.
        drop(
            database
                .pool
                .acquire()
                .await
                .map_err(|source| StoreError::Connect {
                    url: redact_url(url),
                    source,
                })?,
        );
        database.migrate().await?;
        Ok(database)
    }

    /// A database whose connections are made when first used (none is made here) and whose
    /// schema is not brought up to date yet: for `formulary serve` starting while the database
    /// cannot be reached ([`Database::migrate`] once it answers). Marked unavailable
    /// ([`Database::is_offline`]) until [`Database::go_online`].
    pub fn open_deferred(url: &str) -> Result<Database, StoreError> {
        let database = Database::lazy(url)?;
        database.offline.set_offline(true);
        Ok(database)
    }

    /// Brings the schema up to date (pending migrations).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    fn lazy(url: &str) -> Result<Database, StoreError> {
        sqlx::any::install_default_drivers();
        let is_sqlite = url.starts_with("sqlite:");
        if !is_sqlite && !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
            return Err(StoreError::UnsupportedUrl(redact_url(url)));
        }
        let connect_url = if is_sqlite && !url.contains("mode=") {
            format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
        } else {
            url.to_owned()
        };
        let options: AnyConnectOptions = connect_url
            .parse::<AnyConnectOptions>()
            .map_err(|source| StoreError::Connect {
                url: redact_url(url),
                source,
            })?
            .log_statements(tracing::log::LevelFilter::Trace);
        let probe_pool = AnyPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with(options.clone());
        let pool = AnyPoolOptions::new()
            .max_connections(if is_sqlite { 8 } else { 16 })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if is_sqlite {
                        // WAL lets readers proceed while one writer writes; foreign keys are off by
                        // default in SQLite; the busy timeout makes writers wait rather than fail.
                        connection
                            .execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;")
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_lazy_with(options.clone());
        let closed = AnyPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(options);
        // Closing marks the pool closed at once; nothing is open to wait for.
        drop(closed.close());
        Ok(Database {
            pool,
            closed,
            probe_pool,
            is_sqlite,
            listen_url: (!is_sqlite).then(|| ListenUrl(url.to_owned())),
            offline: std::sync::Arc::default(),
        })
    }

    /// The connection pool, for the store's modules (a closed one while offline).
    pub(crate) fn pool(&self) -> &AnyPool {
        if self.is_offline() {
            &self.closed
        } else {
            &self.pool
        }
    }

    /// The PostgreSQL URL for a dedicated listening connection (`None` on SQLite).
    pub(crate) fn listen_url(&self) -> Option<&str> {
        self.listen_url.as_ref().map(|url| url.0.as_str())
    }

    /// True when the records live in SQLite.
    pub fn is_sqlite(&self) -> bool {
        self.is_sqlite
    }

    /// Checks that the database answers, for health checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(self.pool()).await?;
        Ok(())
    }

    /// Checks that the database answers a query now, on a connection kept for health probes
    /// (not the request pool). The caller bounds the wait (a stopped server refuses at once, an
    /// unreachable one may not answer at all): the readiness check gives it a few tens of
    /// milliseconds.
    pub async fn probe(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.probe_pool).await?;
        Ok(())
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.probe_pool.close().await;
        self.pool.close().await;
    }

    /// Runs `work` in a transaction and commits it. When a concurrent writer conflicts (a unique
    /// key taken in between, a busy SQLite file, a PostgreSQL serialisation failure), the whole
    /// transaction is rolled back and tried again from the start.
    pub(crate) async fn transact<T, F>(&self, mut work: F) -> Result<T, StoreError>
    where
        F: for<'t> FnMut(&'t mut AnyConnection) -> TransactionFuture<'t, T>,
    {
        self.ensure_online()?;
        for attempt in 0..WRITE_ATTEMPTS {
            let mut connection = self.pool().acquire().await?;
            let mut transaction = connection.begin().await?;
            let outcome = match work(&mut transaction).await {
                Ok(value) => transaction
                    .commit()
                    .await
                    .map(|()| value)
                    .map_err(StoreError::from),
                Err(error) => {
                    let _ = transaction.rollback().await;
                    Err(error)
                }
            };
            match outcome {
                Err(StoreError::Database(error)) if is_write_conflict(&error) => {
                    let backoff = Duration::from_millis(
                        5 * u64::from(attempt + 1) + u64::from(rand_jitter()),
                    );
                    tokio::time::sleep(backoff).await;
                }
                other => return other,
            }
        }
        Err(StoreError::Contended(WRITE_ATTEMPTS))
    }
}

/// A nullable `DOUBLE PRECISION` value, bound as text for `CAST($n AS DOUBLE PRECISION)`.
///
/// sqlx's `Any` driver (0.8) binds a missing `f64` as a PostgreSQL `float4` NULL but a present one
/// as `float8`. PostgreSQL prepares a statement with the parameter types of its first execution
/// and sqlx caches it per connection, so after a NULL the next record's 8-byte score is refused
/// ("incorrect binary data format in bind parameter N"). Text has one type whether present or
/// not, `f64`'s `Display` is the shortest text that reads back to the same number on both
/// databases, and the cast gives the column its real type. Every other type sqlx binds keeps
/// one PostgreSQL type whether present or missing, so only doubles need this.
pub(crate) fn nullable_double(value: Option<f64>) -> Option<String> {
    value
        .filter(|number| number.is_finite())
        .map(|number| number.to_string())
}

/// A few milliseconds of jitter so that retrying writers do not collide again in lockstep.
fn rand_jitter() -> u8 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    (nanos % 7) as u8
}

/// True for errors that mean "another writer got there first; try again".
fn is_write_conflict(error: &sqlx::Error) -> bool {
    let Some(database_error) = error.as_database_error() else {
        return false;
    };
    if database_error.is_unique_violation() {
        return true;
    }
    let code = database_error.code().unwrap_or_default();
    // PostgreSQL: serialization_failure, deadlock_detected. SQLite: BUSY (5), LOCKED (6) and their
    // extended codes such as BUSY_SNAPSHOT (517).
    matches!(
        code.as_ref(),
        "40001" | "40P01" | "5" | "6" | "261" | "517" | "262"
    ) || database_error.message().contains("database is locked")
}
