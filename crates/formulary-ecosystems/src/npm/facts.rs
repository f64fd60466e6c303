//! The facts record: a packument's [`PackumentFacts`] written on their own, so that the gateway
//! can keep them beside the packument and read them back without the packument. A tarball
//! request needs only these (which file is which version, its digests, what the policy reads);
//! typescript's facts are about a tenth of its 10 MB packument and are read without parsing it.

use serde::{Deserialize, Serialize};

use super::packument::{PackumentError, PackumentFacts, VersionFacts};

/// The record's format. A record of another format is refused, and the gateway reads the
/// packument itself instead (and writes the record again).
const FORMAT: u32 = 1;

#[derive(Serialize)]
struct Written<'a> {
    format: u32,
    versions: &'a [VersionFacts],
}

#[derive(Deserialize)]
struct Read {
    format: u32,
    versions: Vec<VersionFacts>,
}

impl PackumentFacts {
    /// The facts as a record (JSON), for [`PackumentFacts::from_record`].
    pub fn to_record(&self) -> String {
        serde_json::to_string(&Written {
            format: FORMAT,
            versions: &self.versions,
        })
        .expect("facts are strings and numbers, which always serialize")
    }

    /// Reads a record written by [`PackumentFacts::to_record`].
    pub fn from_record(record: &[u8]) -> Result<PackumentFacts, PackumentError> {
        let read: Read = serde_json::from_slice(record)
            .map_err(|error| PackumentError::Record(error.to_string()))?;
        if read.format != FORMAT {
            return Err(PackumentError::Record(format!(
                "format {} (this build reads format {FORMAT})",
                read.format
            )));
        }
        Ok(PackumentFacts {
            versions: read.versions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::npm::read_facts;

    const PACKUMENT: &str = r#"{"name":"left-pad","dist-tags":{"latest":"1.1.0"},
        "time":{"1.0.0":"2016-03-23T10:00:00.000Z","1.1.0":"2016-04-01T10:00:00.000Z"},
        "versions":{
          "1.0.0":{"version":"1.0.0","license":"WTFPL","deprecated":"use String.prototype.padStart",
            "dist":{"tarball":"https://registry.npmjs.org/left-pad/-/left-pad-1.0.0.tgz",
                    "shasum":"5a8f5c5ec0e4e1c6a2a8ef0d3c1d8b1d9a1d3e4f","integrity":"sha512-AAAA","unpackedSize":1234}},
          "1.1.0":{"version":"1.1.0","licenses":[{"type":"MIT"},{"type":"ISC"}],
            "scripts":{"postinstall":"node x.js","test":"tap"},
            "dist":{"tarball":"https://registry.npmjs.org/left-pad/-/left-pad-1.1.0.tgz"}},
          "2.0.0":{"version":"2.0.0"}}}"#;

    #[test]
    fn a_record_reads_back_as_the_facts_it_was_written_from() {
        let facts = read_facts(PACKUMENT.as_bytes(), "left-pad").expect("reads");
        assert_eq!(facts.versions.len(), 3);
        let record = facts.to_record();
        assert_eq!(
            PackumentFacts::from_record(record.as_bytes()).expect("reads back"),
            facts
        );
        // Absent fields are left out of the record.
        assert!(!record.contains("null") && !record.contains("install_scripts\":[]"));
        assert!(record.len() < PACKUMENT.len());
    }

    #[test]
    fn a_record_of_another_format_or_a_packument_is_refused() {
        let other = r#"{"format":2,"versions":[]}"#;
        let error = PackumentFacts::from_record(other.as_bytes()).unwrap_err();
        assert!(error.to_string().contains("format 2"), "{error}");
        assert!(matches!(
            PackumentFacts::from_record(PACKUMENT.as_bytes()),
            Err(PackumentError::Record(_))
        ));
        assert!(PackumentFacts::from_record(b"not json").is_err());
    }
}
