//! Test databases on both backends.

use formulary_store::Database;
use sqlx::{Connection, Executor};

/// A database for one test, dropped afterwards.
pub struct TestDatabase {
    pub database: Database,
    pub url: String,
    _folder: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    pub async fn sqlite() -> TestDatabase {
        let folder = tempfile::tempdir().expect("temporary folder");
        let url = format!("sqlite://{}", folder.path().join("formulary.db").display());
        let database = Database::open(&url).await.expect("SQLite opens");
        TestDatabase {
            database,
            url,
            _folder: Some(folder),
            postgres: None,
        }
    }

    /// A fresh PostgreSQL database, or `None` when no server is configured (and not required).
    pub async fn postgres() -> Option<TestDatabase> {
        let Ok(admin_url) = std::env::var("FORMULARY_TEST_POSTGRES_URL") else {
            assert!(
                std::env::var("FORMULARY_TEST_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "FORMULARY_TEST_POSTGRES_URL is not set but PostgreSQL is required; run scripts/test"
            );
            eprintln!("skipping the PostgreSQL run: FORMULARY_TEST_POSTGRES_URL is not set");
            return None;
        };
        sqlx::any::install_default_drivers();
        let name = format!("formulary_test_{}", uuid_like());
        let mut admin = sqlx::AnyConnection::connect(&admin_url)
            .await
            .expect("PostgreSQL admin connection");
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create test database");
        admin.close().await.expect("close admin connection");
        let url = replace_database(&admin_url, &name);
        let database = Database::open(&url).await.expect("PostgreSQL opens");
        Some(TestDatabase {
            database,
            url,
            _folder: None,
            postgres: Some((admin_url, name)),
        })
    }

    pub async fn finish(self) {
        self.database.close().await;
        if let Some((admin_url, name)) = self.postgres {
            if let Ok(mut admin) = sqlx::AnyConnection::connect(&admin_url).await {
                let _ = admin
                    .execute(format!("DROP DATABASE IF EXISTS {name}").as_str())
                    .await;
            }
        }
    }
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!("{}_{}", std::process::id(), nanos)
}

fn replace_database(url: &str, name: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("a PostgreSQL URL");
    parsed.set_path(&format!("/{name}"));
    parsed.to_string()
}

/// Declares a module with two tests that run the same body: `sqlite` and `postgres`.
#[macro_export]
macro_rules! store_test {
    ($name:ident, |$database:ident, $url:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let test_database = $crate::support::TestDatabase::sqlite().await;
                let $database: formulary_store::Database = test_database.database.clone();
                #[allow(unused_variables)]
                let $url: String = test_database.url.clone();
                $body
                test_database.finish().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(test_database) = $crate::support::TestDatabase::postgres().await else { return };
                let $database: formulary_store::Database = test_database.database.clone();
                #[allow(unused_variables)]
                let $url: String = test_database.url.clone();
                $body
                test_database.finish().await;
            }
        }
    };
}
