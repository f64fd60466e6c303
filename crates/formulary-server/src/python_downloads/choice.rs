//! Which CPython builds the download list names, so that uv picks an allowed build whenever one
//! meets the request, and reaches a refused build (whose file answers 403 with the reason, which
//! uv prints) only when nothing allowed does.
//!
//! uv (`crates/uv-python/src/downloads.rs`, `ManagedPythonDownloadList::find`) sorts the list by
//! version, newest first, and takes the first build that meets the request, looking at stable
//! builds first and at pre-releases only when no stable build meets it; a version with a patch
//! number (`3.12.7`) never matches a pre-release. So a refused build newer than the allowed ones
//! would be chosen by `uv python install 3.12` or `uv python install` (no version) in their
//! place. This module simulates that choice, per platform, for every kind of request a person
//! makes (no version, `3`, `3.12`, `3.12.7`) and names a refused build only where it changes no
//! answer that an allowed build gives:
//! - as itself, when no request an allowed build meets would pick it (an older patch of an
//!   allowed minor, or an older minor than every allowed one): then `uv python install 3.12.1`
//!   or `uv python install 3.10` reach its refusal;
//! - else, for a minor with no allowed build, as a pre-release of itself (`3.14.2rc0`): uv
//!   considers it only when no stable build meets the request, so `uv python install 3.14`
//!   reaches the refusal while `uv python install` still gets the newest allowed build;
//! - else not at all (a refused newer patch of an allowed minor: `uv python install 3.12`
//!   must get the allowed one, and a request with the patch cannot match a pre-release).

use std::cmp::Ordering;

/// A CPython version as uv compares them: `(major, minor, patch)` and an optional pre-release
/// (`a`, `b`, `rc` and its number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct PythonVersion {
    /// The major version (3).
    pub major: u8,
    /// The minor version.
    pub minor: u8,
    /// The patch version.
    pub patch: u8,
    /// The pre-release: kind (0 `a`, 1 `b`, 2 `rc`) and number; `None` for a release.
    pub pre: Option<(u8, u32)>,
}

impl PythonVersion {
    /// `3.11.2`, `3.14.0rc1`; anything else (`3.14`, `3.11.2dev`) is `None`.
    pub(crate) fn parse(version: &str) -> Option<PythonVersion> {
        let mut parts = version.splitn(3, '.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let rest = parts.next()?;
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let patch = rest[..digits].parse().ok()?;
        let suffix = &rest[digits..];
        if suffix.is_empty() {
            return Some(PythonVersion {
                major,
                minor,
                patch,
                pre: None,
            });
        }
        let (kind, number) = [("rc", 2), ("a", 0), ("b", 1)]
            .into_iter()
            .find_map(|(label, kind)| suffix.strip_prefix(label).map(|number| (kind, number)))?;
        if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        Some(PythonVersion {
            major,
            minor,
            patch,
            pre: Some((kind, number.parse().ok()?)),
        })
    }

    /// The pre-release as uv's list writes it (`""`, `"rc1"`).
    pub(crate) fn prerelease(&self) -> String {
        match self.pre {
            None => String::new(),
            Some((kind, number)) => {
                format!("{}{number}", ["a", "b", "rc"][usize::from(kind.min(2))])
            }
        }
    }

    /// This version as a pre-release of itself (`3.14.2` → `3.14.2rc0`).
    fn as_prerelease(self) -> PythonVersion {
        PythonVersion {
            pre: Some((2, 0)),
            ..self
        }
    }

    fn rank(&self) -> (u8, u8, u8, u8, u32) {
        let (kind, number) = self.pre.unwrap_or((3, 0));
        (self.major, self.minor, self.patch, kind, number)
    }
}

impl Ord for PythonVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank().cmp(&other.rank())
    }
}

impl PartialOrd for PythonVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A request a person makes of uv, as far as the version goes.
#[derive(Debug, Clone, Copy)]
enum Request {
    /// `uv python install` (newest stable).
    Newest,
    /// `uv python install 3`.
    Major(u8),
    /// `uv python install 3.12`.
    Minor(u8, u8),
    /// `uv python install 3.12.7` (stable only).
    Exact(u8, u8, u8),
}

impl Request {
    fn meets(self, version: &PythonVersion) -> bool {
        match self {
            Request::Newest => true,
            Request::Major(major) => version.major == major,
            Request::Minor(major, minor) => (version.major, version.minor) == (major, minor),
            Request::Exact(major, minor, patch) => {
                (version.major, version.minor, version.patch) == (major, minor, patch)
                    && version.pre.is_none()
            }
        }
    }
}

/// What uv picks from `listed` (version as listed, allowed) for a request: the newest stable
/// build that meets it, else the newest pre-release that does.
fn pick(listed: &[(PythonVersion, bool)], request: Request) -> Option<(PythonVersion, bool)> {
    let meeting = || listed.iter().filter(|(version, _)| request.meets(version));
    meeting()
        .filter(|(version, _)| version.pre.is_none())
        .max_by_key(|(version, _)| *version)
        .or_else(|| meeting().max_by_key(|(version, _)| *version))
        .copied()
}

/// How a build is named in the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listing {
    /// Under its own version.
    AsItself,
    /// As a pre-release of itself (`rc0`), reached only when no stable build meets a request.
    AsPrerelease,
    /// Not named.
    Left,
}

