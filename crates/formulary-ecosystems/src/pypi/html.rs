use std::collections::BTreeMap;
use std::fmt::Write;

use super::page::{
    checked_digest, DistributionFile, IndexError, ProjectPage, ProjectStatus, MAX_PAGE_BYTES,
};
use super::API_VERSION;

/// Most anchors read from one page: far above any real project.
const MAX_ANCHORS: usize = 200_000;

/// One `<a …>text</a>`: its attributes (names lower-cased, values entity-decoded) and text.
struct Anchor {
    attributes: Vec<(String, String)>,
    text: String,
}

impl Anchor {
    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Finds every anchor element. Tolerant of real-world markup: any case, single, double or no
/// quotes, other elements in between. Comments and scripts are not expected in index pages.
fn anchors(html: &str) -> Result<Vec<Anchor>, IndexError> {
    let lower = html.to_ascii_lowercase();
    let mut found = Vec::new();
    let mut position = 0;
    while let Some(offset) = lower[position..].find("<a") {
        let start = position + offset;
        let after_name = start + 2;
        if !lower[after_name..].starts_with(|c: char| c.is_ascii_whitespace() || c == '>') {
            position = after_name;
            continue;
        }
        let tag_end = tag_end(html, after_name)
            .ok_or_else(|| IndexError::Malformed("an <a> tag is never closed".to_owned()))?;
        let attributes = parse_attributes(&html[after_name..tag_end]);
        let text_start = tag_end + 1;
        let text_end = lower[text_start..]
            .find("</a")
            .map_or(html.len(), |offset| text_start + offset);
        let text =
            html_escape::decode_html_entities(html[text_start..text_end].trim()).into_owned();
        found.push(Anchor { attributes, text });
        if found.len() > MAX_ANCHORS {
            return Err(IndexError::Malformed(
                "the page has more than 200,000 links".to_owned(),
            ));
        }
        position = text_end.max(text_start);
    }
    Ok(found)
}

/// The index of the `>` that ends a tag, skipping `>` inside quoted attribute values.
fn tag_end(html: &str, from: usize) -> Option<usize> {
    let mut quote = None;
    for (offset, character) in html[from..].char_indices() {
        match (quote, character) {
            (None, '"' | '\'') => quote = Some(character),
            (Some(open), _) if character == open => quote = None,
            (None, '>') => return Some(from + offset),
            _ => {}
        }
    }
    None
}

fn parse_attributes(text: &str) -> Vec<(String, String)> {
    let mut attributes = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let name_end = rest
            .find(|c: char| c.is_ascii_whitespace() || c == '=' || c == '/')
            .unwrap_or(rest.len());
        let name = rest[..name_end].to_ascii_lowercase();
        rest = rest[name_end..].trim_start();
        let mut value = String::new();
        if let Some(after_equals) = rest.strip_prefix('=') {
            let after_equals = after_equals.trim_start();
            let (raw, remaining) = match after_equals.chars().next() {
                Some(quote @ ('"' | '\'')) => {
                    let body = &after_equals[1..];
                    let end = body.find(quote).unwrap_or(body.len());
                    (&body[..end], body.get(end + 1..).unwrap_or(""))
                }
                _ => {
                    let end = after_equals
                        .find(|c: char| c.is_ascii_whitespace())
                        .unwrap_or(after_equals.len());
                    (&after_equals[..end], &after_equals[end..])
                }
            };
            value = html_escape::decode_html_entities(raw).into_owned();
            rest = remaining;
        } else if name.is_empty() {
            rest = rest.get(1..).unwrap_or("");
        }
        if !name.is_empty() {
            attributes.push((name, value));
        }
        rest = rest.trim_start();
    }
    attributes
}

/// Reads `sha256=hex` (as in URL fragments and `data-core-metadata`).
fn digest_pair(text: &str) -> Option<(String, String)> {
    let (algorithm, value) = text.split_once('=')?;
    checked_digest(algorithm, value)
}

