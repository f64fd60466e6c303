//! Dependency admissions of curated views (`formulary_core::policy::Admission`), stored so the
//! gateway, the API and `policy check` read the same closure.

use formulary_core::ecosystems::{Ecosystem, VersionRange};
use formulary_core::policy::Admission;
use formulary_core::{Component, OrgCode};
use sqlx::Row;

use crate::audit;
use crate::database::Database;
use crate::error::StoreError;

impl Database {
    /// Every stored admission.
    pub async fn admissions(&self) -> Result<Vec<Admission>, StoreError> {
        let rows = sqlx::query(
            "SELECT organisation, ecosystem, name, version_range, dependent, root, entry_id FROM dependency_admissions",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Replaces the admissions of one organisation's view of one ecosystem, with an audit row,
    /// when they differ from what is stored. Returns true when it wrote.
    pub async fn replace_admissions(
        &self,
        organisation: &OrgCode,
        ecosystem: Ecosystem,
        admissions: &[Admission],
        actor: &str,
    ) -> Result<bool, StoreError> {
        let mut wanted: Vec<Row5> = admissions.iter().map(row_of).collect();
        wanted.sort();
        wanted.dedup();
        let mut stored: Vec<Row5> = self
            .admissions()
            .await?
            .iter()
            .filter(|admission| {
                &admission.organisation == organisation
                    && admission.component.ecosystem() == ecosystem
            })
            .map(row_of)
            .collect();
        stored.sort();
        stored.dedup();
        if stored == wanted {
            return Ok(false);
        }
        let (organisation, actor) = (organisation.as_str().to_owned(), actor.to_owned());
        let (added, removed) = (
            wanted.iter().filter(|row| !stored.contains(row)).count(),
            stored.iter().filter(|row| !wanted.contains(row)).count(),
        );
        self.transact(move |connection| {
            let (organisation, actor, wanted) = (organisation.clone(), actor.clone(), wanted.clone());
            Box::pin(async move {
                sqlx::query("DELETE FROM dependency_admissions WHERE organisation = $1 AND ecosystem = $2")
                    .bind(&organisation)
                    .bind(ecosystem.as_str())
                    .execute(&mut *connection)
                    .await?;
                for (name, range, dependent, root, entry_id) in &wanted {
                    sqlx::query("INSERT INTO dependency_admissions (organisation, ecosystem, name, version_range, dependent, root, entry_id) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                        .bind(&organisation)
                        .bind(ecosystem.as_str())
                        .bind(name)
                        .bind(range)
                        .bind(dependent)
                        .bind(root)
                        .bind(entry_id)
                        .execute(&mut *connection)
                        .await?;
                }
                let mut packages: Vec<&str> = wanted.iter().map(|row| row.0.as_str()).collect();
                packages.dedup();
                audit::append(
                    connection,
                    &actor,
                    "admissions.replace",
                    &format!("{organisation}/{ecosystem}"),
                    &serde_json::json!({
                        "admitted": packages,
                        "rows_added": added,
                        "rows_removed": removed,
                    }),
                )
                .await?;
                Ok(())
            })
        })
        .await?;
        Ok(true)
    }
}

/// (name, range, dependent, root, entry id): an admission without its organisation.
type Row5 = (String, String, String, String, String);

fn row_of(admission: &Admission) -> Row5 {
    (
        admission.component.name.as_str().to_owned(),
        admission.range.as_str().to_owned(),
        admission.dependent.name.as_str().to_owned(),
        admission.root.name.as_str().to_owned(),
        admission.entry_id.clone(),
    )
}

fn decode(row: &sqlx::any::AnyRow) -> Result<Admission, StoreError> {
    let corrupt = |why: String| StoreError::corrupt("dependency admission", why);
    let ecosystem: Ecosystem = row
        .try_get::<String, _>("ecosystem")?
        .parse()
        .map_err(|error: formulary_core::ecosystems::EcosystemError| corrupt(error.to_string()))?;
    let component = |column: &str| -> Result<Component, StoreError> {
        Ok(Component::new(
            ecosystem,
            &row.try_get::<String, _>(column)?,
        )?)
    };
    Ok(Admission {
        organisation: row.try_get::<String, _>("organisation")?.parse()?,
        component: component("name")?,
        range: VersionRange::parse(ecosystem, &row.try_get::<String, _>("version_range")?)
            .map_err(|error| corrupt(error.to_string()))?,
        dependent: component("dependent")?,
        root: component("root")?,
        entry_id: row.try_get("entry_id")?,
    })
}
