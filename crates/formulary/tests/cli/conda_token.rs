//! conda's token in the channel path, as anaconda.org has it: `formulary setup` writes
//! `.condarc` with `{server}t/frm-…/o/ORG/conda/conda-forge` (readable only by the person), the
//! real py-rattler solves and installs through it from a server that asks for a token on every
//! gateway request, the ledger names the person, a wrong token is a 401, the path never opens
//! the API, and the token reaches no log.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::formulary_cli::{static_server, text, Workspace};
use crate::gateway_auth::{gateway_token, ledger_actors, serve_with, PASSWORD};
use crate::gateway_conda::{build_channel, driver};

crate::on_both_databases!(async fn conda_reads_its_channel_with_the_token_in_the_path);
async fn conda_reads_its_channel_with_the_token_in_the_path() {
    let workspace = Workspace::new();
    let root = workspace.folder.path().to_path_buf();
    workspace.ok(&["org", "add", "RJ1", "--name", "A trust"]);
    workspace.add_user("jane", "Jane Analyst", &["RJ1:requester"], PASSWORD);
    let channel = build_channel(&root);
    let (_upstream, upstream) = static_server(channel.parent().expect("upstream folder"));
    let log = root.join("server.log");
    let (server, base) = serve_with(
        &workspace,
        &[(
            "FORMULARY_CONDA_CHANNELS",
            format!("{{conda-forge=[\"{upstream}channel/\"]}}"),
        )],
        "token",
        &log,
    );
    let client = reqwest::Client::new();
    let (token, _) = gateway_token(&client, &base, "jane").await;

    // Setup writes the channel with the token in its path, in a file only the person reads.
    let home = root.join("home");
    std::fs::create_dir_all(&home).expect("home");
    let mut setup = Command::new(env!("CARGO_BIN_EXE_formulary"))
        .current_dir(&root)
        .env("HOME", &home)
        .env_remove("CONDARC")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("FORMULARY_CONFIG_DIR")
        .args([
            "setup",
            "--server",
            &format!("{base}/"),
            "--token-stdin",
            "--client",
            "conda",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("setup");
    setup
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{token}\n").as_bytes())
        .expect("token");
    let output = setup.wait_with_output().expect("setup ends");
    assert!(
        output.status.success(),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    assert!(
        !text(&output.stdout).contains(&token[4..]),
        "setup prints no token"
    );
    let condarc = std::fs::read_to_string(home.join(".condarc")).expect(".condarc");
    let path_token = token.replacen("frm_", "frm-", 1);
    let channel_url = format!("{base}/t/{path_token}/o/RJ1/conda/conda-forge");
    assert!(condarc.contains(&channel_url), "{condarc}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(home.join(".condarc"))
            .expect(".condarc")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The real py-rattler solves and installs through that channel.
    let prefix = root.join("env");
    let output = Command::new("python3")
        .arg(driver())
        .arg("install")
        .arg(&channel_url)
        .arg(&prefix)
        .arg(root.join("rattler-cache"))
        .arg("tinyapp")
        .stdin(Stdio::null())
        .output()
        .expect("py-rattler driver runs");
    let said = text(&output.stdout);
    assert!(
        said.contains("\"solved\""),
        "{said}{}",
        text(&output.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(prefix.join("share/tinylib/VERSION")).expect("installed file"),
        "tinylib 1.0\n"
    );
    let actors = ledger_actors(&workspace, "pkg:conda/tinyapp", 1).await;
    assert!(
        actors.iter().all(|actor| actor == "user:jane"),
        "{actors:?}"
    );

    // A wrong token in the path is refused; the path opens the gateway only, never the API.
    let wrong = client
        .get(format!(
            "{base}/t/frm-0000/o/RJ1/conda/conda-forge/noarch/repodata.json"
        ))
        .send()
        .await
        .expect("GET");
    assert_eq!(wrong.status(), 401);
    let api = client
        .get(format!("{base}/t/{path_token}/api/v1/me"))
        .send()
        .await
        .expect("GET");
    assert_eq!(api.status(), 404);
    let without = client
        .get(format!(
            "{base}/o/RJ1/conda/conda-forge/noarch/repodata.json"
        ))
        .send()
        .await
        .expect("GET");
    assert_eq!(without.status(), 401, "token mode still asks for one");

    // Nothing logged the token, in either spelling (the server logs at trace level).
    drop(server);
    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(logged.contains("conda-forge"), "the requests were logged");
    let leaks: Vec<&str> = logged
        .lines()
        .filter(|line| line.contains(&token[4..]))
        .collect();
    assert!(leaks.is_empty(), "the token reached the log: {leaks:#?}");
}