/// Parses a PEP 503 project page. Relative links are resolved against `page_url`.
pub fn parse_html(
    text: &str,
    page_url: &url::Url,
    project: &str,
) -> Result<ProjectPage, IndexError> {
    if text.len() > MAX_PAGE_BYTES {
        return Err(IndexError::TooLarge);
    }
    let mut files = Vec::new();
    for anchor in anchors(text)? {
        let Some(href) = anchor.attribute("href") else {
            continue;
        };
        let mut url = page_url.join(href).map_err(|error| {
            IndexError::Malformed(format!("link '{}': {error}", href.escape_debug()))
        })?;
        let hashes: BTreeMap<String, String> =
            url.fragment().and_then(digest_pair).into_iter().collect();
        url.set_fragment(None);
        let filename = if anchor.text.is_empty() {
            url.path_segments()
                .and_then(|mut segments| segments.next_back())
                .unwrap_or_default()
                .to_owned()
        } else {
            anchor.text.clone()
        };
        let metadata = anchor
            .attribute("data-core-metadata")
            .or_else(|| anchor.attribute("data-dist-info-metadata"));
        files.push(DistributionFile {
            filename,
            url: url.to_string(),
            hashes,
            requires_python: anchor
                .attribute("data-requires-python")
                .map(str::to_owned)
                .filter(|text| !text.trim().is_empty()),
            core_metadata: match metadata {
                None | Some("false") => None,
                Some(value) => Some(digest_pair(value).into_iter().collect()),
            },
            yanked: anchor.attribute("data-yanked").map(str::to_owned),
            size: None,
            upload_time: anchor.attribute("data-upload-time").map(str::to_owned),
            provenance: anchor.attribute("data-provenance").map(str::to_owned),
        });
    }
    let status = meta_content(text, "pypi:project-status").map(|status| ProjectStatus {
        status,
        reason: meta_content(text, "pypi:project-status-reason"),
    });
    Ok(ProjectPage {
        name: project.to_owned(),
        files,
        versions: Vec::new(),
        status,
        meta: BTreeMap::new(),
    })
}

/// The `content` of `<meta name="NAME" content="…">`, if the page has one.
fn meta_content(html: &str, name: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    let mut position = 0;
    while let Some(offset) = lower[position..].find("<meta") {
        let start = position + offset + 5;
        let end = tag_end(html, start)?;
        let attributes = parse_attributes(html[start..end].trim_end_matches('/'));
        let value = |key: &str| {
            attributes
                .iter()
                .find(|(attribute, _)| attribute == key)
                .map(|(_, value)| value.clone())
        };
        if value("name").is_some_and(|found| found.eq_ignore_ascii_case(name)) {
            return value("content");
        }
        position = end;
    }
    None
}

fn escape(text: &str) -> String {
    html_escape::encode_double_quoted_attribute(text).into_owned()
}

/// Renders a project page as PEP 503 HTML (with the PEP 592, 658/714 and 629 attributes).
pub fn render_html(page: &ProjectPage) -> Vec<u8> {
    let mut html = String::with_capacity(256 + page.files.len() * 200);
    let name = escape(&page.name);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html>\n<head>\n<meta name=\"pypi:repository-version\" content=\"{API_VERSION}\">\n"
    );
    if let Some(status) = &page.status {
        let _ = writeln!(
            html,
            "<meta name=\"pypi:project-status\" content=\"{}\">",
            escape(&status.status)
        );
        if let Some(reason) = &status.reason {
            let _ = writeln!(
                html,
                "<meta name=\"pypi:project-status-reason\" content=\"{}\">",
                escape(reason)
            );
        }
    }
    let _ = write!(
        html,
        "<title>Links for {name}</title>\n</head>\n<body>\n<h1>Links for {name}</h1>\n"
    );
    for file in &page.files {
        let fragment = file
            .sha256()
            .map(|digest| format!("#sha256={digest}"))
            .unwrap_or_default();
        let _ = write!(html, "<a href=\"{}{fragment}\"", escape(&file.url));
        if let Some(requires_python) = &file.requires_python {
            let _ = write!(
                html,
                " data-requires-python=\"{}\"",
                escape(requires_python)
            );
        }
        if let Some(hashes) = &file.core_metadata {
            let value = hashes
                .get("sha256")
                .map_or_else(|| "true".to_owned(), |digest| format!("sha256={digest}"));
            let _ = write!(
                html,
                " data-core-metadata=\"{value}\" data-dist-info-metadata=\"{value}\""
            );
        }
        if let Some(reason) = &file.yanked {
            let _ = write!(html, " data-yanked=\"{}\"", escape(reason));
        }
        if let Some(upload_time) = &file.upload_time {
            let _ = write!(html, " data-upload-time=\"{}\"", escape(upload_time));
        }
        if let Some(provenance) = &file.provenance {
            let _ = write!(html, " data-provenance=\"{}\"", escape(provenance));
        }
        let _ = writeln!(
            html,
            ">{}</a><br>",
            html_escape::encode_text(&file.filename)
        );
    }
    html.push_str("</body>\n</html>\n");
    html.into_bytes()
}

