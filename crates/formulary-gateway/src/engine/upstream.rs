use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use formulary_ecosystems::pypi::{self, ProjectPage, MAX_PAGE_BYTES};
use futures::{Stream, StreamExt};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use reqwest::StatusCode;
use thiserror::Error;
use tokio::time::Instant;
use url::Url;

use crate::engine::health::{AfterFailure, Health, UpstreamStatus, PROBE_AT_MOST, PROBE_FIRST};

/// How long one request to an upstream may take. The whole budget fits inside the clients'
/// patience (pip gives up after 15 s of silence), so a client that waits for an upstream gets
/// an answer from Formulary (a 504 naming the upstream) rather than its own timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// To open the connection.
    pub connect: Duration,
    /// From sending the request to the end of the answer's headers; also the longest silence
    /// while a file's body arrives.
    pub first_byte: Duration,
    /// For a whole index document, every retry included.
    pub whole: Duration,
}

impl Budget {
    /// A budget of `whole` for a document: 3 s (at most) to connect, the rest for the answer.
    pub fn within(whole: Duration) -> Budget {
        let whole = whole.max(Duration::from_millis(100));
        Budget {
            connect: whole.min(Duration::from_secs(3)),
            first_byte: whole,
            whole,
        }
    }
}

/// How a gateway treats its upstreams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamOptions {
    /// How long one request to an upstream may take.
    pub budget: Budget,
    /// How long a request that has a cached copy waits for the upstream before it is served
    /// the cached copy (marked stale) while the refresh goes on behind it.
    pub patience: Duration,
    /// How long a cached index document is used before it is revalidated.
    pub revalidate_after: Duration,
}

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
    /// No answer within the request's budget.
    #[error("{url} did not answer in time: {why}")]
    TimedOut {
        /// What was asked (credentials removed).
        url: String,
        /// Which part of the budget ran out.
        why: String,
    },
    /// The upstream failed repeatedly and is not asked until a background probe sees it answer.
    #[error("{url} is down (it failed {failures} times in a row, the first at {since}; last error: {last_error}); Formulary probes it in the background and asks it again once it answers")]
    Down {
        /// What would have been asked.
        url: String,
        /// When it went down (RFC 3339).
        since: String,
        /// Failures in a row.
        failures: u32,
        /// How it last failed.
        last_error: String,
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

impl UpstreamFailure {
    /// True when the upstream did not answer, or answered in time only to say it is broken
    /// (what the circuit breaker counts); false for a document that is merely malformed.
    pub fn is_outage(&self) -> bool {
        match self {
            UpstreamFailure::Unreachable { .. }
            | UpstreamFailure::TimedOut { .. }
            | UpstreamFailure::Down { .. } => true,
            UpstreamFailure::Status { status, .. } => *status >= 500,
            UpstreamFailure::Malformed { .. } => false,
        }
    }
}

/// A client for PEP 503/691 indexes: a time budget per request, retries with backoff within it,
/// a circuit breaker per upstream server, same-host redirects only, size limits.
#[derive(Debug, Clone)]
pub struct UpstreamClient {
    client: reqwest::Client,
    attempts: u32,
    budget: Budget,
    health: Arc<Health>,
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
    /// A client whose requests keep to `budget`.
    pub fn new(budget: Budget) -> Result<UpstreamClient, reqwest::Error> {
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
            .connect_timeout(budget.connect)
            .read_timeout(budget.first_byte)
            .redirect(redirects)
            .build()?;
        Ok(UpstreamClient {
            client,
            attempts: 3,
            budget,
            health: Arc::default(),
        })
    }

    /// The budget of each request.
    pub fn budget(&self) -> Budget {
        self.budget
    }

    /// The state of every upstream server this client has asked.
    pub fn health(&self) -> Vec<UpstreamStatus> {
        self.health.statuses()
    }

    /// Counts a failure against the upstream serving `url`, and starts the background probe
    /// when that takes it down.
    fn count_failure(&self, url: &Url, failure: &UpstreamFailure) {
        if !failure.is_outage() || matches!(failure, UpstreamFailure::Down { .. }) {
            return;
        }
        if self.health.failed(url, &failure.to_string()) == AfterFailure::StartProbe {
            let (client, health, url, budget) = (
                self.client.clone(),
                Arc::clone(&self.health),
                url.clone(),
                self.budget,
            );
            tokio::spawn(async move {
                let mut wait = PROBE_FIRST;
                loop {
                    tokio::time::sleep(wait).await;
                    let probe = client.get(url.clone()).header(ACCEPT, "*/*").send();
                    match tokio::time::timeout(budget.first_byte, probe).await {
                        Ok(Ok(response)) if !response.status().is_server_error() => {
                            health.succeeded(&url);
                            health.probe_ended(&url);
                            return;
                        }
                        Ok(Ok(response)) => {
                            health.failed(
                                &url,
                                &format!("the probe was answered {}", response.status()),
                            );
                        }
                        Ok(Err(error)) => {
                            health.failed(&url, &format!("the probe failed: {}", explain(error)));
                        }
                        Err(_) => {
                            health.failed(
                                &url,
                                &format!(
                                    "the probe had no answer within {} s",
                                    budget.first_byte.as_secs_f32()
                                ),
                            );
                        }
                    }
                    wait = (wait * 2).min(PROBE_AT_MOST);
                }
            });
        }
    }

    /// The failure to give while the upstream serving `url` is down.
    fn refuse_while_down(&self, url: &Url) -> Option<UpstreamFailure> {
        let since: DateTime<Utc> = self.health.down_since(url)?;
        let status = self
            .health
            .statuses()
            .into_iter()
            .find(|status| status.upstream == crate::engine::health::server_of(url));
        Some(UpstreamFailure::Down {
            url: redacted(url),
            since: since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            failures: status
                .as_ref()
                .map_or(0, |status| status.consecutive_failures),
            last_error: status
                .and_then(|status| status.last_error)
                .unwrap_or_default(),
        })
    }

    /// Sends a request and waits for its answer's headers, retrying connection failures and
    /// server errors with backoff while `deadline` allows; an upstream that is down is not asked.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &Url,
        deadline: Instant,
    ) -> Result<reqwest::Response, UpstreamFailure> {
        if let Some(down) = self.refuse_while_down(url) {
            return Err(down);
        }
        let outcome = self.send_within(request, url, deadline).await;
        match &outcome {
            Ok(_) => self.health.succeeded(url),
            Err(failure) => self.count_failure(url, failure),
        }
        outcome
    }

    async fn send_within(
        &self,
        request: reqwest::RequestBuilder,
        url: &Url,
        deadline: Instant,
    ) -> Result<reqwest::Response, UpstreamFailure> {
        let mut last = None;
        for attempt in 0..self.attempts {
            if attempt > 0 {
                let backoff = Duration::from_millis(200 * 4u64.pow(attempt - 1));
                // Another attempt only when it has time to be answered.
                if Instant::now() + backoff + Duration::from_millis(500) >= deadline {
                    break;
                }
                tokio::time::sleep(backoff).await;
            }
            let Some(request) = request.try_clone() else {
                break;
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            let wait = remaining.min(self.budget.first_byte);
            match tokio::time::timeout(wait, request.send()).await {
                Err(_) => {
                    // A hung upstream: waiting again would only repeat this.
                    return Err(UpstreamFailure::TimedOut {
                        url: redacted(url),
                        why: format!(
                            "no answer within {:.1} s of asking (connection accepted or pending, nothing sent back)",
                            wait.as_secs_f32()
                        ),
                    });
                }
                Ok(Ok(response)) if response.status().is_server_error() => {
                    last = Some(UpstreamFailure::Status {
                        url: redacted(url),
                        status: response.status().as_u16(),
                    });
                }
                Ok(Ok(response)) => return Ok(response),
                Ok(Err(error)) if error.is_timeout() => {
                    return Err(UpstreamFailure::TimedOut {
                        url: redacted(url),
                        why: explain(error),
                    });
                }
                Ok(Err(error)) => {
                    last = Some(UpstreamFailure::Unreachable {
                        url: redacted(url),
                        why: explain(error),
                    })
                }
            }
        }
        Err(last.unwrap_or(UpstreamFailure::TimedOut {
            url: redacted(url),
            why: "the request's time budget ran out before an attempt could be made".to_owned(),
        }))
    }

    /// The deadline of a document request starting now.
    fn document_deadline(&self) -> Instant {
        Instant::now() + self.budget.whole
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
        let deadline = self.document_deadline();
        let response = self
            .send(
                self.client.get(url.clone()).headers(headers),
                &url,
                deadline,
            )
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
        let body = self
            .read_limited(response, &url, MAX_PAGE_BYTES, deadline)
            .await?;
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
        match self.start_document(url, etag).await? {
            Started::Answered(document) => Ok(document),
            Started::Body {
                response,
                etag,
                deadline,
            } => {
                let bytes = self.read_limited(response, url, limit, deadline).await?;
                Ok(Document::Body { bytes, etag })
            }
        }
    }

    /// Like [`UpstreamClient::document`], but the body is written to `out` as it arrives
    /// instead of being held in memory (for documents of hundreds of megabytes); the answer's
    /// `bytes` are then empty.
    pub async fn document_to<W: tokio::io::AsyncWrite + Unpin>(
        &self,
        url: &Url,
        etag: Option<&str>,
        limit: usize,
        out: &mut W,
    ) -> Result<Document, UpstreamFailure> {
        match self.start_document(url, etag).await? {
            Started::Answered(document) => Ok(document),
            Started::Body {
                response,
                etag,
                deadline,
            } => {
                self.read_into(response, url, limit, deadline, out).await?;
                Ok(Document::Body {
                    bytes: Bytes::new(),
                    etag,
                })
            }
        }
    }

    /// Sends a document request (revalidating with `etag`): what the status alone answers, or
    /// the response whose body is to be read, with its entity tag and the reading deadline.
    async fn start_document(
        &self,
        url: &Url,
        etag: Option<&str>,
    ) -> Result<Started, UpstreamFailure> {
        let mut request = self.client.get(url.clone()).header(ACCEPT, "*/*");
        if let Some(etag) = etag.and_then(|etag| HeaderValue::from_str(etag).ok()) {
            request = request.header(IF_NONE_MATCH, etag);
        }
        let deadline = self.document_deadline();
        let response = self.send(request, url, deadline).await?;
        match response.status() {
            StatusCode::NOT_MODIFIED => Ok(Started::Answered(Document::NotModified)),
            StatusCode::NOT_FOUND | StatusCode::GONE => Ok(Started::Answered(Document::Missing)),
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
                Ok(Started::Body {
                    response,
                    etag,
                    deadline,
                })
            }
        }
    }

    /// Starts downloading a file: its length when the upstream gives one, and the body as a
    /// stream. The answer's headers must come within the budget; the body may take as long as it
    /// needs, but no read may wait longer than the first-byte budget.
    pub async fn file(
        &self,
        url: &Url,
    ) -> Result<
        (
            Option<u64>,
            impl Stream<Item = Result<Bytes, reqwest::Error>> + Unpin + use<>,
        ),
        UpstreamFailure,
    > {
        let deadline = self.document_deadline();
        let response = self
            .send(
                self.client.get(url.clone()).header(ACCEPT, "*/*"),
                url,
                deadline,
            )
            .await?;
        if !response.status().is_success() {
            return Err(UpstreamFailure::Status {
                url: redacted(url),
                status: response.status().as_u16(),
            });
        }
        Ok((response.content_length(), response.bytes_stream()))
    }

    /// Reads a whole document of at most `limit` bytes by `deadline`.
    async fn read_limited(
        &self,
        response: reqwest::Response,
        url: &Url,
        limit: usize,
        deadline: Instant,
    ) -> Result<Bytes, UpstreamFailure> {
        let mut body = Vec::new();
        self.read_into(response, url, limit, deadline, &mut body)
            .await?;
        Ok(Bytes::from(body))
    }

    /// Writes a document's body to `out` as it arrives (at most `limit` bytes, within the
    /// budget), returning its length.
    async fn read_into<W: tokio::io::AsyncWrite + Unpin>(
        &self,
        response: reqwest::Response,
        url: &Url,
        limit: usize,
        deadline: Instant,
        out: &mut W,
    ) -> Result<u64, UpstreamFailure> {
        use tokio::io::AsyncWriteExt;
        let read = async {
            let mut length = 0u64;
            let mut stream = response.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|error| {
                    if error.is_timeout() {
                        UpstreamFailure::TimedOut {
                            url: redacted(url),
                            why: format!("the document stopped arriving: {}", explain(error)),
                        }
                    } else {
                        UpstreamFailure::Unreachable {
                            url: redacted(url),
                            why: explain(error),
                        }
                    }
                })?;
                if length + chunk.len() as u64 > limit as u64 {
                    return Err(UpstreamFailure::Malformed {
                        url: redacted(url),
                        why: format!("the document is larger than {} MiB", limit / (1024 * 1024)),
                    });
                }
                length += chunk.len() as u64;
                out.write_all(&chunk)
                    .await
                    .map_err(|error| UpstreamFailure::Unreachable {
                        url: redacted(url),
                        why: format!("the document could not be written to local disk: {error}"),
                    })?;
            }
            out.flush()
                .await
                .map_err(|error| UpstreamFailure::Unreachable {
                    url: redacted(url),
                    why: format!("the document could not be written to local disk: {error}"),
                })?;
            Ok(length)
        };
        let outcome = match tokio::time::timeout_at(deadline, read).await {
            Ok(outcome) => outcome,
            Err(_) => Err(UpstreamFailure::TimedOut {
                url: redacted(url),
                why: format!(
                    "the whole document did not arrive within the {:.1} s budget",
                    self.budget.whole.as_secs_f32()
                ),
            }),
        };
        if let Err(failure) = &outcome {
            self.count_failure(url, failure);
        }
        outcome
    }
}

/// How a document request began: answered by its status alone, or with a body to read.
enum Started {
    /// Not modified, or missing upstream.
    Answered(Document),
    /// A body to read before `deadline`, with the upstream's entity tag.
    Body {
        response: reqwest::Response,
        etag: Option<String>,
        deadline: Instant,
    },
}
