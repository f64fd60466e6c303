//! Notifications (issue 12): a requester is told, in the app and by email through a real SMTP
//! server speaking STARTTLS (aiosmtpd from PyPI, with a certificate made for the test), when a
//! reviewer asks a question and when the request is decided; reviewers are told when work waits.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::formulary_cli::{free_port, text, wait_for_service, Running, Workspace};
use crate::on_both_databases;
use crate::requests::{call, login, request_body, PASSWORD};

/// A private certificate authority and a server certificate for `localhost` it signed, as a
/// site with its own CA has. Returns (CA certificate, server certificate, server key).
pub(crate) fn certificates(folder: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let path = |name: &str| folder.join(name);
    let openssl = |args: &[&str]| {
        let made = Command::new("openssl")
            .args(args)
            .current_dir(folder)
            .output()
            .expect("openssl runs");
        assert!(
            made.status.success(),
            "openssl {args:?}: {}",
            text(&made.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=Formulary test CA",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "smtp-key.pem",
        "-out",
        "smtp.csr",
    ]);
    std::fs::write(
        path("smtp.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("extensions");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "smtp.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca-key.pem",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "smtp.ext",
        "-out",
        "smtp-cert.pem",
    ]);
    (path("ca.pem"), path("smtp-cert.pem"), path("smtp-key.pem"))
}

/// aiosmtpd on a free port, requiring STARTTLS, delivering into a maildir.
pub(crate) fn smtp_server(folder: &Path, cert: &Path, key: &Path) -> (Running, u16, PathBuf) {
    let port = free_port();
    let maildir = folder.join("maildir");
    let child = Command::new("python3")
        .args(["-m", "aiosmtpd", "-n", "-l"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--tlscert")
        .arg(cert)
        .arg("--tlskey")
        .arg(key)
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(&maildir)
        .spawn()
        .expect("aiosmtpd starts (scripts/test installs it from PyPI)");
    let mut running = Running(child);
    wait_for_service(&mut running.0, port, "aiosmtpd");
    (running, port, maildir)
}

/// Every message delivered so far, as text.
pub(crate) fn delivered(maildir: &Path) -> Vec<String> {
    ["new", "cur"]
        .iter()
        .filter_map(|sub| std::fs::read_dir(maildir.join(sub)).ok())
        .flatten()
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path()).ok())
        .collect()
}

pub(crate) fn add_person(workspace: &Workspace, username: &str, role: &str) {
    use std::io::Write;
    let mut child = workspace
        .command(&[
            "admin",
            "user",
            "add",
            username,
            "--name",
            username,
            "--email",
            &format!("{username}@example.nhs.uk"),
            "--role",
            role,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("admin user add starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .expect("password");
    let output = child.wait_with_output().expect("ends");
    assert!(output.status.success(), "{}", text(&output.stderr));
}

async fn notifications(client: &reqwest::Client, base: &str, token: &str) -> Vec<Value> {
    let (status, body) = call(
        client,
        token,
        "GET",
        format!("{base}/api/v1/me/notifications"),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().cloned().unwrap_or_default()
}

async fn a_requester_is_emailed_the_question_and_the_decision_over_starttls() {
    let workspace = Workspace::new();
    let (ca, cert, key) = certificates(workspace.folder.path());
    let (_smtp, port, maildir) = smtp_server(workspace.folder.path(), &cert, &key);
    workspace.ok(&["org", "add", "RJ1", "--name", "Trust One"]);
    add_person(&workspace, "ana", "RJ1:requester");
    add_person(&workspace, "rob", "RJ1:reviewer");
    add_person(&workspace, "aisha", "RJ1:approver");
    let (_server, base) = workspace.serve(&[
        ("FORMULARY_SMTP_URL", format!("smtp://localhost:{port}")),
        ("FORMULARY_SMTP_CA_FILE", ca.display().to_string()),
        (
            "FORMULARY_SMTP_FROM",
            "Formulary <formulary@example.nhs.uk>".to_owned(),
        ),
    ]);
    let client = reqwest::Client::new();
    let ana = login(&client, &base, "ana").await;
    let rob = login(&client, &base, "rob").await;
    let aisha = login(&client, &base, "aisha").await;

    let (status, created) = call(
        &client,
        &ana,
        "POST",
        format!("{base}/api/v1/requests"),
        request_body("tomli"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_i64().expect("id");
    let waiting = notifications(&client, &base, &rob).await;
    assert!(
        waiting.iter().any(|note| note["kind"] == "review.waiting"),
        "the reviewer is told work waits: {waiting:?}"
    );

    let (status, body) = call(
        &client,
        &rob,
        "POST",
        format!("{base}/api/v1/requests/{id}/comments"),
        json!({ "body": "Which Python versions does the pipeline run on?" }),
    )
    .await;
    assert!(status.is_success(), "{body}");
    let (status, body) = call(
        &client,
        &aisha,
        "POST",
        format!("{base}/api/v1/requests/{id}/decision"),
        json!({ "outcome": "rejected", "reason": "tomllib is in the standard library from 3.11" }),
    )
    .await;
    assert!(status.is_success(), "{body}");

    let told = notifications(&client, &base, &ana).await;
    let kinds: Vec<&str> = told
        .iter()
        .filter_map(|note| note["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"request.question"), "{told:?}");
    assert!(kinds.contains(&"request.decided"), "{told:?}");
    let link = told[0]["link"].as_str().unwrap_or_default();
    assert!(
        link.starts_with(&base) && link.ends_with(&format!("/requests/{id}")),
        "absolute links: {link}"
    );

    // Both reach ana's mailbox through STARTTLS (aiosmtpd refuses mail before STARTTLS).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mail = delivered(&maildir);
        let to_ana: Vec<&String> = mail
            .iter()
            .filter(|message| message.contains("ana@example.nhs.uk"))
            .collect();
        let question = to_ana
            .iter()
            .any(|message| message.contains("Which Python versions"));
        let decision = to_ana
            .iter()
            .any(|message| message.contains("rejected") && message.contains("tomllib"));
        if question && decision {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "emails not delivered; mailbox holds {mail:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let (status, _) = call(
        &client,
        &ana,
        "POST",
        format!("{base}/api/v1/me/notifications/read"),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(notifications(&client, &base, &ana)
        .await
        .iter()
        .all(|note| !note["read_at"].is_null()));
}

on_both_databases!(async fn a_requester_is_emailed_the_question_and_the_decision_over_starttls);
