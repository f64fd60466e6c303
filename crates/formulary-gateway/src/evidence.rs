//! Evidence on demand: what an upstream knows about a component (versions and their dates,
//! yanks, licence, project links, maintainers, dependencies), read from the documents the
//! gateway already caches and revalidates (a PyPI project page and one release's core
//! metadata, CRAN's `PACKAGES`, `archive.rds` and the current tarball's DESCRIPTION, an npm
//! packument), so a reviewer sees it before anyone has installed the package.
//!
//! Each front-end builds an [`Evidence`] from its cached documents (`pypi/evidence.rs`,
//! `cran/evidence.rs`, `npm/evidence.rs`); this module holds the model, the checks applied to
//! what upstreams write (only `http`/`https` links, bounded text), and the walk that counts a
//! component's dependency closure.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use formulary_core::policy::Release;
use formulary_core::Component;
use serde::{Deserialize, Serialize};

use crate::dependencies_closure::Requirements;
use crate::engine::documents::Freshness;
use crate::error::GatewayError;

/// Longest text kept from an upstream for one field (names, summaries, licences).
const MAX_TEXT: usize = 300;
/// Most links, maintainers or dependencies kept.
const MAX_ITEMS: usize = 50;

/// What an upstream says about one component.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Evidence {
    /// The component.
    pub component: Component,
    /// One line about it, as its publisher wrote it.
    pub summary: Option<String>,
    /// The version an unpinned install would pick upstream (newest, not yanked, not a
    /// pre-release unless nothing else exists); the facts below are this version's.
    pub newest: Option<String>,
    /// Its licence as the publisher declared it.
    pub licence: Option<String>,
    /// Project links (home page, source, issues, documentation); `http` and `https` only.
    pub links: Vec<ProjectLink>,
    /// Maintainers and authors, as declared.
    pub maintainers: Vec<String>,
    /// What the newest version needs at install time.
    pub dependencies: Vec<DependencyEvidence>,
    /// Every version the upstream lists, newest first.
    pub versions: Vec<VersionEvidence>,
    /// The upstream the documents came from.
    pub upstream: String,
    /// When the upstream was last asked successfully.
    pub checked_at: DateTime<Utc>,
    /// True when the upstream could not be reached at the last check (this is the cached copy).
    pub stale: bool,
    /// What could not be read, and why.
    pub gaps: Vec<String>,
}

/// A link a publisher gives for the project.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProjectLink {
    /// What it is (`Homepage`, `Source`, `Issues`).
    pub label: String,
    /// Where it points (`http` or `https`).
    pub url: String,
}

/// One dependency of the newest version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DependencyEvidence {
    /// The package needed.
    pub name: String,
    /// Its package URL.
    pub purl: String,
    /// The versions accepted, as written (`*` for any).
    pub requirement: String,
    /// When it applies only somewhere (an environment marker, an extra), as written.
    pub condition: Option<String>,
    /// Where it was declared (`Requires-Dist`, `Imports`, `dependencies`).
    pub kind: String,
}

/// One version an upstream lists.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VersionEvidence {
    /// The version.
    pub version: String,
    /// When it was published, when the upstream says (CRAN's archive: when it was archived).
    pub published: Option<DateTime<Utc>>,
    /// `Some(reason)` when the publisher yanked or deprecated it (the reason may be empty).
    pub yanked: Option<String>,
    /// True for a CRAN version that is in the archive rather than current.
    pub archived: bool,
}

impl Evidence {
    /// Evidence with nothing in it yet, from documents of this freshness.
    pub(crate) fn empty(component: &Component, freshness: &Freshness) -> Evidence {
        Evidence {
            component: component.clone(),
            summary: None,
            newest: None,
            licence: None,
            links: Vec::new(),
            maintainers: Vec::new(),
            dependencies: Vec::new(),
            versions: Vec::new(),
            upstream: without_credentials(freshness.origin.as_str()),
            checked_at: freshness.checked_at,
            stale: freshness.stale,
            gaps: Vec::new(),
        }
    }

    /// Adds a link if it is `http` or `https` and not already there.
    pub(crate) fn add_link(&mut self, label: &str, url: &str) {
        let Ok(parsed) = url::Url::parse(url.trim()) else {
            return;
        };
        if !matches!(parsed.scheme(), "http" | "https") || self.links.len() >= MAX_ITEMS {
            return;
        }
        let url = parsed.to_string();
        if self.links.iter().any(|link| link.url == url) {
            return;
        }
        let label = bounded(label);
        self.links.push(ProjectLink {
            label: if label.is_empty() {
                "Link".to_owned()
            } else {
                label
            },
            url,
        });
    }

    /// Adds a maintainer if not already there.
    pub(crate) fn add_maintainer(&mut self, who: &str) {
        let who = bounded(who);
        if !who.is_empty() && !self.maintainers.contains(&who) && self.maintainers.len() < MAX_ITEMS
        {
            self.maintainers.push(who);
        }
    }

