//! CRAN-like repositories: the `PACKAGES` index (a deb822-style file of one paragraph per
//! package), the dependencies a package declares, R's free-form `License:` field mapped to
//! SPDX, and `Meta/archive.rds` (through a small reader and writer of R's serialization format).

mod archive;
mod licence;
mod packages;
pub mod rds;

pub use archive::{
    archive_from_value, archive_value, current_times_from_value, Archive, ArchivedFile, FileInfo,
};
pub use licence::licence_to_spdx;
pub use packages::{
    dependencies, parse_packages, read_packages, render_packages, Dependency, PackagesError,
    ReadPackages, BASE_PACKAGES,
};
