//! The front door: the checks and headers every request and answer of the application passes
//! through, in one middleware rather than one layer each (every `from_fn` layer boxes the inner
//! service and its future on every request, which small answers feel). In order:
//!
//! 1. answer protection ([`crate::web::AnswerProtection`]): `Cache-Control: no-store, private`
//!    on personal answers, HSTS under `https`, the peer address for handlers;
//! 2. problem+json for framework errors under `/api/` ([`crate::api::problems::as_problem`]);
//! 3. NUL refusal in query strings and JSON/form bodies ([`crate::text_guard::admit`]);
//!
//! then the router. A refusal from a later step still passes the earlier steps on its way out,
//! as it did when they were separate layers.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;
use crate::web::AnswerProtection;

/// The middleware over the whole router (see [`crate::router::app`]).
pub(crate) async fn front_door(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let protection = AnswerProtection::before(&mut request);
    let is_api = crate::api::problems::applies_to(&request);
    let mut response = match crate::text_guard::admit(request).await {
        Ok(request) => next.run(request).await,
        Err(refusal) => refusal,
    };
    if is_api {
        response = crate::api::problems::as_problem(response).await;
    }
    protection.after(&state, &mut response);
    response
}