    /// Adds a dependency (bounded in number).
    pub(crate) fn add_dependency(&mut self, dependency: DependencyEvidence) {
        if self.dependencies.len() < MAX_ITEMS * 4 {
            self.dependencies.push(dependency);
        }
    }
}

/// Upstream text made safe to keep: control characters dropped, white space folded, at most
/// [`MAX_TEXT`] characters.
pub(crate) fn bounded(text: &str) -> String {
    let folded: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|character| !character.is_control())
        .collect();
    if folded.chars().count() > MAX_TEXT {
        let mut cut: String = folded.chars().take(MAX_TEXT - 1).collect();
        cut.push('…');
        cut
    } else {
        folded
    }
}

/// An upstream URL without any user name or password in it.
fn without_credentials(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Err(_) => url.to_owned(),
    }
}

/// The release an unpinned install picks: the newest not yanked, not a pre-release unless only
/// pre-releases remain.
pub(crate) fn newest_release(releases: &[Release]) -> Option<&Release> {
    let mut candidates: Vec<&Release> = releases
        .iter()
        .filter(|release| release.yanked.is_none())
        .collect();
    candidates.sort_by(|left, right| right.version.cmp(&left.version));
    candidates
        .iter()
        .find(|release| !release.version.is_prerelease())
        .or_else(|| candidates.first())
        .copied()
}

/// How many components a dependency closure holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClosureSize {
    /// The components reached (not counting the component itself), sorted.
    pub components: Vec<String>,
    /// False when the walk stopped early (too many components, or out of time) or could not
    /// read what some component needs: the closure is then at least this large.
    pub complete: bool,
}

/// Most components a closure walk visits.
const CLOSURE_LIMIT: usize = 300;

/// Counts the components `root` needs, directly or through others: from each component, the
/// version an unpinned install picks upstream ([`newest_release`]) is asked what it needs
/// (environment markers kept, extras followed only where a dependent asks for them). Stops at
/// [`CLOSURE_LIMIT`] components or after `budget`.
pub(crate) async fn closure_size<R: Requirements>(
    source: &R,
    root: &Component,
    budget: Duration,
) -> Result<ClosureSize, GatewayError> {
    let started = Instant::now();
    let mut seen: HashSet<(Component, Vec<String>)> = HashSet::new();
    let mut reached: HashSet<Component> = HashSet::new();
    let mut queue: VecDeque<(Component, Vec<String>)> =
        VecDeque::from([(root.clone(), Vec::new())]);
    let mut complete = true;
    while let Some((component, extras)) = queue.pop_front() {
        if !seen.insert((component.clone(), extras.clone())) {
            continue;
        }
        if reached.len() >= CLOSURE_LIMIT || started.elapsed() > budget {
            complete = false;
            break;
        }
        let releases = source.releases(&component).await?;
        let Some(release) = newest_release(&releases) else {
            if component != *root {
                complete = false;
            }
            continue;
        };
        let Some(requirements) = source.requirements(&component, release, &extras).await? else {
            complete = false;
            continue;
        };
        for requirement in requirements {
            if requirement.component == *root {
                continue;
            }
            reached.insert(requirement.component.clone());
            queue.push_back((requirement.component.clone(), Vec::new()));
            if !requirement.extras.is_empty() {
                let mut extras = requirement.extras.clone();
                extras.sort();
                extras.dedup();
                queue.push_back((requirement.component, extras));
            }
        }
    }
    let mut components: Vec<String> = reached
        .into_iter()
        .map(|component| component.name.to_string())
        .collect();
    components.sort();
    Ok(ClosureSize {
        components,
        complete,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_http_only_and_text_is_bounded() {
        let component =
            Component::new(formulary_core::ecosystems::Ecosystem::Pypi, "demo").expect("a name");
        let freshness = Freshness::new(
            url::Url::parse("https://user:secret@pypi.example/simple/").expect("url"),
            None,
            Utc::now(),
        );
        let mut evidence = Evidence::empty(&component, &freshness);
        assert_eq!(evidence.upstream, "https://pypi.example/simple/");
        evidence.add_link("Home", "javascript:alert(1)");
        evidence.add_link("Data", "data:text/html,<b>x</b>");
        evidence.add_link("Source", "https://github.com/demo/demo");
        evidence.add_link("Again", "https://github.com/demo/demo");
        evidence.add_link("", "http://demo.example/");
        assert_eq!(
            evidence.links,
            [
                ProjectLink {
                    label: "Source".to_owned(),
                    url: "https://github.com/demo/demo".to_owned()
                },
                ProjectLink {
                    label: "Link".to_owned(),
                    url: "http://demo.example/".to_owned()
                }
            ]
        );
        evidence.add_maintainer("  Ada\u{7}  Lovelace\n <ada@example.org> ");
        assert_eq!(evidence.maintainers, ["Ada Lovelace <ada@example.org>"]);
        let long = bounded(&"x".repeat(1000));
        assert_eq!(long.chars().count(), MAX_TEXT);
        assert!(long.ends_with('…'));
    }
}
