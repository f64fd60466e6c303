//! A national curator adds a desktop tool's version from the web UI (`/admin/tools`, issue 13
//! item 3), in a real browser (tests/browser/tools.js: a requester refused, validation errors,
//! axe-clean pages); the tool then installs with `formulary tools install`, and the addition is
//! audited under the curator's name as `formulary tools add`'s is.

use std::process::Command;

use sha2::{Digest, Sha256};

use crate::browser::run_script;
use crate::formulary_cli::{static_server, text, Workspace};
use crate::gateway_auth::{serve, upstreams, PASSWORD};
use crate::tools::{vendor_archive, TRIPLE};

crate::on_both_databases!(async fn a_curator_adds_a_tool_in_the_browser_and_it_installs);
async fn a_curator_adds_a_tool_in_the_browser_and_it_installs() {
    if std::env::consts::ARCH != "x86_64" || std::env::consts::OS != "linux" {
        eprintln!("skipped: the tool added here is ruff for x86_64 Linux");
        return;
    }
    let workspace = Workspace::new();
    let root = workspace.folder.path().to_path_buf();
    workspace.ok(&["org", "add", "RJ1", "--name", "A trust"]);
    workspace.add_user("jane", "Jane Analyst", &["RJ1:requester"], PASSWORD);
    let browser_password = crate::browser::PASSWORD;
    workspace.add_user("ana", "Ana Analyst", &["RJ1:requester"], browser_password);
    workspace.add_user(
        "nico",
        "Nico Curator",
        &["NATIONAL:national-curator"],
        browser_password,
    );
    let (_pypi, pypi_url, _cran, cran_url) = upstreams(&root.join("upstreams"));

    // What the vendor publishes: ruff's archive, built from its wheel on PyPI.
    let vendor = root.join("vendor");
    let (filename, bytes) = vendor_archive("ruff", "0.6.9", &["ruff"]);
    std::fs::create_dir_all(vendor.join("0.6.9")).expect("vendor");
    std::fs::write(vendor.join("0.6.9").join(&filename), &bytes).expect("archive");
    let (_vendor_server, vendor_url) = static_server(&vendor);

    let (_server, base) = serve(&workspace, &pypi_url, &cran_url, "token", &root.join("log"));
    run_script(
        "tools",
        "tools",
        &base,
        &[
            ("TOOL_URL", format!("{vendor_url}0.6.9/{filename}")),
            ("TOOL_SHA256", hex::encode(Sha256::digest(&bytes))),
            ("TOOL_SIZE", bytes.len().to_string()),
            ("TOOL_BINARY", format!("ruff-{TRIPLE}/ruff")),
        ],
        5,
    );

    // Audited as the CLI's addition is, under the curator's name.
    let url = workspace.database_url().map_or_else(
        || format!("sqlite://{}", root.join("data/formulary.db").display()),
        str::to_owned,
    );
    let database = formulary_store::Database::open(&url)
        .await
        .expect("database");
    let audit = database
        .audit_for_subject("pkg:generic/ruff@0.6.9")
        .await
        .expect("audit");
    assert!(
        audit.len() == 1
            && audit[0].action == "tool.add"
            && audit[0].actor == "user:nico"
            && audit[0].details["platform"] == "x86_64-linux",
        "{audit:?}"
    );

    // The person installs it into their profile.
    let home = crate::tools::set_up_home(&root, &base, "jane", "pip").await;
    let formulary = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_formulary"))
            .args(args)
            .current_dir(&home)
            .env("HOME", &home)
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_DATA_HOME")
            .env_remove("FORMULARY_CONFIG_DIR")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("formulary runs")
    };
    let output = formulary(&["tools", "install", "ruff"])
        .wait_with_output()
        .expect("install");
    assert!(
        output.status.success(),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    let ran = Command::new(home.join(".local/bin/ruff"))
        .arg("--version")
        .output()
        .expect("ruff runs");
    assert_eq!(text(&ran.stdout).trim(), "ruff 0.6.9");
}
