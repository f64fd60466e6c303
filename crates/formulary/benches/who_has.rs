//! "Who has version X?" at the scale of issue 14: 100,000 download-ledger rows and 10,000
//! reported environments (40 component versions each: 400,000 inventory rows), on SQLite and,
//! when `FORMULARY_TEST_POSTGRES_URL` is set, on PostgreSQL. The estate is built once per run.

use criterion::{criterion_main, Criterion};
use formulary_core::ecosystems::Ecosystem;
use formulary_core::{Component, ComponentVersion};
use formulary_store::{Database, Download, LedgerLine, NewReport};

const LEDGER_ROWS: usize = 100_000;
const ENVIRONMENTS: usize = 10_000;
const COMPONENTS_PER_ENVIRONMENT: usize = 40;
const COMPONENTS: usize = 2_000;
const VERSIONS: usize = 5;

fn component(index: usize) -> Component {
    Component::new(Ecosystem::Pypi, &format!("package-{index}")).expect("name")
}

fn version_text(index: usize) -> String {
    format!("1.{}.0", index % VERSIONS)
}

async fn build_estate(database: &Database) {
    database
        .add_organisation(
            &formulary_core::Organisation {
                code: "RJ1".parse().expect("code"),
                name: "A trust".to_owned(),
            },
            "bench",
        )
        .await
        .expect("organisation");
    let lines: Vec<LedgerLine> = (0..LEDGER_ROWS)
        .map(|row| {
            let package = (row * 7919) % COMPONENTS;
            LedgerLine::new(Download {
                organisation: if row % 3 == 0 { "RJ1" } else { "NATIONAL" }
                    .parse()
                    .expect("code"),
                component: component(package),
                version: version_text(row / COMPONENTS),
                filename: format!(
                    "package_{package}-{}-py3-none-any.whl",
                    version_text(row / COMPONENTS)
                ),
                outcome: "served".to_owned(),
                client: format!("10.0.{}.{}", row % 250, row % 199),
                user_agent: "pip/25.3".to_owned(),
                actor: Some(format!("user:person{}", row % 5_000)),
            })
        })
        .collect();
    for chunk in lines.chunks(5_000) {
        database.record_ledger_lines(chunk).await.expect("ledger");
    }
    for environment in 0..ENVIRONMENTS {
        let components = (0..COMPONENTS_PER_ENVIRONMENT)
            .map(|slot| {
                let package = (environment * 31 + slot * 97) % COMPONENTS;
                ComponentVersion {
                    component: component(package),
                    version: formulary_core::ecosystems::Version::parse(
                        Ecosystem::Pypi,
                        &version_text(environment + slot),
                    )
                    .expect("version"),
                }
            })
            .collect();
        database
            .record_report(
                &NewReport {
                    organisation: "RJ1".parse().expect("code"),
                    environment: format!("environment-{environment}"),
                    kind: "project".to_owned(),
                    reported_by: format!("user:person{}", environment % 5_000),
                    reported_by_name: format!("Person {}", environment % 5_000),
                    format: "purls".to_owned(),
                    components,
                },
                "bench",
            )
            .await
            .expect("report");
    }
}

/// Runs one statement on the PostgreSQL server (creating or dropping the bench's database).
async fn admin(url: &str, statement: &str) {
    use sqlx::{Connection, Executor};
    sqlx::any::install_default_drivers();
    let mut connection = sqlx::AnyConnection::connect(url).await.expect("PostgreSQL");
    connection.execute(statement).await.expect("statement");
    connection.close().await.expect("close");
}

fn bench_on(criterion: &mut Criterion, label: &str, url: &str) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let database = runtime.block_on(async {
        let database = Database::open(url).await.expect("open");
        let started = std::time::Instant::now();
        build_estate(&database).await;
        eprintln!("{label}: estate built in {:?}", started.elapsed());
        database
    });
    let wanted = component(1234);
    let holders = runtime
        .block_on(database.who_has(&wanted, Some("1.2.0")))
        .expect("who has");
    assert!(
        !holders.is_empty(),
        "the estate has holders of package-1234 1.2.0"
    );
    eprintln!(
        "{label}: package-1234 1.2.0 has {} holder rows",
        holders.len()
    );
    let mut group = criterion.benchmark_group(format!(
        "who-has ({label}, 100k ledger rows, 10k environments)"
    ));
    group.sample_size(30);
    group.bench_function("one version", |bencher| {
        bencher.iter(|| {
            runtime
                .block_on(database.who_has(&wanted, Some("1.2.0")))
                .expect("who has")
        })
    });
    group.bench_function("every version of a component", |bencher| {
        bencher.iter(|| {
            runtime
                .block_on(database.who_has(&wanted, None))
                .expect("who has")
        })
    });
    group.finish();
    runtime.block_on(database.close());
}

fn who_has(criterion: &mut Criterion) {
    let folder = tempfile::tempdir().expect("folder");
    let sqlite = format!("sqlite://{}", folder.path().join("bench.db").display());
    bench_on(criterion, "SQLite", &sqlite);
    if let Ok(admin_url) = std::env::var("FORMULARY_TEST_POSTGRES_URL") {
        let name = format!("formulary_bench_{}", std::process::id());
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(admin(&admin_url, &format!("CREATE DATABASE {name}")));
        let mut url = url::Url::parse(&admin_url).expect("url");
        url.set_path(&format!("/{name}"));
        bench_on(criterion, "PostgreSQL", url.as_str());
        runtime.block_on(admin(
            &admin_url,
            &format!("DROP DATABASE {name} WITH (FORCE)"),
        ));
    }
}

fn benches() {
    let mut criterion = Criterion::default().configure_from_args();
    who_has(&mut criterion);
}

criterion_main!(benches);
