use std::time::Duration;

use bytes::Bytes;
use formulary_ecosystems::pypi::{self, ProjectPage, MAX_PAGE_BYTES};
use futures::{Stream, StreamExt};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use reqwest::StatusCode;
use thiserror::Error;
use url::Url;

/// How an upstream failed.
#[derive(Debug, Clone, Error)]
pub enum UpstreamFailure {
    /// No answer in time, or the connection failed.
    #[error("{url} did not answer ({why})")]
    Unreachable {
        /// What was asked (credentials removed).
        url: String,
        /// What went wrong.
        why: String,
    },
    /// An answer that is not usable.
    #[error("{url} answered {status}")]
    Status {
        /// What was asked.
        url: String,
        /// The status.
        status: u16,
    },
    /// A document that could not be read.
    #[error("{url} sent a malformed index document: {why}")]
    Malformed {
        /// What was asked.
        url: String,
        /// What is wrong.
        why: String,
    },
}

/// The result of asking an upstream for a project page.
#[derive(Debug)]
pub enum Fetched {
    /// A new document.
    Page {
        /// The parsed page, with absolute file URLs.
        page: ProjectPage,
        /// Its entity tag.
        etag: Option<String>,
    },
    /// The cached document is still current (304).
    NotModified,
    /// The upstream does not have the project.
    Missing,
}

/// The result of asking an upstream for any document (a `PACKAGES` index, a folder listing).
#[derive(Debug)]
pub enum Document {
    /// The body and its entity tag.
    Body {
        /// The bytes.
        bytes: Bytes,
        /// The entity tag.
        etag: Option<String>,
    },
    /// The cached copy is still current (304).
    NotModified,
    /// Not there (404 or 410).
    Missing,
}

/// Upstream base URLs as folders (ending in `/`), so that relative paths join under them.
pub(crate) fn as_folders(upstreams: Vec<Url>) -> Vec<Url> {
    upstreams
        .into_iter()
        .map(|mut url| {
            if !url.path().ends_with('/') {
                url.set_path(&format!("{}/", url.path()));
            }
            url
        })
        .collect()
}

/// A client for PEP 503/691 indexes: timeouts, retries with backoff, same-host redirects only,
/// size limits.
#[derive(Debug, Clone)]
pub struct UpstreamClient {
    client: reqwest::Client,
    attempts: u32,
}

