//! Dependency admissions: in a curated view, approving a component admits what it needs to
//! install. An admission is worked out outside the engine (from upstream metadata, which is I/O)
//! and handed to it in the snapshot; the engine only applies it.

use crate::component::Component;
use crate::organisation::OrgCode;
use formulary_ecosystems::VersionRange;

/// One dependency admitted in one organisation's curated view because an approved component
/// needs it, directly or through other admitted dependencies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// The organisation whose view it was worked out for (the national code for the national
    /// view, whose admissions every organisation shares).
    pub organisation: OrgCode,
    /// The dependency admitted.
    pub component: Component,
    /// The versions admitted: what the component that needs it accepts.
    pub range: VersionRange,
    /// The component whose requirement this is.
    pub dependent: Component,
    /// The approved component whose closure this is (the same as `dependent` for a direct
    /// dependency).
    pub root: Component,
    /// The approving entry of `root`. The admission lapses when that entry is no longer in force
    /// in the view, whatever the stored admissions still say.
    pub entry_id: String,
}

impl Admission {
    /// "a dependency of cellranger, needed by readxl (decision e-…)".
    pub fn describe(&self) -> String {
        if self.dependent == self.root {
            format!(
                "a dependency of {} (decision {})",
                self.dependent.name, self.entry_id
            )
        } else {
            format!(
                "a dependency of {}, which {} needs (decision {})",
                self.dependent.name, self.root.name, self.entry_id
            )
        }
    }
}
