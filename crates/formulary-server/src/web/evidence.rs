//! The "What the upstream says" section of the component and request pages: the evidence the
//! gateway gathered on demand (`crate::evidence`), how current it is, the dependencies and
//! their closure, every version upstream lists, and the advisory history.

use formulary_core::ecosystems::Ecosystem;
use maud::{html, Markup};

use super::catalogue::url_component;
use crate::evidence::{EvidenceAnswer, EvidenceState};

/// How many versions the section lists before "and N more".
const VERSIONS_LISTED: usize = 60;

fn component_link(ecosystem: Ecosystem, name: &str) -> String {
    format!("/components/{}/{}", ecosystem.as_str(), url_component(name))
}

/// The section, with its own `h2`.
pub(crate) fn section(answer: &EvidenceAnswer) -> Markup {
    let row = |key: &str, value: Markup| {
        html! {
            div.nhsuk-summary-list__row { dt.nhsuk-summary-list__key { (key) } dd.nhsuk-summary-list__value { (value) } }
        }
    };
    html! {
        section #upstream-evidence aria-labelledby="upstream-evidence-heading" {
            h2.nhsuk-heading-m #upstream-evidence-heading { "What the upstream says" }
            @match answer.state {
                EvidenceState::Fresh => p #upstream-evidence-state { (answer.message) },
                _ => div.nhsuk-inset-text #upstream-evidence-state {
                    span.nhsuk-u-visually-hidden { "Information: " }
                    p { (answer.message) }
                },
            }
            @if let Some(evidence) = &answer.evidence {
                @let ecosystem = evidence.component.ecosystem();
                @let yanked = evidence.versions.iter().filter(|version| version.yanked.is_some()).count();
                @let required: Vec<_> = evidence.dependencies.iter().filter(|dependency| dependency.condition.is_none()).collect();
                dl.nhsuk-summary-list #upstream-evidence-facts {
                    @if let Some(summary) = &evidence.summary { (row("Summary", html! { (summary) })) }
                    (row("Newest version", html! { @if let Some(newest) = &evidence.newest { (newest) } @else { "None that installs" } }))
                    (row("Licence declared", html! { @if let Some(licence) = &evidence.licence { (licence) } @else { "None declared" } }))
                    (row("Project links", html! {
                        @if evidence.links.is_empty() { "None given" }
                        @else { ul.nhsuk-list { @for link in &evidence.links { li { (link.label) ": " a href=(link.url) rel="nofollow noreferrer" { (link.url) } } } } }
                    }))
                    (row("Maintainers", html! {
                        @if evidence.maintainers.is_empty() { "None named" }
                        @else { ul.nhsuk-list { @for who in &evidence.maintainers { li { (who) } } } }
                    }))
                    (row("Dependencies", html! {
                        (required.len()) " needed by the newest version"
                        @if evidence.dependencies.len() > required.len() { " (and " (evidence.dependencies.len() - required.len()) " optional or conditional)" }
                        br;
                        @match &answer.closure {
                            Some(closure) => {
                                (closure.size) @if !closure.complete { " or more" } @if closure.size == 1 { " package" } @else { " packages" } " in all, counting what they need in turn"
                                @if closure.admitted_in_view > 0 { "; " (closure.admitted_in_view) " admitted as its dependencies for " (answer.organisation) }
                            }
                            None => { "The whole dependency tree is still being worked out; reload in a few seconds." }
                        }
                    }))
                    (row("Versions upstream", html! {
                        (evidence.versions.len()) " listed"
                        @if yanked > 0 { ", " (yanked) " of them yanked or deprecated by the publisher" }
                    }))
                    (row("Advisories", html! {
                        @if answer.advisories.is_empty() { "None known to Formulary" }
                        @else {
                            ul.nhsuk-list {
                                @for advisory in &answer.advisories {
                                    li {
                                        a href={ "https://osv.dev/vulnerability/" (advisory.id) } { (advisory.id) }
                                        " (" (advisory.severity.as_deref().unwrap_or("unrated")) @if advisory.malicious { ", malicious package" } ")"
                                        @if let Some(published) = advisory.published { ", published " (published.format("%-d %b %Y")) }
                                        @if let Some(withdrawn) = advisory.withdrawn { ", withdrawn " (withdrawn.format("%-d %b %Y")) }
                                        ": " (advisory.summary)
                                    }
                                }
                            }
                        }
                    }))
                }
                @if !evidence.dependencies.is_empty() {
                    details.nhsuk-details #upstream-dependencies {
                        summary.nhsuk-details__summary { span.nhsuk-details__summary-text { "What " (evidence.newest.as_deref().unwrap_or("it")) " needs" } }
                        div.nhsuk-details__text {
                            table.nhsuk-table {
                                caption.nhsuk-table__caption.nhsuk-u-visually-hidden { "Dependencies of the newest version" }
                                thead.nhsuk-table__head { tr { th scope="col" { "Package" } th scope="col" { "Versions accepted" } th scope="col" { "When" } th scope="col" { "Declared in" } } }
                                tbody.nhsuk-table__body {
                                    @for dependency in &evidence.dependencies {
                                        tr.nhsuk-table__row {
                                            td.nhsuk-table__cell {
                                                @if dependency.purl.starts_with("pkg:generic/") { (dependency.name) }
                                                @else { a href=(component_link(ecosystem, &dependency.name)) { (dependency.name) } }
                                            }
                                            td.nhsuk-table__cell { code { (dependency.requirement) } }
                                            td.nhsuk-table__cell { @if let Some(condition) = &dependency.condition { (condition) } @else { "Always" } }
                                            td.nhsuk-table__cell { (dependency.kind) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                @if !evidence.versions.is_empty() {
                    details.nhsuk-details #upstream-versions {
                        summary.nhsuk-details__summary { span.nhsuk-details__summary-text { "Every version upstream lists" } }
                        div.nhsuk-details__text {
                            table.nhsuk-table {
                                caption.nhsuk-table__caption.nhsuk-u-visually-hidden { "Versions upstream, newest first" }
                                thead.nhsuk-table__head { tr { th scope="col" { "Version" } th scope="col" { "Published" } th scope="col" { "Note" } } }
                                tbody.nhsuk-table__body {
                                    @for version in evidence.versions.iter().take(VERSIONS_LISTED) {
                                        tr.nhsuk-table__row {
                                            td.nhsuk-table__cell { (version.version) }
                                            td.nhsuk-table__cell {
                                                @if let Some(published) = version.published { (published.format("%-d %b %Y")) } @else { "Not given" }
                                            }
                                            td.nhsuk-table__cell {
                                                @if let Some(reason) = &version.yanked { "Yanked by the publisher" @if !reason.is_empty() { ": " (reason) } }
                                                @else if version.archived { "Archived" }
                                            }
                                        }
                                    }
                                }
                            }
                            @if evidence.versions.len() > VERSIONS_LISTED { p { "And " (evidence.versions.len() - VERSIONS_LISTED) " older versions." } }
                        }
                    }
                }
                @if !evidence.gaps.is_empty() {
                    ul #upstream-evidence-gaps { @for gap in &evidence.gaps { li { "Not known: " (gap) } } }
                }
                p.nhsuk-body-s { "Source: " code { (evidence.upstream) } }
            }
        }
    }
}
