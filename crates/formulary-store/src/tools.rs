//! Desktop tools' files (`tool_artifacts`): which file of which version of a `generic` component
//! serves which platform, where it comes from and what it must hash to.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::audit;
use crate::database::Database;
use crate::error::StoreError;
use crate::time;
use crate::tool_signature::ToolSignature;

/// One file of one tool version for one platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolArtifact {
    /// The tool's name as a `generic` component (normalised, e.g. `uv`).
    pub name: String,
    /// Its version, as the vendor writes it.
    pub version: String,
    /// `{arch}-{os}`: `x86_64-linux`, `aarch64-macos`, `x86_64-windows`, …
    pub platform: String,
    /// The file's name as published.
    pub filename: String,
    /// Where the vendor publishes it.
    pub url: String,
    /// Its SHA-256, lower-case hex.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// `archive` (unpacked into the person's profile), `binary` (one program) or `installer`
    /// (run with its per-user recipe, `install_args`).
    pub kind: String,
    /// For an archive or an installer, the programs inside it (paths within the archive or the
    /// installed folder) to put on the PATH.
    pub binaries: Vec<String>,
    /// For an installer, the arguments that install it for the person only, `{prefix}` standing
    /// for the folder in their profile; empty when it has no per-user recipe.
    #[serde(default)]
    pub install_args: Vec<String>,
    /// The vendor's detached signature and the pinned key that must verify it, when the vendor
    /// signs the file.
    #[serde(default)]
    pub signature: Option<ToolSignature>,
}

impl Database {
    /// Records tool files (replacing the same name, version and platform), audited as
    /// `tool.add` in one transaction.
    pub async fn add_tool_artifacts(
        &self,
        artifacts: &[ToolArtifact],
        actor: &str,
    ) -> Result<(), StoreError> {
        let (artifacts, actor) = (artifacts.to_vec(), actor.to_owned());
        self.transact(move |connection| {
            let (artifacts, actor) = (artifacts.clone(), actor.clone());
            Box::pin(async move {
                for artifact in &artifacts {
                    sqlx::query(
                        "INSERT INTO tool_artifacts (name, version, platform, filename, url, sha256, size, kind, binaries, added_by, added_at, install_args, signature)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                         ON CONFLICT (name, version, platform) DO UPDATE SET filename = excluded.filename, url = excluded.url, sha256 = excluded.sha256, size = excluded.size, kind = excluded.kind, binaries = excluded.binaries, added_by = excluded.added_by, added_at = excluded.added_at, install_args = excluded.install_args, signature = excluded.signature",
                    )
                    .bind(&artifact.name)
                    .bind(&artifact.version)
                    .bind(&artifact.platform)
                    .bind(&artifact.filename)
                    .bind(&artifact.url)
                    .bind(&artifact.sha256)
                    .bind(i64::try_from(artifact.size).unwrap_or(i64::MAX))
                    .bind(&artifact.kind)
                    .bind(serde_json::to_string(&artifact.binaries).unwrap_or_default())
                    .bind(&actor)
                    .bind(time::to_text(chrono::Utc::now()))
                    .bind(serde_json::to_string(&artifact.install_args).unwrap_or_default())
                    .bind(artifact.signature.as_ref().and_then(|signature| serde_json::to_string(signature).ok()).unwrap_or_default())
                    .execute(&mut *connection)
                    .await?;
                    let subject = format!("pkg:generic/{}@{}", artifact.name, artifact.version);
                    audit::append(connection, &actor, "tool.add", &subject, &serde_json::to_value(artifact).unwrap_or_default()).await?;
                }
                Ok(())
            })
        })
        .await
    }

    /// Every tool file, by name, version and platform.
    pub async fn tool_artifacts(&self) -> Result<Vec<ToolArtifact>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, version, platform, filename, url, sha256, size, kind, binaries, install_args, signature FROM tool_artifacts ORDER BY name, version, platform",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ToolArtifact {
                    name: row.try_get("name")?,
                    version: row.try_get("version")?,
                    platform: row.try_get("platform")?,
                    filename: row.try_get("filename")?,
                    url: row.try_get("url")?,
                    sha256: row.try_get("sha256")?,
                    size: u64::try_from(row.try_get::<i64, _>("size")?).unwrap_or(0),
                    kind: row.try_get("kind")?,
                    binaries: serde_json::from_str(&row.try_get::<String, _>("binaries")?)
                        .map_err(|error| StoreError::Corrupt {
                            what: "tool binaries",
                            why: error.to_string(),
                        })?,
                    install_args: serde_json::from_str(&row.try_get::<String, _>("install_args")?)
                        .map_err(|error| StoreError::Corrupt {
                            what: "tool install arguments",
                            why: error.to_string(),
                        })?,
                    signature: match row.try_get::<String, _>("signature")?.as_str() {
                        "" => None,
                        text => Some(serde_json::from_str(text).map_err(|error| {
                            StoreError::Corrupt {
                                what: "tool signature",
                                why: error.to_string(),
                            }
                        })?),
                    },
                })
            })
            .collect()
    }
}
