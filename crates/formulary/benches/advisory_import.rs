//! Import time of the whole PyPA advisory database (2,661 records) into a fresh SQLite store:
//! reading and parsing the YAML files, then the batched upsert with its audit rows.

use std::path::Path;

use criterion::{criterion_main, Criterion};
use formulary_store::Database;

fn database_folder() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test-data/osv/pypa-advisory-database")
}

fn advisory_import(criterion: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let source = database_folder();
    let mut group = criterion.benchmark_group("advisories");
    group.sample_size(10);
    group.bench_function("read and parse the PyPA database", |bencher| {
        bencher.iter(|| formulary::osv_source::load(&source).expect("load"))
    });
    let loaded = formulary::osv_source::load(&source).expect("load");
    assert!(loaded.imports.len() > 2_500);
    group.bench_function("import the PyPA database into fresh SQLite", |bencher| {
        bencher.iter_batched(
            || tempfile::tempdir().expect("folder"),
            |folder| {
                runtime.block_on(async {
                    let url = format!("sqlite://{}", folder.path().join("bench.db").display());
                    let database = Database::open(&url).await.expect("open");
                    database
                        .import_advisories(&loaded.imports, "bench", "bench", |_| {})
                        .await
                        .expect("import");
                    database.close().await;
                })
            },
            criterion::BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// Criterion's generated entry points, kept private.
mod harness {
    use super::advisory_import;
    criterion::criterion_group!(benches, advisory_import);
}

criterion_main!(harness::benches);
