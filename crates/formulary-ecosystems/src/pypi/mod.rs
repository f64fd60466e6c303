//! The PyPI simple repository API (PEP 503 HTML, PEP 691 JSON, with PEP 592 yanks, PEP 658/714
//! metadata and PEP 700 fields): a model of a project page, parsers for what upstream indexes
//! send, renderers for what pip and uv read, and the version a distribution's file name carries.

mod filename;
mod html;
mod json;
mod page;

pub use filename::{check_filename, is_legacy_distribution, version_from_filename};
pub use html::{parse_html, render_html, render_root_html};
pub use json::{parse_json, render_json, render_root_json};
pub use page::{DistributionFile, IndexError, ProjectPage, ProjectStatus, MAX_PAGE_BYTES};

/// The PEP 691 JSON media type.
pub const JSON_CONTENT_TYPE: &str = "application/vnd.pypi.simple.v1+json";
/// The PEP 691 HTML media type.
pub const HTML_CONTENT_TYPE: &str = "application/vnd.pypi.simple.v1+html";
/// The API version served: PEP 700 fields (1.1) and PEP 792 project status (1.4).
pub const API_VERSION: &str = "1.4";
