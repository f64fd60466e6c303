use chrono::Utc;
use formulary_core::ecosystems::Version;
use formulary_core::policy::Release;
use formulary_core::Component;
use sqlx::Row;

use crate::database::Database;
use crate::error::StoreError;
use crate::time;

impl Database {
    /// Records (or refreshes) what is known about a release. The first time a release is seen is
    /// kept, so that it can stand in for an unknown publication time.
    pub async fn record_release(
        &self,
        component: &Component,
        release: &Release,
    ) -> Result<(), StoreError> {
        self.ensure_online()?;
        sqlx::query(
            "INSERT INTO releases (ecosystem, name, version, published, yanked, licence, first_seen, dated_by_first_sight, install_scripts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (ecosystem, name, version) DO UPDATE SET published = COALESCE(excluded.published, releases.published),
               yanked = excluded.yanked, licence = COALESCE(excluded.licence, releases.licence),
               install_scripts = excluded.install_scripts,
               dated_by_first_sight = CASE WHEN excluded.published IS NULL THEN releases.dated_by_first_sight ELSE excluded.dated_by_first_sight END",
        )
        .bind(component.ecosystem().as_str())
        .bind(component.name.as_str())
        .bind(release.version.to_string())
        .bind(release.published.map(time::to_text))
        .bind(release.yanked.clone())
        .bind(release.licence.clone())
        .bind(time::to_text(Utc::now()))
        .bind(i64::from(release.dated_by_first_sight))
        .bind(i64::from(release.install_scripts))
        .execute(self.pool())
        .await?;
        if let Some(copy) = self.local_copy() {
            copy.record_release(component, release);
        }
        Ok(())
    }

    /// Everything known about a component's releases. Versions that no longer parse are skipped.
    pub async fn releases_of(&self, component: &Component) -> Result<Vec<Release>, StoreError> {
        if let Some(copy) = self.offline_copy()? {
            return Ok(copy.releases_of(component));
        }
        let rows = sqlx::query("SELECT version, published, yanked, licence, dated_by_first_sight, install_scripts FROM releases WHERE ecosystem = $1 AND name = $2")
            .bind(component.ecosystem().as_str())
            .bind(component.name.as_str())
            .fetch_all(self.pool())
            .await?;
        let mut releases = Vec::with_capacity(rows.len());
        for row in &rows {
            let Ok(version) =
                Version::parse(component.ecosystem(), &row.try_get::<String, _>("version")?)
            else {
                continue;
            };
            releases.push(Release {
                dated_by_first_sight: row.try_get::<i64, _>("dated_by_first_sight")? != 0,
                version,
                published: time::optional_from_text(row.try_get("published")?)?,
                yanked: row.try_get("yanked")?,
                licence: row.try_get("licence")?,
                install_scripts: row.try_get::<i64, _>("install_scripts")? != 0,
            });
        }
        releases.sort_by(|left, right| left.version.cmp(&right.version));
        if let Some(copy) = self.local_copy() {
            copy.put_releases(component, &releases);
        }
        Ok(releases)
    }
}

impl Database {
    /// Every dated release of an ecosystem, as ((name, version), published): one query for
    /// indexes that cover a whole repository (CRAN's `PACKAGES`).
    pub async fn published_releases(
        &self,
        ecosystem: formulary_core::ecosystems::Ecosystem,
    ) -> Result<std::collections::HashMap<(String, String), chrono::DateTime<Utc>>, StoreError>
    {
        if let Some(copy) = self.offline_copy()? {
            return Ok(copy.published_releases(ecosystem));
        }
        let rows = sqlx::query("SELECT name, version, published FROM releases WHERE ecosystem = $1 AND published IS NOT NULL")
            .bind(ecosystem.as_str())
            .fetch_all(self.pool())
            .await?;
        let mut found = std::collections::HashMap::with_capacity(rows.len());
        for row in &rows {
            if let Some(published) = time::optional_from_text(row.try_get("published")?)? {
                found.insert((row.try_get("name")?, row.try_get("version")?), published);
            }
        }
        Ok(found)
    }
}
