//! conda channels: package names, versions and ranges (conda's own rules, from
//! `rattler_conda_types`, never hand-written), and the `repodata.json` document of a channel's
//! subdirectory, read and written back with only policy's changes ([`repodata`]). Parsing and
//! rendering only; no policy and no I/O.

mod repodata;
mod shards;

use rattler_conda_types::{ParseStrictness, VersionSpec};

pub use repodata::{
    is_package_filename, is_subdir, Record, RecordFacts, RecordStore, RepoData, RepoDataError,
    MAX_REPODATA_BYTES,
};
pub use shards::{encode_index, encode_shard, hex_of, EncodedShard, ShardError};

/// Checks a conda package name (`rattler_conda_types::PackageName`: ASCII letters, digits, `-`,
/// `_` and `.`) and returns it normalised (lower case), as conda compares names.
pub fn check_name(name: &str) -> Result<String, &'static str> {
    rattler_conda_types::PackageName::try_from(name)
        .map(|name| name.as_normalized().to_owned())
        .map_err(|_| "conda names hold only ASCII letters, digits, '-', '_' and '.'")
}

/// Parses a conda version (`1.26.4`, `2024.1.post1`, `1!2.0`, `1.0rc1`).
pub fn parse_version(text: &str) -> Result<rattler_conda_types::Version, crate::EcosystemError> {
    let trimmed = text.trim();
    if trimmed.len() > 128 {
        return Err(crate::EcosystemError::InvalidVersion {
            ecosystem: "conda",
            version: crate::error::printable(text),
            why: "it is longer than 128 characters".to_owned(),
        });
    }
    trimmed
        .parse::<rattler_conda_types::Version>()
        .map_err(|error| crate::EcosystemError::InvalidVersion {
            ecosystem: "conda",
            version: crate::error::printable(text),
            why: format!("{error} (conda versions look like 1.26.4, 2024.1 or 1.0rc1)"),
        })
}

/// Parses a conda version specification as match specs write it (`>=1.21,<2`, `1.26.*`,
/// `>=1.0|<0.5`), strictly, as for newly written specifications.
pub fn parse_range(text: &str) -> Result<VersionSpec, String> {
    VersionSpec::from_str(text, ParseStrictness::Strict).map_err(|error| {
        format!("{error}; write a conda version specification such as '>=1.21,<2' or '1.26.*'")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Ecosystem, Version, VersionRange};

    fn covers(range: &str, version: &str) -> bool {
        VersionRange::parse(Ecosystem::Conda, range)
            .expect(range)
            .contains(&Version::parse(Ecosystem::Conda, version).expect(version))
    }

    #[test]
    fn names_are_lowercased_and_checked() {
        assert_eq!(check_name("PyYAML"), Ok("pyyaml".to_owned()));
        assert_eq!(check_name("r-base"), Ok("r-base".to_owned()));
        assert!(check_name("no/slash").is_err());
        assert!(check_name("spa ce").is_err());
    }

    #[test]
    fn versions_order_by_conda_rules() {
        let parse = |text: &str| Version::parse(Ecosystem::Conda, text).expect(text);
        assert!(parse("1.0rc1") < parse("1.0"));
        assert!(parse("1.10") > parse("1.9"));
        assert!(parse("1!0.1") > parse("2024.1"));
        assert!(parse("1.0.post1") > parse("1.0"));
        assert!(Version::parse(Ecosystem::Conda, "1..0@").is_err());
    }

    #[test]
    fn ranges_use_conda_version_specs() {
        assert!(covers(">=1.21,<2", "1.26.4"));
        assert!(!covers(">=1.21,<2", "2.0"));
        assert!(covers("1.26.*", "1.26.4"));
        assert!(covers(">=3|<1", "0.5"));
        assert!(covers("==4.3.2", "4.3.2"));
        let error = VersionRange::parse(Ecosystem::Conda, ">=>1").unwrap_err();
        assert!(
            error.to_string().contains("conda version specification"),
            "{error}"
        );
    }
}
