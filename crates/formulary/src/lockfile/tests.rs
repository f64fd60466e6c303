use super::requirements::tests::linux_312;
use super::*;

fn read_as(name: &str, text: &str) -> anyhow::Result<Pins> {
    let folder = tempfile::tempdir().expect("folder");
    let path = folder.path().join(name);
    std::fs::write(&path, text).expect("write");
    read(&path, &linux_312())
}

fn found(pins: &Pins) -> Vec<String> {
    pins.pins.iter().map(ToString::to_string).collect()
}

#[test]
fn uv_lock_leaves_out_the_local_project() {
    let text = "version = 1\nrequires-python = \">=3.12\"\n\n[[package]]\nname = \"requests\"\nversion = \"2.32.3\"\nsource = { registry = \"https://pypi.org/simple\" }\n\n[[package]]\nname = \"myproject\"\nversion = \"0.1.0\"\nsource = { editable = \".\" }\n\n[[package]]\nname = \"workspace-member\"\nversion = \"0.2.0\"\nsource = { virtual = \"packages/member\" }\n\n[[package]]\nname = \"tool\"\nversion = \"1.0\"\nsource = { git = \"https://example.invalid/tool.git\" }\n";
    for name in ["uv.lock", "any-name.lock"] {
        let pins = read_as(name, text).expect("read");
        assert_eq!(found(&pins), ["pkg:pypi/requests@2.32.3"], "{name}");
        let skipped = pins.skipped.join("\n");
        assert!(
            skipped.contains("myproject is the local project (editable .)"),
            "{skipped}"
        );
        assert!(
            skipped.contains("workspace-member is the local project (virtual packages/member)"),
            "{skipped}"
        );
        assert!(
            skipped.contains("tool comes from git https://example.invalid/tool.git"),
            "{skipped}"
        );
    }
}

#[test]
fn pylock_evaluates_markers_and_leaves_out_local_projects() {
    let text = "lock-version = \"1.0\"\ncreated-by = \"uv\"\n\n[[packages]]\nname = \"numpy\"\nversion = \"2.1.0\"\nmarker = \"python_version >= '3.10'\"\n\n[[packages]]\nname = \"numpy\"\nversion = \"1.24.4\"\nmarker = \"python_version < '3.10'\"\n\n[[packages]]\nname = \"myproject\"\ndirectory = { path = \".\", editable = true }\n";
    let pins = read_as("pylock.dev.toml", text).expect("read");
    assert_eq!(found(&pins), ["pkg:pypi/numpy@2.1.0"]);
    let skipped = pins.skipped.join("\n");
    assert!(
        skipped.contains("numpy: only for environments where python_version < '3.10'"),
        "{skipped}"
    );
    assert!(
        skipped.contains("myproject is a local project (directory .)"),
        "{skipped}"
    );
}

#[test]
fn poetry_lock_judges_index_packages_only() {
    let text = "[[package]]\nname = \"requests\"\nversion = \"2.19.1\"\n\n[[package]]\nname = \"internal\"\nversion = \"0.3\"\n[package.source]\ntype = \"git\"\nurl = \"https://example.invalid/internal.git\"\n\n[[package]]\nname = \"mirrored\"\nversion = \"1.0\"\n[package.source]\ntype = \"legacy\"\nurl = \"https://mirror.invalid/simple\"\n\n[metadata]\nlock-version = \"2.0\"\npython-versions = \"^3.11\"\ncontent-hash = \"abc\"\n";
    let pins = read_as("poetry.lock", text).expect("read");
    assert_eq!(
        found(&pins),
        ["pkg:pypi/requests@2.19.1", "pkg:pypi/mirrored@1.0"]
    );
    assert!(
        pins.skipped[0].contains("internal comes from git"),
        "{:?}",
        pins.skipped
    );
}

#[test]
fn renv_lockfiles_are_recognised_by_content_whatever_their_name() {
    let text = r#"{"R":{"Version":"4.4.2","Repositories":[{"Name":"CRAN","URL":"https://cloud.r-project.org"}]},"Packages":{"readxl":{"Package":"readxl","Version":"1.2.0","Source":"Repository"},"mypkg":{"Package":"mypkg","Version":"0.1","Source":"GitHub"}}}"#;
    for name in ["renv.lock", "renv-production.lock", "environment.json"] {
        let pins = read_as(name, text).expect("read");
        assert_eq!(found(&pins), ["pkg:cran/readxl@1.2.0"], "{name}");
        assert!(
            pins.skipped[0].contains("mypkg comes from GitHub"),
            "{:?}",
            pins.skipped
        );
    }
    let error = read_as("package.json", r#"{"name": "x"}"#).expect_err("not renv");
    assert!(
        error.to_string().contains("not an renv lockfile"),
        "{error}"
    );
    let error = read_as("renv.lock", "not json").expect_err("broken");
    assert!(error.to_string().contains("not valid JSON"), "{error}");
    let error = read_as("uv.lock", "[[package]\n").expect_err("broken");
    assert!(error.to_string().contains("not valid TOML"), "{error}");
}

#[test]
fn anything_else_is_a_requirements_file() {
    let pins = read_as("deps.in", "PyYAML == 5.3\n").expect("read");
    assert_eq!(found(&pins), ["pkg:pypi/pyyaml@5.3"]);
}