/// Renders the root index (`/simple/`) as PEP 503 HTML; links are relative (`name/`).
pub fn render_root_html(projects: &[String]) -> Vec<u8> {
    let mut html = format!("<!DOCTYPE html>\n<html>\n<head>\n<meta name=\"pypi:repository-version\" content=\"{API_VERSION}\">\n<title>Simple index</title>\n</head>\n<body>\n");
    for name in projects {
        let _ = writeln!(
            html,
            "<a href=\"{}/\">{}</a><br>",
            escape(name),
            html_escape::encode_text(name)
        );
    }
    html.push_str("</body>\n</html>\n");
    html.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_real_world_anchors() {
        let base = url::Url::parse("https://index.example/simple/demo/").unwrap();
        let page = parse_html(
            r#"<html><body><h1>Links</h1>
            <A HREF="../../packages/demo-1.0.tar.gz#sha256=0000000000000000000000000000000000000000000000000000000000000000" data-requires-python="&gt;=3.8" data-yanked="">demo-1.0.tar.gz</A><br/>
            <a href='https://files.example/demo-2.0-py3-none-any.whl' data-dist-info-metadata="sha256=1111111111111111111111111111111111111111111111111111111111111111">demo-2.0-py3-none-any.whl</a>
            <a name="anchor-without-href">x</a><abbr>not a link</abbr>
            </body></html>"#,
            &base,
            "demo",
        )
        .unwrap();
        assert_eq!(page.files.len(), 2);
        assert_eq!(
            page.files[0].url,
            "https://index.example/packages/demo-1.0.tar.gz"
        );
        assert_eq!(page.files[0].requires_python.as_deref(), Some(">=3.8"));
        assert_eq!(page.files[0].yanked.as_deref(), Some(""));
        assert!(page.files[0].sha256().is_some());
        assert!(page.files[1].core_metadata.is_some());
    }

    #[test]
    fn rendering_escapes_and_round_trips() {
        let page = ProjectPage {
            name: "demo".into(),
            files: vec![DistributionFile {
                filename: "demo-1.0.tar.gz".into(),
                url: "https://x.example/demo-1.0.tar.gz".into(),
                requires_python: Some(">=3.8,<4".into()),
                yanked: Some("blocked: \"reason\" <here>".into()),
                ..DistributionFile::default()
            }],
            versions: vec![],
            ..ProjectPage::default()
        };
        let html = String::from_utf8(render_html(&page)).unwrap();
        assert!(
            html.contains("data-requires-python=\"&gt;=3.8,&lt;4\""),
            "{html}"
        );
        assert!(!html.contains("<here>"), "{html}");
        let parsed = parse_html(
            &html,
            &url::Url::parse("https://x.example/simple/demo/").unwrap(),
            "demo",
        )
        .unwrap();
        assert_eq!(parsed.files, page.files);
    }

    #[test]
    fn broken_markup_is_an_error_or_ignored_never_a_panic() {
        let base = url::Url::parse("https://index.example/simple/demo/").unwrap();
        for text in [
            "<a href=\"x",
            "<a",
            "<a href=>",
            "<<<a>>>",
            "<a href='http://[::1'>x</a>",
            "\u{0}<a\u{0}>",
        ] {
            let _ = parse_html(text, &base, "demo");
        }
        assert!(parse_html("<a href=\"x", &base, "demo").is_err());
    }
}
