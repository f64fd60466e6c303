//! Finding components by name across everything Formulary knows of them: entries, releases the
//! gateway has seen, requests and advisories.

use formulary_core::ecosystems::Ecosystem;
use formulary_core::Component;
use sqlx::Row;

use crate::database::Database;
use crate::error::StoreError;

/// Longest search text used (longer input is cut).
const MAX_QUERY_CHARS: usize = 100;

/// Escapes `%`, `_` and `\` so that user text matches literally in a LIKE pattern.
fn like_literal(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        if matches!(character, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

impl Database {
    /// Components whose name contains `text` (case-insensitive; `-`, `_` and `.` match each
    /// other as names are normalised), from every source, exact matches first, then by name.
    pub async fn search_components(
        &self,
        text: &str,
        ecosystem: Option<Ecosystem>,
        limit: usize,
    ) -> Result<Vec<Component>, StoreError> {
        let wanted: String = text
            .trim()
            .chars()
            .take(MAX_QUERY_CHARS)
            .collect::<String>()
            .to_lowercase()
            .replace(['_', '.'], "-");
        let pattern = format!("%{}%", like_literal(&wanted));
        let sources = [
            "SELECT ecosystem, name FROM entries WHERE removed_at IS NULL",
            "SELECT ecosystem, name FROM releases",
            "SELECT ecosystem, name FROM requests",
            "SELECT ecosystem, name FROM advisory_components",
        ];
        let union = sources.join(" UNION ");
        let mut sql = format!(
            "SELECT DISTINCT ecosystem, name FROM ({union}) known WHERE REPLACE(REPLACE(LOWER(name), '_', '-'), '.', '-') LIKE $1 ESCAPE '\\'"
        );
        if ecosystem.is_some() {
            sql.push_str(" AND ecosystem = $2");
        }
        let mut query = sqlx::query(&sql).bind(&pattern);
        if let Some(ecosystem) = ecosystem {
            query = query.bind(ecosystem.as_str());
        }
        let rows = query.fetch_all(self.pool()).await?;
        let mut found = Vec::with_capacity(rows.len());
        for row in &rows {
            let ecosystem: String = row.try_get("ecosystem")?;
            let Ok(ecosystem) = ecosystem.parse::<Ecosystem>() else {
                continue;
            };
            if let Ok(component) = Component::new(ecosystem, &row.try_get::<String, _>("name")?) {
                found.push(component);
            }
        }
        let normalised = |component: &Component| {
            component
                .name
                .as_str()
                .to_lowercase()
                .replace(['_', '.'], "-")
        };
        found.sort_by(|a, b| {
            (normalised(a) != wanted, normalised(a).len(), a.purl()).cmp(&(
                normalised(b) != wanted,
                normalised(b).len(),
                b.purl(),
            ))
        });
        found.dedup();
        found.truncate(limit);
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn wildcards_match_literally() {
        assert_eq!(super::like_literal("a%b_c\\"), "a\\%b\\_c\\\\");
    }
}
