//! Recalls opened by the advisory sync: when a new or changed advisory denies versions that
//! people already have (downloaded through the gateway or reported in an environment), in the
//! view of their organisation, a recall lists them with the version to move to; each is told
//! in-app (their open recalls, `GET /api/v1/me/recalls`, and a notice) and by email
//! ([`tell`]), and every configured webhook receives the recall as signed JSON ([`announce`]).

use chrono::Utc;
use formulary_core::advisory::Advisory;
use formulary_core::ecosystems::Version;
use formulary_core::policy::{evaluate_releases, evaluate_version, PolicySnapshot, View};
use formulary_core::{Component, OrgCode};
use formulary_store::{Database, Holder, NewRecall, RecallChange};
use hmac::Mac as _;

/// The audit actor of recalls the system opens.
pub const RECALL_ACTOR: &str = "system:recalls";

/// Where recalls are announced.
#[derive(Debug, Clone, Default)]
pub struct Webhooks {
    /// URLs that receive each opened or extended recall.
    pub urls: Vec<String>,
    /// The shared secret the body is signed with (HMAC-SHA256), if set.
    pub secret: Option<String>,
}

/// Whom to tell of a recall and how: the webhooks, and the public address that links in
/// notices and emails are built from.
#[derive(Debug, Clone)]
pub struct Announcer {
    /// The webhooks.
    pub webhooks: Webhooks,
    /// `public_url`.
    pub public_url: url::Url,
}

impl Announcer {
    /// Tells the people newly on the recall `change` names (a notice each, emailed when they
    /// have an address and want email) and every webhook, when the recall is new or has new
    /// people. Failures are logged; the recall stands.
    pub async fn recall_changed(&self, database: &Database, change: &RecallChange) {
        if !change.opened && change.new_people == 0 {
            return;
        }
        tell(database, &self.public_url, change).await;
        announce(database, &self.webhooks, &change.id).await;
    }
}

/// Opens or extends the recalls the changed advisories call for; returns what changed.
pub async fn after_advisories(
    database: &Database,
    snapshot: &PolicySnapshot,
    advisories: &[Advisory],
    announcer: &Announcer,
) -> anyhow::Result<Vec<RecallChange>> {
    let mut changes = Vec::new();
    let now = Utc::now();
    // A first sync changes every advisory: look for holders only of components somebody has.
    let held = database.held_components().await?;
    for advisory in advisories
        .iter()
        .filter(|advisory| !advisory.is_withdrawn())
    {
        let mut components: Vec<&Component> = advisory
            .components()
            .filter(|component| {
                held.contains(&(
                    component.ecosystem().as_str().to_owned(),
                    component.name.as_str().to_owned(),
                ))
            })
            .collect();
        components.sort();
        components.dedup();
        for component in components {
            let holders = database.who_has(component, None).await?;
            let releases = database.releases_of(component).await?;
            let recalled: Vec<Holder> = holders
                .into_iter()
                .filter(|holder| {
                    let Ok(version) = Version::parse(component.ecosystem(), &holder.version) else {
                        return false;
                    };
                    let Ok(organisation) = holder.organisation.parse::<OrgCode>() else {
                        return false;
                    };
                    if !advisory.affects(component, &version) {
                        return false;
                    }
                    let view = View {
                        organisation,
                        at: now,
                    };
                    evaluate_version(snapshot, &view, component, &version, &releases)
                        .denials()
                        .any(|reason| reason.advisory.as_deref() == Some(advisory.id.as_str()))
                })
                .collect();
            if recalled.is_empty() {
                continue;
            }
            let mut versions: Vec<String> = recalled
                .iter()
                .map(|holder| holder.version.clone())
                .collect();
            versions.sort();
            versions.dedup();
            let move_to = newest_allowed(snapshot, component, &releases);
            let severity = if advisory.malicious {
                "malicious".to_owned()
            } else {
                advisory.effective_severity().as_str().to_owned()
            };
            let recall = NewRecall {
                cause: "advisory".to_owned(),
                cause_key: advisory.id.clone(),
                advisory_id: Some(advisory.id.clone()),
                component: component.clone(),
                versions,
                reason: format!(
                    "{} ({severity}): {}",
                    advisory.id,
                    if advisory.summary.is_empty() {
                        "see the advisory"
                    } else {
                        advisory.summary.as_str()
                    }
                ),
                move_to,
                severity: Some(severity),
                holders: recalled,
            };
            let change = database.open_recall(&recall, RECALL_ACTOR).await?;
            if change.opened || change.new_people > 0 {
                tracing::info!(recall = %change.id, component = %component.purl(), advisory = %advisory.id, new_people = change.new_people, "recall opened or extended");
            }
            announcer.recall_changed(database, &change).await;
            changes.push(change);
        }
    }
    Ok(changes)
}

/// The newest version the national view allows, among the releases Formulary knows.
pub fn newest_allowed(
    snapshot: &PolicySnapshot,
    component: &Component,
    releases: &[formulary_core::policy::Release],
) -> Option<String> {
    newest_allowed_in(snapshot, &OrgCode::national(), component, releases)
}

