//! Tamper evidence (issue 12, finding S4), the way someone with write access to the database
//! would try it: change a prohibition to `approved` in the `entries` table, rewrite an audit row
//! and recompute every later hash (the chain alone has no key), and delete the newest rows.
//! Each must leave `formulary audit verify` at exit 1, and the prohibition must stay in force.

use sha2::{Digest, Sha256};
use sqlx::{Connection, Row};

use crate::formulary_cli::{text, Workspace};
use crate::on_both_databases;

/// The records' URL, as the CLI opens them.
fn records_url(workspace: &Workspace) -> String {
    workspace.database_url().map_or_else(
        || {
            format!(
                "sqlite://{}",
                workspace.folder.path().join("data/formulary.db").display()
            )
        },
        str::to_owned,
    )
}

async fn execute(workspace: &Workspace, sql: &str) {
    sqlx::any::install_default_drivers();
    let mut connection = sqlx::AnyConnection::connect(&records_url(workspace))
        .await
        .expect("connects");
    sqlx::query(sql)
        .execute(&mut connection)
        .await
        .expect("the tampering statement runs");
}

/// What an attacker who knows the (unkeyed) row hash recipe does: edit one row's details and
/// recompute the hash and link of it and every later row.
async fn rewrite_history(workspace: &Workspace, seq: i64, details: &str) {
    sqlx::any::install_default_drivers();
    let mut connection = sqlx::AnyConnection::connect(&records_url(workspace))
        .await
        .expect("connects");
    let rows = sqlx::query(
        "SELECT seq, at, actor, action, subject, details, previous_hash FROM audit_log ORDER BY seq",
    )
    .fetch_all(&mut connection)
    .await
    .expect("reads the log");
    let mut previous: Option<String> = None;
    for row in rows {
        let row_seq: i64 = row.get("seq");
        let mut row_details: String = row.get("details");
        if row_seq == seq {
            row_details = details.to_owned();
        }
        let previous_hash = previous
            .clone()
            .unwrap_or_else(|| row.get::<String, _>("previous_hash"));
        let canonical = serde_json::json!([
            row_seq,
            row.get::<String, _>("at"),
            row.get::<String, _>("actor"),
            row.get::<String, _>("action"),
            row.get::<String, _>("subject"),
            row_details,
            previous_hash
        ])
        .to_string();
        let hash = hex::encode(Sha256::digest(canonical.as_bytes()));
        sqlx::query(
            "UPDATE audit_log SET details = $1, previous_hash = $2, hash = $3 WHERE seq = $4",
        )
        .bind(&row_details)
        .bind(&previous_hash)
        .bind(&hash)
        .bind(row_seq)
        .execute(&mut connection)
        .await
        .expect("rewrites a row");
        previous = Some(hash);
    }
}

fn verify(workspace: &Workspace) -> (Option<i32>, String) {
    let output = workspace.run(&["audit", "verify"]);
    (output.status.code(), text(&output.stdout))
}

async fn s4_changes_made_around_the_application_are_detected_and_never_applied() {
    let workspace = Workspace::new();
    workspace.ok(&["org", "add", "RJ1", "--name", "Trust One"]);
    workspace.ok(&[
        "entry",
        "add",
        "pkg:pypi/requests",
        "--range",
        "==2.19.1",
        "--status",
        "prohibited",
        "--reason",
        "CVE-2018-18074: credentials leak on redirect",
    ]);
    let (code, said) = verify(&workspace);
    assert_eq!(code, Some(0), "{said}");
    let denied = |workspace: &Workspace| {
        workspace
            .run(&[
                "policy",
                "check",
                "pkg:pypi/requests@2.19.1",
                "--org",
                "RJ1",
            ])
            .status
            .code()
    };
    assert_eq!(denied(&workspace), Some(1), "prohibited");

    // 1. The prohibition becomes an approval in the entries table.
    execute(
        &workspace,
        "UPDATE entries SET status = 'approved' WHERE name = 'requests'",
    )
    .await;
    let (code, said) = verify(&workspace);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("changed around the application"), "{said}");
    assert!(said.contains("approved"), "{said}");
    assert_eq!(
        denied(&workspace),
        Some(1),
        "the audited prohibition stays in force"
    );
    execute(
        &workspace,
        "UPDATE entries SET status = 'prohibited' WHERE name = 'requests'",
    )
    .await;
    assert_eq!(verify(&workspace).0, Some(0), "put back as it was");

    // 2. An audit row is rewritten and every later hash recomputed: the chain checks out, the
    //    signed checkpoint does not.
    sqlx::any::install_default_drivers();
    let mut connection = sqlx::AnyConnection::connect(&records_url(&workspace))
        .await
        .expect("connects");
    let seq: i64 = sqlx::query("SELECT seq FROM audit_log WHERE action = 'entry.add'")
        .fetch_one(&mut connection)
        .await
        .expect("the entry's row")
        .get("seq");
    let details: String = sqlx::query("SELECT details FROM audit_log WHERE seq = $1")
        .bind(seq)
        .fetch_one(&mut connection)
        .await
        .expect("details")
        .get("details");
    rewrite_history(
        &workspace,
        seq,
        &details.replace("\"prohibited\"", "\"approved\""),
    )
    .await;
    let (code, said) = verify(&workspace);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("checkpoint"), "{said}");

    // 3. On a fresh workspace: the newest rows are deleted (truncation).
    let fresh = Workspace::new();
    fresh.ok(&["org", "add", "RJ1", "--name", "Trust One"]);
    fresh.ok(&["org", "add", "RJ2", "--name", "Trust Two"]);
    assert_eq!(verify(&fresh).0, Some(0));
    execute(
        &fresh,
        "DELETE FROM audit_log WHERE seq = (SELECT MAX(seq) FROM audit_log)",
    )
    .await;
    let (code, said) = verify(&fresh);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("truncated"), "{said}");
}

on_both_databases!(async fn s4_changes_made_around_the_application_are_detected_and_never_applied);
