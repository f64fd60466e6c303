//! yarn berry (yarn 4, `@yarnpkg/cli-dist` installed from the npm registry into the test's target
//! folder, never globally) through the npm gateway, with a local registry in front of the public
//! one: an install with dependencies and a scoped package, a malicious newest version skipped, a
//! lockfile pinning a prohibited version refused with the reason yarn prints, and the `yarn.lock`
//! read by `formulary policy check`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use crate::formulary_cli::{text, Workspace};
use crate::gateway_npm::{failed, gateway, import_advisories, local_upstream, succeeded, Project};

const PUBLIC_REGISTRY: &str = "https://registry.npmjs.org/";

/// yarn's JavaScript bundle: yarn 4 installed once from the public registry into the target
/// folder (each test process stages its own copy and moves it into place in one rename).
fn yarn_js() -> &'static Path {
    static YARN: OnceLock<PathBuf> = OnceLock::new();
    YARN.get_or_init(|| {
        let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join("yarn-tool");
        let bundle = folder.join("tool/node_modules/@yarnpkg/cli-dist/bin/yarn.js");
        if !bundle.exists() {
            let staging = Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("yarn-tool-{}", std::process::id()));
            let project = Project::new(&staging, "tool", PUBLIC_REGISTRY, "{}");
            let output = project.npm(&["install", "@yarnpkg/cli-dist@4"]);
            assert!(
                output.status.success(),
                "could not install yarn from the npm registry (the test needs network to it): {}",
                text(&output.stderr)
            );
            if std::fs::rename(&staging, &folder).is_err() {
                let _ = std::fs::remove_dir_all(&staging);
            }
        }
        assert!(bundle.exists(), "yarn is not at {}", bundle.display());
        bundle
    })
}

/// Makes `project` a yarn project using `registry`, with its own cache and no user settings.
fn configure_yarn(project: &Project, registry: &str) {
    std::fs::write(
        project.folder.join(".yarnrc.yml"),
        format!(
            "npmRegistryServer: \"{registry}\"\nunsafeHttpWhitelist:\n  - \"127.0.0.1\"\nnodeLinker: node-modules\nenableGlobalCache: false\nenableMirror: false\ncacheFolder: ./.yarn-cache\nenableTelemetry: false\n"
        ),
    )
    .expect(".yarnrc.yml");
    std::fs::write(project.folder.join("yarn.lock"), "").expect("an empty yarn.lock");
}

fn yarn(project: &Project, args: &[&str]) -> Output {
    Command::new("node")
        .arg(yarn_js())
        .args(args)
        .current_dir(&project.folder)
        // Its own home: no user .yarnrc.yml, no global folder shared with other tests.
        .env("HOME", &project.folder)
        .env("YARN_ENABLE_IMMUTABLE_INSTALLS", "false")
        .env("YARN_ENABLE_PROGRESS_BARS", "false")
        .env("YARN_ENABLE_COLORS", "false")
        .env("YARN_GLOBAL_FOLDER", project.folder.join(".yarn-global"))
        .output()
        .expect("node runs yarn")
}

crate::on_both_databases!(fn yarn_berry_installs_through_the_gateway_under_policy);
fn yarn_berry_installs_through_the_gateway_under_policy() {
    let workspace = Workspace::new();
    import_advisories(&workspace);
    let (_upstream, _upstream_root, upstream_registry) = local_upstream(&workspace);
    // The local registry first (chalk 5.6.1 malicious, a scoped package), then the public one.
    let (_server, base) = gateway(
        &workspace,
        &format!("[\"{upstream_registry}\", \"{PUBLIC_REGISTRY}\"]"),
    );
    let registry = format!("{base}/npm/");
    let root = workspace.folder.path();

    let project = Project::new(
        root,
        "report",
        &registry,
        r#"{"chalk":"^5.0.0","@formulary-test/pad":"^1.0.0","ansi-styles":"^4.3.0","debug":"^4.3.0"}"#,
    );
    configure_yarn(&project, &registry);
    let installed = yarn(&project, &["install"]);
    succeeded(&installed);
    assert_eq!(
        project.installed("chalk").as_deref(),
        Some("5.6.0"),
        "the malicious newest version is skipped"
    );
    assert_eq!(
        project.installed("@formulary-test/pad").as_deref(),
        Some("1.0.0"),
        "a scoped package"
    );
    assert!(
        project.installed("ms").is_some(),
        "debug's dependency is installed"
    );
    let lock = std::fs::read_to_string(project.folder.join("yarn.lock")).expect("yarn.lock");
    assert!(lock.contains("__metadata"), "{lock}");

    // A version pinned without a lockfile that the view denies: not offered.
    let pinned = Project::new(root, "pinned", &registry, r#"{"chalk":"5.6.1"}"#);
    configure_yarn(&pinned, &registry);
    let refused = failed(&yarn(&pinned, &["install"]));
    assert!(
        refused.contains("chalk@npm:5.6.1: No candidates found"),
        "{refused}"
    );

    // A recall: the scoped package is prohibited after the install.
    workspace.ok(&[
        "entry",
        "add",
        "pkg:npm/%40formulary-test/pad",
        "--status",
        "prohibited",
        "--range",
        "1.0.0",
        "--reason",
        "withdrawn by the national formulary for this test",
    ]);
    std::thread::sleep(Duration::from_secs(3));
    // formulary policy check reads the berry yarn.lock and finds it.
    let check = workspace.run(&[
        "policy",
        "check",
        "--file",
        &project.folder.join("yarn.lock").display().to_string(),
    ]);
    let report = text(&check.stdout);
    assert!(!check.status.success(), "{report}");
    assert!(
        report.contains("DENIED  pkg:npm/%40formulary-test/pad@1.0.0")
            && report.contains("ALLOWED  pkg:npm/chalk@5.6.0")
            && report.contains("ALLOWED  pkg:npm/ms@"),
        "{report}"
    );
    // The lockfile pins it: a fresh install from the lockfile is refused, with the reason.
    std::fs::remove_dir_all(project.folder.join("node_modules")).expect("clean");
    std::fs::remove_dir_all(project.folder.join(".yarn-cache")).expect("clean cache");
    let refused = failed(&yarn(&project, &["install", "--immutable"]));
    assert!(
        refused.contains(
            "Response Code: 403 (Blocked by Formulary: prohibited by the national formulary"
        ) && refused.contains("withdrawn by the national formulary for this test. Request it at")
            && refused.contains("/requests/new?component=pkg:npm/%40formulary-test/pad"),
        "{refused}"
    );
}
