use std::sync::Arc;

use chrono::{Duration, NaiveDate};
use formulary_ecosystems::Version;

use super::admission::Admission;
use super::decision::{Decision, Effect, Reason, ReasonCode};
use super::release::Release;
use super::repackaged::Repackaged;
use super::snapshot::{PolicySnapshot, View};
use crate::advisory::Advisory;
use crate::component::Component;
use crate::entry::{Entry, Status, Waiver};
use crate::licence::LicenceCheck;
use crate::organisation::OrgCode;
use crate::settings::{EcosystemSettings, Stance};

/// Decides every release of a component in one view. Releases are judged together because the
/// security fast lane of the cooldown compares a release with the older ones.
pub fn evaluate_releases(
    snapshot: &PolicySnapshot,
    view: &View,
    component: &Component,
    releases: &[Release],
) -> Vec<Decision> {
    let context = Context::new(snapshot, view, component);
    let assessments: Vec<Assessment> = releases
        .iter()
        .map(|release| context.assess(release))
        .collect();
    releases
        .iter()
        .zip(&assessments)
        .map(|(release, assessment)| {
            let mut reasons = assessment.reasons.clone();
            if let Some(cooldown) = &assessment.cooldown {
                reasons.push(context.cooldown_outcome(
                    release,
                    assessment,
                    cooldown,
                    releases,
                    &assessments,
                ));
            }
            if let Some(yank) = &release.yanked {
                reasons.push(note(
                    ReasonCode::Yanked,
                    if yank.trim().is_empty() {
                        "yanked by its publisher: installers skip it unless it is pinned exactly"
                            .to_owned()
                    } else {
                        format!("yanked by its publisher: {}", yank.trim())
                    },
                ));
            }
            Decision {
                component: component.clone(),
                version: release.version.to_string(),
                allowed: reasons.iter().all(|reason| reason.effect != Effect::Deny),
                yanked: release.yanked.clone(),
                reasons,
            }
        })
        .collect()
}

/// Decides one version. `known_releases` gives the evidence for it and for older versions (used
/// by the security fast lane); the version need not be among them.
pub fn evaluate_version(
    snapshot: &PolicySnapshot,
    view: &View,
    component: &Component,
    version: &Version,
    known_releases: &[Release],
) -> Decision {
    let mut releases = known_releases.to_vec();
    let position = match releases
        .iter()
        .position(|release| &release.version == version)
    {
        Some(position) => position,
        None => {
            releases.push(Release::bare(version.clone()));
            releases.len() - 1
        }
    };
    evaluate_releases(snapshot, view, component, &releases).swap_remove(position)
}

/// What the rules before the cooldown found about one release.
struct Assessment {
    reasons: Vec<Reason>,
    /// Denied by a prohibition, the formulary or the licence: not "otherwise allowed".
    denied_by_other_rules: bool,
    /// Advisories that deny this release.
    denying_advisories: Vec<Arc<Advisory>>,
    /// Set when the release is inside the cooldown: how many days old it is.
    cooldown: Option<CooldownFacts>,
}

struct CooldownFacts {
    published: NaiveDate,
    age_days: i64,
    /// The date is when Formulary first saw the version, not the upstream's.
    first_sight: bool,
}

impl CooldownFacts {
    /// "published N day(s) ago", or "first seen N day(s) ago" where the upstream gives no date.
    fn age(&self) -> String {
        if self.first_sight {
            format!(
                "first seen by Formulary {} day(s) ago (the upstream gives no publication date)",
                self.age_days
            )
        } else {
            format!("published {} day(s) ago", self.age_days)
        }
    }
}

struct Context<'a> {
    view: &'a View,
    component: &'a Component,
    settings: EcosystemSettings,
    today: NaiveDate,
    organisation_entries: Vec<&'a Entry>,
    national_entries: Vec<&'a Entry>,
    advisories: &'a [Arc<Advisory>],
    /// For a conda package, the PyPI or CRAN component it repackages and its advisories.
    repackaged: Option<Repackaged<'a>>,
    snapshot: &'a PolicySnapshot,
    feed: Option<super::feed::AdvisoryFeed>,
    feed_policy: super::feed::FeedPolicy,
}

