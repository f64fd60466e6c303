//! Fuzzes the PyPI simple-API parsers with arbitrary upstream documents.
//! Run with `cargo +nightly fuzz run index_parsers` from the repository root.
#![no_main]

use formulary_ecosystems::pypi::{check_filename, parse_html, parse_json};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(base) = url::Url::parse("https://index.example/simple/demo/") else { return };
    let _ = parse_json(data, &base);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(page) = parse_html(text, &base, "demo") {
            for file in page.files {
                let _ = check_filename(&file.filename);
            }
        }
    }
});
