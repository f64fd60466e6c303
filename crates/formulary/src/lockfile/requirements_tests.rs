use std::path::Path;

use pep508_rs::{MarkerEnvironment, MarkerEnvironmentBuilder};
use proptest::prelude::*;

use super::*;

/// CPython 3.12.4 on Linux.
pub(crate) fn linux_312() -> Environment {
    let markers = MarkerEnvironment::try_from(MarkerEnvironmentBuilder {
        implementation_name: "cpython",
        implementation_version: "3.12.4",
        os_name: "posix",
        platform_machine: "x86_64",
        platform_python_implementation: "CPython",
        platform_release: "6.1.0",
        platform_system: "Linux",
        platform_version: "#1 SMP",
        python_full_version: "3.12.4",
        python_version: "3.12",
        sys_platform: "linux",
    })
    .expect("environment");
    Environment::fixed(markers, "Python 3.12.4 on linux (test)")
}

fn pins_of(text: &str) -> Vec<String> {
    read_str(text, Path::new("."), &linux_312())
        .expect("read")
        .pins
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn pins_are_read_with_spaces_extras_hashes_markers_and_comments() {
    let pins = read_str(
        "# comment\nPyYAML == 5.3\nrequests==2.19.1 \\\n    --hash=sha256:abc \\\n    --hash sha256:def\npandas[excel] ==2.2.3 ; python_version >= '3.9'  # new enough\nold==1.0; python_version < \"3.8\"\nnumpy>=1.26\n-i https://example.invalid/simple\n--only-binary :all:\n",
        Path::new("."),
        &linux_312(),
    )
    .expect("read");
    let found: Vec<String> = pins.pins.iter().map(ToString::to_string).collect();
    assert_eq!(
        found,
        [
            "pkg:pypi/pyyaml@5.3",
            "pkg:pypi/requests@2.19.1",
            "pkg:pypi/pandas@2.2.3"
        ]
    );
    assert_eq!(pins.skipped.len(), 2, "{:?}", pins.skipped);
    assert!(
        pins.skipped[0].contains("line 7")
            && pins.skipped[0].contains("only for environments where python_version < \"3.8\"")
            && pins.skipped[0].contains("Python 3.12.4 on linux"),
        "{:?}",
        pins.skipped
    );
    assert!(
        pins.skipped[1].contains("line 8")
            && pins.skipped[1].contains("'numpy>=1.26' is not pinned"),
        "{:?}",
        pins.skipped
    );
}

#[test]
fn urls_paths_and_editables_are_not_judged_and_say_why() {
    let pins = read_str(
        "-e ./mypackage\n./dist/tool-1.0-py3-none-any.whl\nhttps://example.invalid/x-1.0.tar.gz\nflask @ https://example.invalid/flask-3.0.tar.gz\nBad Name==1.0\n",
        Path::new("."),
        &linux_312(),
    )
    .expect("read");
    assert!(pins.pins.is_empty());
    let skipped = pins.skipped.join("\n");
    for expected in [
        "line 1: -e ./mypackage is an editable install",
        "line 2: './dist/tool-1.0-py3-none-any.whl' is a local path or URL",
        "line 3: 'https://example.invalid/x-1.0.tar.gz' is a local path or URL",
        "line 4: flask comes from https://example.invalid/flask-3.0.tar.gz",
        "line 5: 'Bad Name==1.0' is not a valid requirement",
    ] {
        assert!(skipped.contains(expected), "{expected:?} in:\n{skipped}");
    }
}

#[test]
fn includes_are_relative_to_the_including_file_and_constraints_pin_requirements() {
    let folder = tempfile::tempdir().expect("folder");
    let sub = folder.path().join("sub");
    std::fs::create_dir_all(&sub).expect("sub");
    std::fs::write(
        folder.path().join("requirements.txt"),
        "-r sub/base.txt\n--constraint=sub/constraints.txt\nrequests\n",
    )
    .expect("write");
    std::fs::write(sub.join("base.txt"), "PyYAML == 5.3\n-r more.txt\n").expect("write");
    std::fs::write(sub.join("more.txt"), "-rbase.txt\nnumpy==1.21.0\n").expect("write");
    std::fs::write(
        sub.join("constraints.txt"),
        "requests==2.19.1\nurllib3==1.26.0\n",
    )
    .expect("write");
    let error = read(&folder.path().join("requirements.txt"), &linux_312())
        .expect_err("base.txt and more.txt include each other");
    assert!(
        format!("{error:#}").contains("is a cycle of included files"),
        "{error:#}"
    );

    std::fs::write(sub.join("more.txt"), "numpy==1.21.0\n").expect("write");
    let pins = read(&folder.path().join("requirements.txt"), &linux_312()).expect("read");
    let found: Vec<String> = pins.pins.iter().map(ToString::to_string).collect();
    assert_eq!(
        found,
        [
            "pkg:pypi/pyyaml@5.3",
            "pkg:pypi/numpy@1.21.0",
            "pkg:pypi/requests@2.19.1"
        ]
    );
    assert_eq!(pins.skipped.len(), 1, "{:?}", pins.skipped);
    assert!(
        pins.skipped[0].contains("1 constraint pin packages no requirement names (urllib3)"),
        "{:?}",
        pins.skipped
    );
}

#[test]
fn a_missing_include_and_an_unknown_option_are_errors() {
    let folder = tempfile::tempdir().expect("folder");
    std::fs::write(folder.path().join("a.txt"), "-r missing.txt\n").expect("write");
    let error = read(&folder.path().join("a.txt"), &linux_312()).expect_err("missing");
    assert!(
        format!("{error:#}").contains("missing.txt, which cannot be read"),
        "{error:#}"
    );
    let error = read_str("--frobnicate\n", Path::new("."), &linux_312()).expect_err("unknown");
    assert!(
        format!("{error:#}").contains("no such option: --frobnicate"),
        "{error:#}"
    );
}

#[test]
fn names_pep508_rs_would_panic_on_are_refused() {
    let pins = read_str(
        "0-!\nfoo- ==1\nfoo[a-]==1\nfoo[ok, b_ ]==1\n",
        Path::new("."),
        &linux_312(),
    )
    .expect("read");
    assert!(pins.pins.is_empty());
    assert_eq!(pins.skipped.len(), 4, "{:?}", pins.skipped);
    assert!(
        pins.skipped
            .iter()
            .all(|line| line.contains("must end with a letter or digit")),
        "{:?}",
        pins.skipped
    );
}

#[test]
fn logical_lines_follow_pip() {
    assert_eq!(
        logical_lines("a==1 \\\n  --hash=x\n# c \\\nb==2 # tail\n\nhttps://x/#egg=c\n"),
        [
            (1, "a==1   --hash=x".to_owned()),
            (4, "b==2".to_owned()),
            (6, "https://x/#egg=c".to_owned())
        ]
    );
    std::env::set_var("FORMULARY_TEST_PIN", "3.1");
    assert_eq!(
        logical_lines("x==${FORMULARY_TEST_PIN}\ny==${unset_lower}\n"),
        [
            (1, "x==3.1".to_owned()),
            (2, "y==${unset_lower}".to_owned())
        ]
    );
}

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9]{0,8}([-_.][A-Za-z0-9]{1,4})?"
}