/// The newest version `organisation`'s view allows (not yanked, not a pre-release), among the
/// releases Formulary knows.
pub fn newest_allowed_in(
    snapshot: &PolicySnapshot,
    organisation: &OrgCode,
    component: &Component,
    releases: &[formulary_core::policy::Release],
) -> Option<String> {
    let view = View {
        organisation: organisation.clone(),
        at: Utc::now(),
    };
    let decisions = evaluate_releases(snapshot, &view, component, releases);
    releases
        .iter()
        .zip(decisions)
        .filter(|(release, decision)| {
            decision.allowed && release.yanked.is_none() && !release.version.is_prerelease()
        })
        .map(|(release, _)| release.version.to_string())
        .next_back()
}

/// Tells each person newly on a recall what they have, why it is recalled and what to move to:
/// one notice per person (in the app, and queued for email by [`Database::notify`] when they
/// have an address and have not turned email off), linking to the recall page from
/// `public_url`. Holders who are not people with an account (service tokens, anonymous
/// clients) have nobody to tell and are left to the webhooks and the recall page.
pub async fn tell(database: &Database, public_url: &url::Url, change: &RecallChange) {
    if change.added.is_empty() {
        return;
    }
    let recall = match database.recall(&change.id).await {
        Ok(Some((summary, _))) => summary,
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(%error, recall = %change.id, "could not read the recall to tell its people");
            return;
        }
    };
    let mut holdings: std::collections::BTreeMap<&str, Vec<&Holder>> = Default::default();
    for holder in &change.added {
        if let Some(username) = holder.person.strip_prefix("user:") {
            holdings.entry(username).or_default().push(holder);
        }
    }
    let link = public_url
        .join(&format!("recalls/{}", recall.id))
        .map_or_else(|_| format!("/recalls/{}", recall.id), String::from);
    let mut notes = Vec::new();
    for (username, held) in holdings {
        let user = match database.user_by_username(username).await {
            Ok(Some((user, _))) => user,
            Ok(None) => continue,
            Err(error) => {
                tracing::warn!(%error, "could not find whom to tell of a recall");
                continue;
            }
        };
        notes.push(recall_notice(&recall, &user.id, &held, &link));
    }
    if notes.is_empty() {
        return;
    }
    if let Err(error) = database.notify(&notes).await {
        tracing::warn!(%error, recall = %recall.id, "could not record the recall's notices");
    }
}

/// One person's notice of a recall: what they have and where, why, what to move to, and how to
/// leave the recall.
pub fn recall_notice(
    recall: &formulary_store::RecallSummary,
    user_id: &str,
    held: &[&Holder],
    link: &str,
) -> formulary_store::NewNotification {
    let mut versions: Vec<&str> = held.iter().map(|holder| holder.version.as_str()).collect();
    versions.sort_unstable();
    versions.dedup();
    let places: Vec<String> = held
        .iter()
        .map(|holder| match &holder.environment {
            Some(environment) => format!(
                "{} in the environment '{environment}' ({}) you reported",
                holder.version, holder.organisation
            ),
            None => format!(
                "{} downloaded through the {} gateway",
                holder.version, holder.organisation
            ),
        })
        .collect();
    let move_to = match &recall.move_to {
        Some(version) => format!("Move to {version}, the newest version allowed."),
        None => {
            "No allowed version is known yet: ask for an alternative with a request.".to_owned()
        }
    };
    formulary_store::NewNotification {
        user_id: user_id.to_owned(),
        kind: "recall".to_owned(),
        subject: format!(
            "Recall: move off {} {}",
            recall.component,
            versions.join(", ")
        ),
        body: format!(
            "You have {} {}. It is recalled: {}. {move_to} Once a download through the gateway or a new report of the environment shows another version, you leave the recall. If you must stay on it, say why and until when on the recall page at the link (or POST /api/v1/me/recalls/{}/explain), so that you are no longer counted as exposed.",
            recall.component,
            places.join("; "),
            recall.reason.trim_end_matches('.'),
            recall.id,
        ),
        link: link.to_owned(),
    }
}

/// Sends the recall to every webhook: `POST` JSON, signed in `X-Formulary-Signature:
/// sha256=<hex HMAC-SHA256 of the body>` when a secret is set. Failures are logged; the recall
/// stands either way.
pub async fn announce(database: &Database, webhooks: &Webhooks, recall_id: &str) {
    if webhooks.urls.is_empty() {
        return;
    }
    let recall = match database.recall(recall_id).await {
        Ok(Some((summary, people))) => serde_json::json!({
            "event": "recall", "recall": summary, "people": people,
        }),
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(%error, "could not read the recall to announce it");
            return;
        }
    };
    let body = recall.to_string();
    let client = match reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::warn!(%error, "could not build the webhook client");
            return;
        }
    };
    for url in &webhooks.urls {
        let mut request = client
            .post(url)
            .header("content-type", "application/json")
            .header("x-formulary-event", "recall");
        if let Some(secret) = &webhooks.secret {
            request = request.header(
                "x-formulary-signature",
                format!("sha256={}", sign(secret, body.as_bytes())),
            );
        }
        match request.body(body.clone()).send().await {
            Ok(response) if response.status().is_success() => {}
            Ok(response) => {
                tracing::warn!(status = %response.status(), "a recall webhook refused the recall")
            }
            Err(error) => tracing::warn!(%error, "a recall webhook could not be reached"),
        }
    }
}

/// The hex HMAC-SHA256 of `body` under `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    #[test]
    fn signatures_match_rfc_4231() {
        // RFC 4231, test case 2.
        assert_eq!(
            super::sign("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