/// For builds of one platform (version, allowed), how each is named in the list (same order).
pub(crate) fn choose(builds: &[(PythonVersion, bool)]) -> Vec<(Listing, PythonVersion)> {
    let allowed: Vec<(PythonVersion, bool)> = builds
        .iter()
        .filter(|(_, allowed)| *allowed)
        .copied()
        .collect();
    let mut requests = vec![Request::Newest];
    for (version, _) in builds {
        requests.push(Request::Major(version.major));
        requests.push(Request::Minor(version.major, version.minor));
        requests.push(Request::Exact(version.major, version.minor, version.patch));
    }
    // Every request an allowed build meets must still get an allowed build.
    let keeps_allowed = |listed: &[(PythonVersion, bool)]| {
        requests.iter().all(|request| {
            pick(&allowed, *request).is_none()
                || pick(listed, *request).is_some_and(|(_, allowed)| allowed)
        })
    };
    let answered = |listed: &[(PythonVersion, bool)]| {
        requests
            .iter()
            .filter(|request| pick(listed, **request).is_some())
            .count()
    };
    let mut listed = allowed.clone();
    let mut choices: Vec<(Listing, PythonVersion)> = builds
        .iter()
        .map(|(version, allowed)| {
            let listing = if *allowed {
                Listing::AsItself
            } else {
                Listing::Left
            };
            (listing, *version)
        })
        .collect();
    // Refused builds, newest first: the newest of a minor is the one a request reaches.
    let mut refused: Vec<usize> = (0..builds.len()).filter(|&i| !builds[i].1).collect();
    refused.sort_by(|a, b| builds[*b].0.cmp(&builds[*a].0));
    for index in refused {
        let version = builds[index].0;
        let before = answered(&listed);
        let mut trial = listed.clone();
        trial.push((version, false));
        if keeps_allowed(&trial) {
            listed = trial;
            choices[index] = (Listing::AsItself, version);
            continue;
        }
        if version.pre.is_some() {
            continue;
        }
        let mut trial = listed.clone();
        trial.push((version.as_prerelease(), false));
        if keeps_allowed(&trial) && answered(&trial) > before {
            listed = trial;
            choices[index] = (Listing::AsPrerelease, version.as_prerelease());
        }
    }
    choices
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> PythonVersion {
        PythonVersion::parse(text).expect(text)
    }

    fn listing(builds: &[(&str, bool)]) -> Vec<(Listing, String)> {
        let builds: Vec<(PythonVersion, bool)> = builds
            .iter()
            .map(|(version, allowed)| (v(version), *allowed))
            .collect();
        choose(&builds)
            .into_iter()
            .map(|(listing, version)| {
                (
                    listing,
                    format!(
                        "{}.{}.{}{}",
                        version.major,
                        version.minor,
                        version.patch,
                        version.prerelease()
                    ),
                )
            })
            .collect()
    }

    #[test]
    fn versions_parse_and_order_as_uv_orders_them() {
        assert!(v("3.14.0rc1") < v("3.14.0"));
        assert!(v("3.14.0a9") < v("3.14.0b1"));
        assert!(v("3.13.9") < v("3.14.0a1"));
        assert_eq!(v("3.14.0rc1").prerelease(), "rc1");
        for bad in ["3.14", "3.11.2dev", "3.11.2rc", "x.1.2", "3.11.2c1"] {
            assert!(PythonVersion::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn an_older_refused_patch_or_minor_is_named_as_itself() {
        assert_eq!(
            listing(&[("3.12.7", true), ("3.12.1", false), ("3.10.4", false)]),
            vec![
                (Listing::AsItself, "3.12.7".to_owned()),
                (Listing::AsItself, "3.12.1".to_owned()),
                (Listing::AsItself, "3.10.4".to_owned()),
            ]
        );
    }

    #[test]
    fn a_refused_newer_minor_is_a_prerelease_so_no_version_still_gets_an_allowed_build() {
        assert_eq!(
            listing(&[("3.12.7", true), ("3.14.2", false), ("3.14.1", false)]),
            vec![
                (Listing::AsItself, "3.12.7".to_owned()),
                (Listing::AsPrerelease, "3.14.2rc0".to_owned()),
                (Listing::Left, "3.14.1".to_owned()),
            ]
        );
    }

    #[test]
    fn a_refused_newer_patch_of_an_allowed_minor_is_left_out() {
        assert_eq!(
            listing(&[("3.12.7", true), ("3.12.8", false)]),
            vec![
                (Listing::AsItself, "3.12.7".to_owned()),
                (Listing::Left, "3.12.8".to_owned()),
            ]
        );
    }

    #[test]
    fn with_nothing_allowed_every_refused_build_is_named_as_itself() {
        assert_eq!(
            listing(&[("3.12.7", false), ("3.13.0", false)]),
            vec![
                (Listing::AsItself, "3.12.7".to_owned()),
                (Listing::AsItself, "3.13.0".to_owned()),
            ]
        );
    }

    #[test]
    fn an_allowed_prerelease_is_not_hidden_by_a_refused_stable_build() {
        // Only a pre-release is allowed: a refused stable 3.13 would be picked by a request
        // with no version before it, so it becomes a pre-release that sorts below 3.14.0b1.
        let chosen = listing(&[("3.14.0b1", true), ("3.13.2", false)]);
        assert_eq!(chosen[0], (Listing::AsItself, "3.14.0b1".to_owned()));
        assert_ne!(chosen[1].0, Listing::AsItself);
    }
}