/// The error with its causes ("error sending request: … invalid peer certificate"), without
/// the URL (which may carry credentials).
fn explain(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn redacted(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_password(None);
    let _ = shown.set_username("");
    shown.to_string()
}

impl UpstreamClient {
    /// A client with the given per-request timeout.
    pub fn new(timeout: Duration) -> Result<UpstreamClient, reqwest::Error> {
        let redirects = reqwest::redirect::Policy::custom(|attempt| {
            let same_host = attempt
                .previous()
                .first()
                .is_some_and(|first| first.host_str() == attempt.url().host_str());
            if attempt.previous().len() > 5 {
                attempt.error("too many redirects")
            } else if same_host {
                attempt.follow()
            } else {
                attempt.error(
                    "the upstream redirected to another host, which Formulary does not follow",
                )
            }
        });
        let client = reqwest::Client::builder()
            .user_agent(concat!("formulary/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .read_timeout(timeout)
            .redirect(redirects)
            .build()?;
        Ok(UpstreamClient {
            client,
            attempts: 3,
        })
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &Url,
    ) -> Result<reqwest::Response, UpstreamFailure> {
        let mut last = None;
        for attempt in 0..self.attempts {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 * 4u64.pow(attempt - 1))).await;
            }
            let Some(request) = request.try_clone() else {
                break;
            };
            match request.send().await {
                Ok(response) if response.status().is_server_error() => {
                    last = Some(UpstreamFailure::Status {
                        url: redacted(url),
                        status: response.status().as_u16(),
                    });
                }
                Ok(response) => return Ok(response),
                Err(error) => {
                    last = Some(UpstreamFailure::Unreachable {
                        url: redacted(url),
                        why: explain(error),
                    })
                }
            }
        }
        Err(last.unwrap_or(UpstreamFailure::Unreachable {
            url: redacted(url),
            why: "no attempt was made".to_owned(),
        }))
    }

    /// Fetches a project page from `index` (a simple index URL ending in `/`), revalidating with
    /// `etag` when one is known.
    pub async fn project_page(
        &self,
        index: &Url,
        project: &str,
        etag: Option<&str>,
    ) -> Result<Fetched, UpstreamFailure> {
        let url =
            index
                .join(&format!("{project}/"))
                .map_err(|error| UpstreamFailure::Malformed {
                    url: redacted(index),
                    why: error.to_string(),
                })?;
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"));
        if let Some(etag) = etag.and_then(|etag| HeaderValue::from_str(etag).ok()) {
            headers.insert(IF_NONE_MATCH, etag);
        }
        let response = self
            .send(self.client.get(url.clone()).headers(headers), &url)
            .await?;
        match response.status() {
            StatusCode::NOT_MODIFIED => return Ok(Fetched::NotModified),
            StatusCode::NOT_FOUND | StatusCode::GONE => return Ok(Fetched::Missing),
            status if !status.is_success() => {
                return Err(UpstreamFailure::Status {
                    url: redacted(&url),
                    status: status.as_u16(),
                })
            }
            _ => {}
        }
        let final_url = response.url().clone();
        let etag = response
            .headers()
            .get(ETAG)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let body = read_limited(response, &url, MAX_PAGE_BYTES).await?;
        let malformed = |error: pypi::IndexError| UpstreamFailure::Malformed {
            url: redacted(&url),
            why: error.to_string(),
        };
        let page = if content_type.contains("json") {
            pypi::parse_json(&body, &final_url).map_err(malformed)?
        } else {
            let text =
                String::from_utf8(body.to_vec()).map_err(|_| UpstreamFailure::Malformed {
                    url: redacted(&url),
                    why: "the HTML is not UTF-8".to_owned(),
                })?;
            pypi::parse_html(&text, &final_url, project).map_err(malformed)?
        };
        Ok(Fetched::Page { page, etag })
    }

    /// Fetches a document of at most `limit` bytes, revalidating with `etag` when one is known.
    pub async fn document(
        &self,
        url: &Url,
        etag: Option<&str>,
        limit: usize,
    ) -> Result<Document, UpstreamFailure> {
        let mut request = self.client.get(url.clone()).header(ACCEPT, "*/*");
        if let Some(etag) = etag.and_then(|etag| HeaderValue::from_str(etag).ok()) {
            request = request.header(IF_NONE_MATCH, etag);
        }
        let response = self.send(request, url).await?;
        match response.status() {
            StatusCode::NOT_MODIFIED => Ok(Document::NotModified),
            StatusCode::NOT_FOUND | StatusCode::GONE => Ok(Document::Missing),
            status if !status.is_success() => Err(UpstreamFailure::Status {
                url: redacted(url),
                status: status.as_u16(),
            }),
            _ => {
                let etag = response
                    .headers()
                    .get(ETAG)
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned);
                let bytes = read_limited(response, url, limit).await?;
                Ok(Document::Body { bytes, etag })
            }
        }
    }

    /// Starts downloading a file; the body arrives as a stream.
    pub async fn file(
        &self,
        url: &Url,
    ) -> Result<impl Stream<Item = Result<Bytes, reqwest::Error>> + Unpin + use<>, UpstreamFailure>
    {
        let response = self
            .send(self.client.get(url.clone()).header(ACCEPT, "*/*"), url)
            .await?;
        if !response.status().is_success() {
            return Err(UpstreamFailure::Status {
                url: redacted(url),
                status: response.status().as_u16(),
            });
        }
        Ok(response.bytes_stream())
    }
}

async fn read_limited(
    response: reqwest::Response,
    url: &Url,
    limit: usize,
) -> Result<Bytes, UpstreamFailure> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|error| UpstreamFailure::Unreachable {
            url: redacted(url),
            why: explain(error),
        })?;
        if body.len() + chunk.len() > limit {
            return Err(UpstreamFailure::Malformed {
                url: redacted(url),
                why: format!("the document is larger than {} MiB", limit / (1024 * 1024)),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}
