//! Who is told what when a request moves: the requester hears about questions, sign-offs and
//! the decision; reviewers and approvers about work waiting for them. Notices are written to the
//! store (shown in the app, and emailed by the outbox in [`crate::mail`]); a failure to write
//! them is logged and never undoes the action that caused them.

use formulary_store::{NewNotification, StoredRequest};

use crate::identity::Principal;
use crate::state::AppState;

/// What happened to a request.
#[derive(Debug, Clone)]
pub enum RequestNotice {
    /// It was filed and waits for review.
    Submitted,
    /// Someone wrote in its thread.
    Commented {
        /// What they wrote.
        body: String,
    },
    /// A review stage was signed off.
    SignedOff {
        /// The stage.
        stage: String,
        /// `passed` or `concerns`.
        verdict: String,
    },
    /// It was decided.
    Decided,
}

/// At most this many characters of a comment are quoted in a notice.
const QUOTE_CHARS: usize = 300;

fn quote(text: &str) -> String {
    let mut quoted: String = text.chars().take(QUOTE_CHARS).collect();
    if text.chars().count() > QUOTE_CHARS {
        quoted.push('…');
    }
    quoted
}

/// Writes the notices a change to `request` made by `by` calls for.
pub async fn request_changed(
    state: &AppState,
    request: &StoredRequest,
    by: &Principal,
    notice: RequestNotice,
) {
    let link = state
        .public_url
        .join(&format!("requests/{}", request.id))
        .map_or_else(|_| format!("/requests/{}", request.id), String::from);
    let what = format!(
        "request #{} for {} ({})",
        request.id,
        request.draft.component.purl(),
        request.draft.organisation
    );
    let organisation = request.draft.organisation.to_string();
    let requester = request.requester.id.clone();
    let mut notes = Vec::new();
    let to_requester = |kind: &str, subject: String, body: String| NewNotification {
        user_id: requester.clone(),
        kind: kind.to_owned(),
        subject,
        body,
        link: link.clone(),
    };
    let staff = |roles: &'static [&'static str]| async move {
        match state.database.people_with_roles(&organisation, roles).await {
            Ok(people) => people,
            Err(error) => {
                tracing::warn!(%error, "could not find whom to notify");
                Vec::new()
            }
        }
    };
    match notice {
        RequestNotice::Submitted => {
            if request.decided_at.is_none() {
                // Holders of the named review roles hear of the requests whose data needs them.
                let roles: &'static [&'static str] = match request.draft.data_class {
                    formulary_core::request::DataClass::Aggregate => &["reviewer", "approver"],
                    formulary_core::request::DataClass::Personal => {
                        &["reviewer", "approver", "information-governance"]
                    }
                    formulary_core::request::DataClass::Clinical => &[
                        "reviewer",
                        "approver",
                        "information-governance",
                        "clinical-safety-officer",
                    ],
                };
                for person in staff(roles).await {
                    if person != by.id {
                        notes.push(NewNotification {
                            user_id: person,
                            kind: "review.waiting".to_owned(),
                            subject: format!("New {what} waits for review"),
                            body: format!(
                                "{} asked for {} ({}). Review it, ask the requester a question or sign off a stage at the link.",
                                by.name,
                                request.draft.component.purl(),
                                quote(&request.draft.problem)
                            ),
                            link: link.clone(),
                        });
                    }
                }
            }
        }
        RequestNotice::Commented { body } => {
            if by.id != requester {
                notes.push(to_requester(
                    "request.question",
                    format!("{} wrote on your {what}", by.name),
                    format!(
                        "{} wrote: \"{}\". Answer in the request's thread at the link; the review waits for you.",
                        by.name,
                        quote(&body)
                    ),
                ));
            } else {
                for person in staff(&["reviewer"]).await {
                    notes.push(NewNotification {
                        user_id: person,
                        kind: "request.reply".to_owned(),
                        subject: format!("The requester answered on {what}"),
                        body: format!("{} wrote: \"{}\".", by.name, quote(&body)),
                        link: link.clone(),
                    });
                }
            }
        }
        RequestNotice::SignedOff { stage, verdict } => {
            notes.push(to_requester(
                "request.sign-off",
                format!("The {stage} review of your {what}: {verdict}"),
                format!(
                    "{} signed off the {stage} stage as {verdict}. You will hear when the request is decided.",
                    by.name
                ),
            ));
            for person in staff(&["approver"]).await {
                if person != by.id {
                    notes.push(NewNotification {
                        user_id: person,
                        kind: "decision.waiting".to_owned(),
                        subject: format!("{what}: {stage} stage signed off"),
                        body: format!(
                            "{} signed off the {stage} stage as {verdict}. When every stage you need is signed off, decide it at the link.",
                            by.name
                        ),
                        link: link.clone(),
                    });
                }
            }
        }
        RequestNotice::Decided => {
            if let Some(decision) = &request.decision {
                notes.push(to_requester(
                    "request.decided",
                    format!("Your {what} was decided: {}", request.state.as_str()),
                    format!(
                        "{} decided: {}. Reason: {}. The decision is published in the decision log.",
                        decision.by,
                        request.state.as_str(),
                        quote(&decision.reason)
                    ),
                ));
            }
        }
    }
    notes.retain(|note| note.user_id != by.id || matches!(note.kind.as_str(), "request.decided"));
    if notes.is_empty() {
        return;
    }
    if let Err(error) = state.database.notify(&notes).await {
        tracing::warn!(%error, request = request.id, "could not record notifications");
    }
}
