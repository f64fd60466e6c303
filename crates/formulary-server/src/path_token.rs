//! A token in the path, as anaconda.org has it for conda and pixi channels:
//! `https://HOST/t/<token>/o/ORG/conda/conda-forge/…`. conda and mamba take the token out of a
//! channel URL and mask it (`/t/<TOKEN>/`) in everything they print, which they do not do for a
//! password in the URL, and they have no netrc of their own on every platform.
//!
//! Before routing, a gateway path under `/t/<token>/` is rewritten to the path without it and
//! the token becomes the request's `Authorization: Bearer` credential (unless it carries one),
//! so the gateway's authentication layer ([`crate::gateway_auth::authenticate`]) checks it like
//! any other, the download ledger names the person, and nothing after this point (the request
//! log included) sees the token. conda and mamba recognise only letters, digits and `-` in such a
//! token, so there the `frm_` prefix is written `frm-`; both spellings are accepted.

use axum::extract::Request;
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderValue, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Put in a request's extensions when its token came in the path: the path prefix as the client
/// wrote it (`/t/frm-…`), for answers whose links must carry it (Scoop manifests, fetched by a
/// client that sends no other credential).
#[derive(Debug, Clone)]
pub(crate) struct PathTokenPrefix(pub(crate) String);

/// The first path segments of gateway routes (view prefixes and ecosystems).
const GATEWAY_ROOTS: [&str; 8] = [
    "o",
    "conda",
    "pypi",
    "cran",
    "npm",
    "tools",
    "python",
    "gateways.json",
];

/// The token and the gateway path without it, for `/t/<token>/<gateway path>`.
fn split(path: &str) -> Option<(String, &str)> {
    let after = path.strip_prefix("/t/")?;
    let (token, rest) = after.split_once('/')?;
    let first = rest.split('/').next().unwrap_or_default();
    if token.is_empty() || !(GATEWAY_ROOTS.contains(&first) || first.starts_with('@')) {
        return None;
    }
    let token = match token.strip_prefix("frm-") {
        Some(secret) => format!("frm_{secret}"),
        None => token.to_owned(),
    };
    // `rest` with its leading slash.
    Some((token, &path[path.len() - rest.len() - 1..]))
}

/// The middleware: rewrites `/t/<token>/…` gateway paths before routing, and answers 404 for
/// any other path under `/t/` itself, so that it is never logged.
pub(crate) async fn token_in_path(mut request: Request, next: Next) -> Response {
    if !request.uri().path().starts_with("/t/") {
        return next.run(request).await;
    }
    let path = request.uri().path();
    let rewritten = split(path).and_then(|(token, rest)| {
        let prefix = path[..path.len() - rest.len()].to_owned();
        let target = match request.uri().query() {
            Some(query) => format!("{rest}?{query}"),
            None => rest.to_owned(),
        };
        Some((token, prefix, target.parse::<Uri>().ok()?))
    });
    let Some((token, prefix, uri)) = rewritten else {
        return ApiError::not_found(
            "a token in the path (/t/TOKEN/…) opens only the package gateway, such as /t/TOKEN/o/ORG/conda/CHANNEL/",
        )
        .into_response();
    };
    // Nothing further down sees the path with the token, not even as the original address.
    request
        .extensions_mut()
        .insert(axum::extract::OriginalUri(uri.clone()));
    *request.uri_mut() = uri;
    request.extensions_mut().insert(PathTokenPrefix(prefix));
    if !request.headers().contains_key(AUTHORIZATION) {
        // A token that is not a valid header value is refused as no credential at all.
        let value = HeaderValue::from_str(&format!("Bearer {token}"))
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer invalid"));
        request.headers_mut().insert(AUTHORIZATION, value);
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_paths_lose_the_token_and_others_are_left_alone() {
        assert_eq!(
            split("/t/frm-abc123/o/RJ1/conda/conda-forge/noarch/repodata.json"),
            Some((
                "frm_abc123".to_owned(),
                "/o/RJ1/conda/conda-forge/noarch/repodata.json"
            ))
        );
        assert_eq!(
            split("/t/frm_abc/conda/conda-forge/linux-64/x.conda"),
            Some(("frm_abc".to_owned(), "/conda/conda-forge/linux-64/x.conda"))
        );
        assert_eq!(
            split("/t/frm-abc/@2026-01-02/pypi/simple/"),
            Some(("frm_abc".to_owned(), "/@2026-01-02/pypi/simple/"))
        );
        // Not the gateway: the API and pages never take a token from the path.
        assert_eq!(split("/t/frm-abc/api/v1/me"), None);
        assert_eq!(split("/t/frm-abc/account"), None);
        assert_eq!(split("/t//conda/x"), None);
        assert_eq!(split("/conda/conda-forge/noarch/repodata.json"), None);
        assert_eq!(split("/t/frm-abc"), None);
    }
}