fn version() -> impl Strategy<Value = String> {
    "(0|[1-9][0-9]{0,2})(\\.(0|[1-9][0-9]{0,2})){0,3}"
}

fn space() -> impl Strategy<Value = String> {
    "[ \t]{0,3}"
}

proptest! {
    #[test]
    fn spacing_extras_markers_hashes_and_comments_do_not_change_a_pin(
        name in name(),
        version in version(),
        before in space(),
        after in space(),
        extras in proptest::option::of("[a-z]{1,6}"),
        marker in proptest::bool::ANY,
        hashes in 0usize..3,
        comment in proptest::option::of("[ -~]{0,20}"),
    ) {
        let extras = extras.map(|extra| format!("[{extra}]")).unwrap_or_default();
        let marker = if marker { " ; python_version >= \"3.8\"" } else { "" };
        let hashes: String = (0..hashes).map(|index| format!(" --hash=sha256:{index:064x}")).collect();
        let comment = comment.map(|text| format!(" # {text}")).unwrap_or_default();
        let line = format!("{name}{extras}{before}=={after}{version}{marker}{hashes}{comment}\n");
        let expected = pins_of(&format!("{name}=={version}\n"));
        prop_assert_eq!(expected.len(), 1);
        prop_assert_eq!(pins_of(&line), expected);
    }

    #[test]
    fn continuation_lines_join_like_one_line(
        name in name(),
        version in version(),
        hashes in 1usize..4,
        breaks in proptest::collection::vec(proptest::bool::ANY, 4),
    ) {
        let mut words = vec![format!("{name}=={version}")];
        words.extend((0..hashes).map(|index| format!("--hash=sha256:{index:064x}")));
        let mut text = words[0].clone();
        for (index, word) in words.iter().enumerate().skip(1) {
            text.push_str(if breaks[index % breaks.len()] { " \\\n    " } else { " " });
            text.push_str(word);
        }
        text.push('\n');
        prop_assert_eq!(pins_of(&text), pins_of(&format!("{name}=={version}\n")));
    }

    #[test]
    fn any_text_is_read_or_refused_without_panicking(text in "[ -~\n\\\\#=;<>\\[\\]@-]{0,200}") {
        let _ = read_str(&text, Path::new("/nonexistent-formulary-test"), &linux_312());
    }

    #[test]
    fn a_logical_line_never_contains_a_comment_or_line_end(text in "[ -~\n\r\\\\#]{0,200}") {
        for (_, line) in logical_lines(&text) {
            prop_assert!(!line.contains('\n') && !line.contains('\r'));
            prop_assert!(!line.starts_with('#') && !line.contains(" #"));
            prop_assert_eq!(line.trim(), line.as_str());
        }
    }
}
