//! Which database a test's workspace keeps its records in.
//!
//! A [`Workspace`](crate::formulary_cli::Workspace) uses SQLite in its data folder unless the test
//! runs under [`on_both_databases!`](crate::on_both_databases), which declares two tests from one
//! function: `…::sqlite` and `…::postgres`. The second gives each workspace it creates a fresh
//! PostgreSQL database on the server named by `FORMULARY_TEST_POSTGRES_URL` (an admin URL), passed
//! to every command as `--database-url` and dropped with the workspace. Without that variable the
//! PostgreSQL run is skipped, unless `FORMULARY_TEST_REQUIRE_POSTGRES=1` (as `scripts/test` sets),
//! which fails it instead.

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{Connection, Executor};

/// Where a workspace keeps its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `formulary.db` in the workspace's data folder (the default).
    Sqlite,
    /// A fresh database on the test PostgreSQL server.
    Postgres,
}

thread_local! {
    static BACKEND: Cell<Backend> = const { Cell::new(Backend::Sqlite) };
}

/// The backend the running test asked for (SQLite unless `on_both_databases!` chose PostgreSQL).
pub fn current() -> Backend {
    BACKEND.with(Cell::get)
}

/// Chooses the backend for workspaces created from now on, on this thread (the test's thread:
/// `#[tokio::test]` polls the test's own future there too).
pub fn choose(backend: Backend) {
    BACKEND.with(|cell| cell.set(backend));
}

/// The admin URL of the test PostgreSQL server; `None` (skip) when it is not configured and not
/// required, a panic when it is required but missing.
pub fn admin_url() -> Option<String> {
    match std::env::var("FORMULARY_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("FORMULARY_TEST_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "FORMULARY_TEST_POSTGRES_URL is not set but PostgreSQL is required; run scripts/test"
            );
            eprintln!("skipping the PostgreSQL run: FORMULARY_TEST_POSTGRES_URL is not set");
            None
        }
    }
}

/// A database created for one workspace on the test server, dropped with it.
#[derive(Debug)]
pub struct PostgresDatabase {
    admin_url: String,
    name: String,
    /// The URL of the new database, for `--database-url`.
    pub url: String,
}

impl PostgresDatabase {
    /// Creates a fresh, empty database (the binary applies the migrations when it opens it).
    pub fn create(admin_url: &str) -> PostgresDatabase {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .subsec_nanos();
        let name = format!(
            "formulary_cli_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        admin(admin_url, format!("CREATE DATABASE {name}"));
        let mut url = url::Url::parse(admin_url).expect("FORMULARY_TEST_POSTGRES_URL is a URL");
        url.set_path(&format!("/{name}"));
        PostgresDatabase {
            admin_url: admin_url.to_owned(),
            name,
            url: url.to_string(),
        }
    }
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        // FORCE ends sessions a server under test may still hold (PostgreSQL 13 and later).
        let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(error) = try_admin(&self.admin_url, statement) {
            eprintln!("could not drop the test database {}: {error}", self.name);
        }
    }
}

/// Runs one administrative statement, panicking with the server's answer when it fails.
fn admin(admin_url: &str, statement: String) {
    if let Err(error) = try_admin(admin_url, statement.clone()) {
        panic!("PostgreSQL at FORMULARY_TEST_POSTGRES_URL refused `{statement}`: {error}");
    }
}

/// Runs one administrative statement on its own thread and runtime, so that it works from both
/// plain and `#[tokio::test]` tests.
fn try_admin(admin_url: &str, statement: String) -> Result<(), String> {
    let admin_url = admin_url.to_owned();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| error.to_string())?;
        runtime.block_on(async {
            sqlx::any::install_default_drivers();
            let mut connection = sqlx::AnyConnection::connect(&admin_url)
                .await
                .map_err(|error| error.to_string())?;
            connection
                .execute(statement.as_str())
                .await
                .map_err(|error| error.to_string())?;
            connection.close().await.map_err(|error| error.to_string())
        })
    })
    .join()
    .map_err(|_| "the administrative thread panicked".to_owned())?
}

/// Declares a test function's two runs, `NAME::sqlite` and `NAME::postgres`. Write the function
/// without `#[test]`, and create its workspaces with `Workspace::new()` as usual:
///
/// ```ignore
/// on_both_databases!(fn imports_and_checks);
/// fn imports_and_checks() { let workspace = Workspace::new(); … }
///
/// on_both_databases!(async fn serves);
/// async fn serves() { … }
/// ```
#[macro_export]
macro_rules! on_both_databases {
    (fn $name:ident) => {
        mod $name {
            #[test]
            fn sqlite() {
                $crate::databases::choose($crate::databases::Backend::Sqlite);
                super::$name();
            }

            #[test]
            fn postgres() {
                if $crate::databases::admin_url().is_none() {
                    return;
                }
                $crate::databases::choose($crate::databases::Backend::Postgres);
                super::$name();
            }
        }
    };
    (async fn $name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $crate::databases::choose($crate::databases::Backend::Sqlite);
                super::$name().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if $crate::databases::admin_url().is_none() {
                    return;
                }
                $crate::databases::choose($crate::databases::Backend::Postgres);
                super::$name().await;
            }
        }
    };
}
