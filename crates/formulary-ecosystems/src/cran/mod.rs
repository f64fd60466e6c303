//! CRAN-like repositories: the `PACKAGES` index (a deb822-style file of one paragraph per
//! package), the dependencies a package declares, and R's free-form `License:` field mapped to
//! SPDX.

mod licence;
mod packages;

pub use licence::licence_to_spdx;
pub use packages::{
    dependencies, parse_packages, render_packages, Dependency, PackagesError, BASE_PACKAGES,
};
