//! The simple-API parsers take hostile upstream input: they must return a value or an error,
//! never panic, and never produce a file whose name could escape a folder.

use formulary_ecosystems::pypi::{check_filename, parse_html, parse_json};
use proptest::prelude::*;

fn base() -> url::Url {
    url::Url::parse("https://index.example/simple/demo/").expect("url")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn html_parser_never_panics(text in ".{0,400}") {
        let _ = parse_html(&text, &base(), "demo");
    }

    #[test]
    fn html_parser_survives_anchor_soup(parts in prop::collection::vec(prop::sample::select(vec![
        "<a", " href=", "\"", "'", ">", "</a>", "x.whl", "#sha256=", "data-yanked", "=", "&gt;", "&#", "<", "../", "\u{0}", " ",
    ]), 0..60)) {
        let text: String = parts.concat();
        if let Ok(page) = parse_html(&text, &base(), "demo") {
            for file in page.files {
                prop_assert!(url::Url::parse(&file.url).is_ok());
            }
        }
    }

    #[test]
    fn json_parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse_json(&bytes, &base());
    }

    #[test]
    fn accepted_file_names_are_single_safe_segments(name in ".{0,80}") {
        if check_filename(&name).is_ok() {
            prop_assert!(!name.contains('/') && !name.contains('\\') && !name.starts_with('.'));
            prop_assert!(!name.chars().any(char::is_control));
        }
    }
}