impl<'a> Context<'a> {
    fn new(snapshot: &'a PolicySnapshot, view: &'a View, component: &'a Component) -> Context<'a> {
        let entries = snapshot.entries_for(component);
        let of = |code: &OrgCode| -> Vec<&'a Entry> {
            entries
                .iter()
                .map(Arc::as_ref)
                .filter(|entry| &entry.draft.organisation == code)
                .collect()
        };
        let national_entries = of(&OrgCode::national());
        let organisation_entries = if view.organisation.is_national() {
            Vec::new()
        } else {
            of(&view.organisation)
        };
        Context {
            view,
            component,
            settings: snapshot.settings_for(&view.organisation, component.ecosystem()),
            today: view.at.date_naive(),
            organisation_entries,
            national_entries,
            advisories: snapshot.advisories_for(component),
            repackaged: Repackaged::of(snapshot, component),
            snapshot,
            feed: snapshot.advisory_feed(),
            feed_policy: snapshot.feed_policy_for(&view.organisation),
        }
    }

    fn formulary_name(&self, code: &OrgCode) -> String {
        if code.is_national() {
            "the national formulary".to_owned()
        } else {
            format!("{code}'s formulary")
        }
    }

    fn component_link(&self) -> String {
        format!(
            "/components/{}/{}",
            self.component.ecosystem(),
            self.component.name
        )
    }

    fn request_link(&self) -> String {
        format!("/requests/new?component={}", self.component.purl())
    }

