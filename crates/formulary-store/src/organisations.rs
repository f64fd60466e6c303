use chrono::Utc;
use formulary_core::ecosystems::Ecosystem;
use formulary_core::{EcosystemSettings, InstallScripts, OrgCode, Organisation, Severity, Stance};
use sqlx::Row;

use crate::audit;
use crate::database::Database;
use crate::error::StoreError;
use crate::time;

/// Longest organisation name accepted.
const MAX_NAME_LENGTH: usize = 200;

impl Database {
    /// Adds a local organisation. Fails clearly if the code is taken.
    pub async fn add_organisation(
        &self,
        organisation: &Organisation,
        actor: &str,
    ) -> Result<(), StoreError> {
        let name = organisation.name.trim().to_owned();
        if name.is_empty()
            || name.chars().count() > MAX_NAME_LENGTH
            || name.chars().any(char::is_control)
        {
            return Err(StoreError::Conflict(
                "an organisation needs a name of 1 to 200 printable characters".to_owned(),
            ));
        }
        if self.organisation(&organisation.code).await?.is_some() {
            return Err(StoreError::Conflict(format!(
                "organisation {} already exists; choose another code or change the existing one",
                organisation.code
            )));
        }
        let code = organisation.code.to_string();
        let actor = actor.to_owned();
        self.transact(move |connection| {
            let (code, name, actor) = (code.clone(), name.clone(), actor.clone());
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO organisations (code, name, created_at) VALUES ($1, $2, $3)",
                )
                .bind(&code)
                .bind(&name)
                .bind(time::to_text(Utc::now()))
                .execute(&mut *connection)
                .await?;
                audit::append(
                    connection,
                    &actor,
                    "organisation.add",
                    &code,
                    &serde_json::json!({ "name": name }),
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    /// The organisation with this code, if any.
    pub async fn organisation(&self, code: &OrgCode) -> Result<Option<Organisation>, StoreError> {
        let row = sqlx::query("SELECT code, name FROM organisations WHERE code = $1")
            .bind(code.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.map(|row| decode_organisation(&row)).transpose()
    }

    /// Fails with a message that says how to create the organisation when it does not exist.
    pub(crate) async fn require_organisation(&self, code: &OrgCode) -> Result<(), StoreError> {
        match self.organisation(code).await? {
            Some(_) => Ok(()),
            None => Err(StoreError::NotFound(format!(
                "organisation {code} (create it first with `formulary org add {code} --name \"…\"`)"
            ))),
        }
    }

    /// Every organisation, national first, then by code.
    pub async fn organisations(&self) -> Result<Vec<Organisation>, StoreError> {
        let rows = sqlx::query("SELECT code, name FROM organisations ORDER BY CASE WHEN code = 'NATIONAL' THEN 0 ELSE 1 END, code")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(decode_organisation).collect()
    }

    /// Sets an organisation's rules for one ecosystem.
    pub async fn set_ecosystem_settings(
        &self,
        code: &OrgCode,
        ecosystem: Ecosystem,
        settings: &EcosystemSettings,
        actor: &str,
    ) -> Result<(), StoreError> {
        settings.validate()?;
        self.require_organisation(code).await?;
        let code = code.to_string();
        let licences = serde_json::to_string(&settings.allowed_licences)
            .map_err(|error| StoreError::corrupt("licence list", error))?;
        let settings = settings.clone();
        let actor = actor.to_owned();
        self.transact(move |connection| {
            let (code, licences, settings, actor) = (code.clone(), licences.clone(), settings.clone(), actor.clone());
            Box::pin(async move {
                if code != OrgCode::national().to_string() {
                    let national = national_settings(connection, ecosystem).await?;
                    settings.check_tightens(&national)?;
                }
                sqlx::query(
                    "INSERT INTO ecosystem_settings (organisation, ecosystem, stance, severity_threshold, allowed_licences, cooldown_days, updated_at, install_scripts)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                     ON CONFLICT (organisation, ecosystem) DO UPDATE SET stance = excluded.stance,
                       severity_threshold = excluded.severity_threshold, allowed_licences = excluded.allowed_licences,
                       cooldown_days = excluded.cooldown_days, updated_at = excluded.updated_at,
                       install_scripts = excluded.install_scripts",
                )
                .bind(&code)
                .bind(ecosystem.as_str())
                .bind(settings.stance.as_str())
                .bind(settings.severity_threshold.as_str())
                .bind(&licences)
                .bind(i64::from(settings.cooldown_days))
                .bind(time::to_text(Utc::now()))
                .bind(settings.install_scripts.as_str())
                .execute(&mut *connection)
                .await?;
                let details = serde_json::json!({ "ecosystem": ecosystem, "settings": settings });
                audit::append(connection, &actor, "settings.set", &code, &details).await?;
                Ok(())
            })
        })
        .await
    }

    /// Every stored setting, as (organisation, ecosystem, settings).
    pub async fn ecosystem_settings(
        &self,
    ) -> Result<Vec<(OrgCode, Ecosystem, EcosystemSettings)>, StoreError> {
        let rows = sqlx::query(
            "SELECT organisation, ecosystem, stance, severity_threshold, allowed_licences, cooldown_days, install_scripts FROM ecosystem_settings ORDER BY organisation, ecosystem",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let corrupt = |why: String| StoreError::corrupt("ecosystem setting", why);
                let code: OrgCode = row
                    .try_get::<String, _>("organisation")?
                    .parse()
                    .map_err(|error: formulary_core::CoreError| corrupt(error.to_string()))?;
                let ecosystem: Ecosystem = row.try_get::<String, _>("ecosystem")?.parse().map_err(
                    |error: formulary_core::ecosystems::EcosystemError| corrupt(error.to_string()),
                )?;
                Ok((code, ecosystem, decode_settings(row)?))
            })
            .collect()
    }
}

fn decode_organisation(row: &sqlx::any::AnyRow) -> Result<Organisation, StoreError> {
    let code: String = row.try_get("code")?;
    Ok(Organisation {
        code: code.parse().map_err(|error: formulary_core::CoreError| {
            StoreError::corrupt("organisation", error)
        })?,
        name: row.try_get("name")?,
    })
}

/// Decodes the rule columns of an `ecosystem_settings` row.
fn decode_settings(row: &sqlx::any::AnyRow) -> Result<EcosystemSettings, StoreError> {
    let corrupt = |why: String| StoreError::corrupt("ecosystem setting", why);
    let allowed_licences: Vec<String> =
        serde_json::from_str(&row.try_get::<String, _>("allowed_licences")?)
            .map_err(|error| corrupt(error.to_string()))?;
    Ok(EcosystemSettings {
        stance: row.try_get::<String, _>("stance")?.parse::<Stance>()?,
        severity_threshold: row
            .try_get::<String, _>("severity_threshold")?
            .parse::<Severity>()?,
        allowed_licences,
        cooldown_days: u32::try_from(row.try_get::<i64, _>("cooldown_days")?)
            .map_err(|error| corrupt(error.to_string()))?,
        install_scripts: row
            .try_get::<String, _>("install_scripts")?
            .parse::<InstallScripts>()?,
    })
}

/// The national baseline for an ecosystem as stored (the defaults where none is), read inside
/// the caller's transaction so an overlay is checked against the baseline it is saved beside.
async fn national_settings(
    connection: &mut sqlx::AnyConnection,
    ecosystem: Ecosystem,
) -> Result<EcosystemSettings, StoreError> {
    let row = sqlx::query(
        "SELECT stance, severity_threshold, allowed_licences, cooldown_days, install_scripts FROM ecosystem_settings WHERE organisation = $1 AND ecosystem = $2",
    )
    .bind(OrgCode::national().to_string())
    .bind(ecosystem.as_str())
    .fetch_optional(&mut *connection)
    .await?;
    row.as_ref()
        .map_or_else(|| Ok(EcosystemSettings::default()), decode_settings)
}