    fn assess(&self, release: &Release) -> Assessment {
        let version = &release.version;
        let covering = |entries: &[&'a Entry]| -> Vec<&'a Entry> {
            entries
                .iter()
                .copied()
                .filter(|entry| entry.draft.range.contains(version))
                .collect()
        };
        let organisation_cover = covering(&self.organisation_entries);
        let national_cover = covering(&self.national_entries);
        let mut reasons = Vec::new();

        let prohibited =
            self.apply_prohibitions(&organisation_cover, &national_cover, &mut reasons);
        let outside_formulary = if prohibited {
            false
        } else {
            self.apply_formulary(version, &organisation_cover, &national_cover, &mut reasons)
        };
        let all_cover: Vec<&Entry> = organisation_cover
            .iter()
            .chain(&national_cover)
            .copied()
            .collect();
        let denying_advisories = self.apply_advisories(version, &all_cover, &mut reasons);
        let licence_denied = self.apply_licence(release, &mut reasons);
        let scripts_denied = super::install_scripts::apply(
            self.settings.install_scripts,
            release,
            &mut reasons,
            self.request_link(),
        );
        let cooldown = self.cooldown_facts(release, &mut reasons);
        let feed_held = self.apply_feed(release, &mut reasons);

        Assessment {
            reasons,
            denied_by_other_rules: prohibited
                || outside_formulary
                || licence_denied
                || scripts_denied
                || feed_held,
            denying_advisories,
            cooldown,
        }
    }

    /// Rule 1. Returns true when a prohibition denies the version.
    fn apply_prohibitions(
        &self,
        organisation_cover: &[&Entry],
        national_cover: &[&Entry],
        reasons: &mut Vec<Reason>,
    ) -> bool {
        let mut denied = false;
        for entry in organisation_cover
            .iter()
            .filter(|entry| entry.draft.status == Status::Prohibited)
        {
            denied = true;
            reasons.push(self.entry_reason(
                ReasonCode::Prohibited,
                Effect::Deny,
                entry,
                "prohibited by",
            ));
        }
        let national_prohibitions: Vec<&&Entry> = national_cover
            .iter()
            .filter(|entry| entry.draft.status == Status::Prohibited)
            .collect();
        if national_prohibitions.is_empty() {
            return denied;
        }
        let exception = organisation_cover.iter().find(|entry| {
            entry.draft.status.admits()
                && entry.is_in_force_on(self.today)
                && entry.draft.waives.contains(&Waiver::NationalProhibition)
        });
        match exception {
            Some(exception) => reasons.push(Reason {
                code: ReasonCode::ProhibitionWaived,
                effect: Effect::Note,
                message: format!(
                    "nationally prohibited, but {} has an exception until {} (entry {}): {}",
                    self.view.organisation,
                    exception
                        .draft
                        .expires
                        .map_or_else(String::new, |day| day.to_string()),
                    exception.id,
                    exception.draft.reason
                ),
                advisory: None,
                link: Some(self.component_link()),
            }),
            None => {
                denied = true;
                for entry in national_prohibitions {
                    reasons.push(self.entry_reason(
                        ReasonCode::Prohibited,
                        Effect::Deny,
                        entry,
                        "prohibited by",
                    ));
                }
                if let Some(loosening) = organisation_cover
                    .iter()
                    .find(|entry| entry.draft.status.admits())
                {
                    reasons.push(Reason {
                        code: ReasonCode::OverlayCannotLoosen,
                        effect: Effect::Note,
                        message: format!(
                            "{}'s entry {} allows this version, but an organisation cannot loosen a national prohibition except by an expiring exception signed off by its risk owner",
                            self.view.organisation, loosening.id
                        ),
                        advisory: None,
                        link: Some(self.component_link()),
                    });
                }
            }
        }
        denied
    }

    /// Rule 2. Returns true when the curated stance denies the version.
    fn apply_formulary(
        &self,
        version: &Version,
        organisation_cover: &[&'a Entry],
        national_cover: &[&'a Entry],
        reasons: &mut Vec<Reason>,
    ) -> bool {
        let not_prohibited = |entries: &[&'a Entry]| -> Vec<&'a Entry> {
            entries
                .iter()
                .copied()
                .filter(|entry| entry.draft.status != Status::Prohibited)
                .collect()
        };
        // The organisation's own entries, where it has any for this version, override the national ones.
        let organisation_layer = not_prohibited(organisation_cover);
        let layer = if organisation_layer.is_empty() {
            not_prohibited(national_cover)
        } else {
            organisation_layer
        };
        let in_force = |entry: &&&Entry| entry.is_in_force_on(self.today);
        let best = layer
            .iter()
            .filter(|entry| entry.draft.status.admits())
            .filter(in_force)
            .min_by_key(|entry| admitting_rank(entry.draft.status));
        if let Some(entry) = best {
            let (code, lead) = if entry.draft.status == Status::Divest {
                (
                    ReasonCode::Divest,
                    "allowed but marked divest (not for new use; plan a move) by",
                )
            } else {
                (ReasonCode::InFormulary, "approved by")
            };
            reasons.push(self.entry_reason(code, Effect::Allow, entry, lead));
            // A divest decision must stay visible even when a broader approval also covers the version.
            let other_divests = layer
                .iter()
                .filter(|other| other.draft.status == Status::Divest && other.id != entry.id)
                .filter(in_force);
            for divest in other_divests {
                reasons.push(self.entry_reason(
                    ReasonCode::Divest,
                    Effect::Note,
                    divest,
                    "marked divest (not for new use; plan a move) by",
                ));
            }
            return false;
        }
        let curated = self.settings.stance == Stance::Curated;
        let effect = if curated { Effect::Deny } else { Effect::Note };
        let expired_pilot = layer
            .iter()
            .find(|entry| entry.draft.status == Status::Pilot && !in_force(entry));
        let under_review = layer
            .iter()
            .find(|entry| entry.draft.status == Status::UnderReview);
        if let Some(pilot) = expired_pilot {
            reasons.push(self.entry_reason(
                ReasonCode::PilotExpired,
                effect,
                pilot,
                "the pilot has ended under",
            ));
        } else if let Some(review) = under_review {
            reasons.push(self.entry_reason(
                ReasonCode::UnderReview,
                effect,
                review,
                "under review (not yet approved) in",
            ));
        } else if let Some(admission) = self.admission(version).filter(|_| curated) {
            reasons.push(Reason {
                code: ReasonCode::DependencyOf,
                effect: Effect::Allow,
                message: format!(
                    "admitted as {}: {} is curated, and an approved package brings what it needs to install",
                    admission.describe(),
                    self.formulary_name(&self.view.organisation)
                ),
                advisory: None,
                link: Some(format!(
                    "/components/{}/{}",
                    admission.root.ecosystem(),
                    admission.root.name
                )),
            });
            return false;
        } else if curated {
            reasons.push(Reason {
                code: ReasonCode::NotInFormulary,
                effect: Effect::Deny,
                message: format!(
                    "{} is not in {}: this {} view is curated and serves only approved versions. Request it to start a review",
                    self.component.name,
                    self.formulary_name(&self.view.organisation),
                    self.component.ecosystem()
                ),
                advisory: None,
                link: Some(self.request_link()),
            });
        }
        curated
    }

    /// The dependency admission that admits this version in this view, if any: worked out for
    /// the view's organisation or the national view, covering the version, and whose approving
    /// entry is still in force for the view (so it lapses with the approval).
    fn admission(&self, version: &Version) -> Option<&'a Admission> {
        self.snapshot
            .admissions_for(self.component)
            .iter()
            .map(Arc::as_ref)
            .filter(|admission| {
                admission.organisation.is_national()
                    || admission.organisation == self.view.organisation
            })
            .filter(|admission| admission.range.contains(version))
            .find(|admission| {
                self.snapshot
                    .entries_for(&admission.root)
                    .iter()
                    .any(|entry| {
                        entry.id == admission.entry_id
                            && entry.draft.status.admits()
                            && entry.is_in_force_on(self.today)
                            && (entry.draft.organisation.is_national()
                                || entry.draft.organisation == self.view.organisation)
                    })
            })
    }

    /// True when `advisory` affects `version`, directly or through the component a conda
    /// package repackages.
    fn affected_by(&self, advisory: &Advisory, version: &Version) -> bool {
        advisory.affects(self.component, version)
            || self
                .repackaged
                .as_ref()
                .is_some_and(|repackaged| repackaged.affects(advisory, version))
    }

    /// The advisories that affect `version`, each with the component its fixed versions are
    /// read for and how it reaches this component ("" directly, else " via PyPI package …").
    fn affecting(&self, version: &Version) -> Vec<(&'a Arc<Advisory>, &Component, &str)> {
        let mut found: Vec<(&'a Arc<Advisory>, &Component, &str)> = self
            .advisories
            .iter()
            .filter(|advisory| advisory.affects(self.component, version))
            .map(|advisory| (advisory, self.component, ""))
            .collect();
        if let Some(repackaged) = &self.repackaged {
            found.extend(
                repackaged
                    .advisories
                    .iter()
                    .filter(|advisory| repackaged.affects(advisory, version))
                    .map(|advisory| (advisory, &repackaged.upstream, repackaged.via.as_str())),
            );
        }
        found
    }

    /// Rule 3. Returns the advisories that deny the version.
    fn apply_advisories(
        &self,
        version: &Version,
        cover: &[&Entry],
        reasons: &mut Vec<Reason>,
    ) -> Vec<Arc<Advisory>> {
        let mut denying = Vec::new();
        for (advisory, fixes_of, via) in self.affecting(version) {
            let severity = advisory.effective_severity();
            let rating = match (advisory.severity, advisory.cvss_score) {
                (_, Some(score)) => format!("{severity}, CVSS {score:.1}"),
                (Some(_), None) => severity.to_string(),
                (None, None) => "unrated, counted as high".to_owned(),
            };
            let fixes = advisory.fixed_versions(fixes_of);
            let next_step = if fixes.is_empty() {
                "no fixed version is known; choose another component or ask for an exception"
                    .to_owned()
            } else {
                format!("fixed in {}; use that or newer", fixes.join(", "))
            };
            let summary = if advisory.summary.is_empty() {
                String::new()
            } else {
                format!(": {}", advisory.summary)
            };
            let advisory_reason = |code, effect, message: String| Reason {
                code,
                effect,
                message,
                advisory: Some(advisory.id.clone()),
                link: Some(advisory.link()),
            };
            if advisory.malicious {
                reasons.push(advisory_reason(
                    ReasonCode::Malicious,
                    Effect::Deny,
                    format!("reported as a malicious package by {}{via}{summary}. Do not install it; remove it where it is installed", advisory.id),
                ));
                denying.push(Arc::clone(advisory));
                continue;
            }
            if severity < self.settings.severity_threshold {
                reasons.push(advisory_reason(
                    ReasonCode::AdvisoryBelowThreshold,
                    Effect::Note,
                    format!("affected by {}{via} ({rating}){summary}; below this view's {} threshold, so allowed; {next_step}", advisory.id, self.settings.severity_threshold),
                ));
                continue;
            }
            let waiver = cover.iter().find(|entry| {
                entry.draft.status.admits()
                    && entry.is_in_force_on(self.today)
                    && entry.draft.waives.iter().any(
                        |waiver| matches!(waiver, Waiver::Advisory(id) if advisory.is_known_as(id)),
                    )
            });
            match waiver {
                Some(entry) => reasons.push(advisory_reason(
                    ReasonCode::AdvisoryWaived,
                    Effect::Note,
                    format!(
                        "affected by {}{via} ({rating}), accepted by an exception until {} (entry {}): {}",
                        advisory.id,
                        entry.draft.expires.map_or_else(String::new, |day| day.to_string()),
                        entry.id,
                        entry.draft.reason
                    ),
                )),
                None => {
                    reasons.push(advisory_reason(
                        ReasonCode::Advisory,
                        Effect::Deny,
                        format!("affected by {}{via} ({rating}){summary}; {next_step}", advisory.id),
                    ));
                    denying.push(Arc::clone(advisory));
                }
            }
        }
        denying
    }

    /// Rule 4. Returns true when the licence denies the version.
    fn apply_licence(&self, release: &Release, reasons: &mut Vec<Reason>) -> bool {
        let allowed = &self.settings.allowed_licences;
        match LicenceCheck::evaluate(release.licence.as_deref(), allowed) {
            LicenceCheck::Allowed => false,
            LicenceCheck::NotAllowed { expression } => {
                reasons.push(Reason {
                    code: ReasonCode::LicenceNotAllowed,
                    effect: Effect::Deny,
                    message: format!(
                        "its licence ({expression}) is not among those this view allows ({}); ask for a licence review through a request",
                        allowed.join(", ")
                    ),
                    advisory: None,
                    link: Some(self.request_link()),
                });
                true
            }
            LicenceCheck::Unknown | LicenceCheck::Unrecognised { .. } => {
                reasons.push(note(
                    ReasonCode::LicenceUnknown,
                    format!(
                        "its licence is {}, so the allowed-licence rule could not be checked; check it before wide use",
                        release.licence.as_deref().map_or_else(|| "not declared".to_owned(), |text| format!("'{}', not an SPDX expression", crate::error::printable(text)))
                    ),
                ));
                false
            }
        }
    }

    /// Rule 7: a stale advisory feed. Returns true when it holds the release back.
    fn apply_feed(&self, release: &Release, reasons: &mut Vec<Reason>) -> bool {
        let Some(feed) = &self.feed else {
            return false;
        };
        match super::feed::stale_feed_reason(feed, &self.feed_policy, self.view.at, release) {
            Some(reason) => {
                let held = reason.effect == Effect::Deny;
                reasons.push(reason);
                held
            }
            None => false,
        }
    }

    /// Rule 5, first half: finds whether the release is inside the cooldown.
    fn cooldown_facts(
        &self,
        release: &Release,
        reasons: &mut Vec<Reason>,
    ) -> Option<CooldownFacts> {
        if self.settings.cooldown_days == 0 {
            return None;
        }
        let Some(published) = release.published else {
            reasons.push(note(
                ReasonCode::ReleaseDateUnknown,
                "its publication date is unknown, so the cooldown was not applied".to_owned(),
            ));
            return None;
        };
        let age = self.view.at.signed_duration_since(published);
        (age < Duration::days(i64::from(self.settings.cooldown_days))).then(|| CooldownFacts {
            published: published.date_naive(),
            age_days: age.num_days().max(0),
            first_sight: release.dated_by_first_sight,
        })
    }

    /// Rule 5, second half: a release inside the cooldown is denied unless it fixes an advisory
    /// that affects the newest release otherwise allowed.
    fn cooldown_outcome(
        &self,
        release: &Release,
        assessment: &Assessment,
        facts: &CooldownFacts,
        releases: &[Release],
        assessments: &[Assessment],
    ) -> Reason {
        let available_on = facts.published + Duration::days(i64::from(self.settings.cooldown_days));
        let eligible =
            !assessment.denied_by_other_rules && assessment.denying_advisories.is_empty();
        let newest_otherwise_allowed = releases
            .iter()
            .zip(assessments)
            .filter(|(other, other_assessment)| {
                other.version < release.version
                    && !other_assessment.denied_by_other_rules
                    && other_assessment.cooldown.is_none()
                    && (release.version.is_prerelease() || !other.version.is_prerelease())
            })
            .max_by(|(left, _), (right, _)| left.version.cmp(&right.version));
        let fixed_advisory = newest_otherwise_allowed.and_then(|(newest, newest_assessment)| {
            newest_assessment
                .denying_advisories
                .iter()
                .find(|advisory| !self.affected_by(advisory, &release.version))
                .map(|advisory| (newest, advisory))
        });
        match fixed_advisory.filter(|_| eligible) {
            Some((newest, advisory)) => Reason {
                code: ReasonCode::SecurityFastLane,
                effect: Effect::Allow,
                message: format!(
                    "{}, inside the {}-day cooldown, but let through at once because it fixes {}, which affects {}, the newest version otherwise allowed",
                    facts.age(), self.settings.cooldown_days, advisory.id, newest.version
                ),
                advisory: Some(advisory.id.clone()),
                link: Some(advisory.link()),
            },
            None => Reason {
                code: ReasonCode::Cooldown,
                effect: Effect::Deny,
                message: format!(
                    "{} (on {}); this view holds new releases for {} days so that broken or malicious releases are caught first. It becomes available on {available_on}; until then use an older version",
                    facts.age(), facts.published, self.settings.cooldown_days
                ),
                advisory: None,
                link: Some(self.component_link()),
            },
        }
    }

    fn entry_reason(&self, code: ReasonCode, effect: Effect, entry: &Entry, lead: &str) -> Reason {
        let draft = &entry.draft;
        let mut message = format!(
            "{lead} {} (entry {}, versions {}): {}",
            self.formulary_name(&draft.organisation),
            entry.id,
            draft.range,
            draft.reason
        );
        if let Some(constraints) = draft.constraints.as_deref().filter(|text| !text.is_empty()) {
            message.push_str(&format!("; constraints: {constraints}"));
        }
        if let (Status::Pilot, Some(expires)) = (draft.status, draft.expires) {
            message.push_str(&format!("; pilot until {expires}"));
        }
        Reason {
            code,
            effect,
            message,
            advisory: None,
            link: Some(
                if effect == Effect::Deny && code != ReasonCode::Prohibited {
                    self.request_link()
                } else {
                    self.component_link()
                },
            ),
        }
    }
}

/// Which admitting entry explains an allowance best: a plain approval first, divest last.
fn admitting_rank(status: Status) -> u8 {
    match status {
        Status::Approved => 0,
        Status::ApprovedWithConstraints => 1,
        Status::Pilot => 2,
        Status::Divest => 3,
        Status::UnderReview | Status::Prohibited => 4,
    }
}

fn note(code: ReasonCode, message: String) -> Reason {
    Reason {
        code,
        effect: Effect::Note,
        message,
        advisory: None,
        link: None,
    }
}
