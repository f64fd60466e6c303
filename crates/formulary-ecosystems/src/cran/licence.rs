/// Maps R's free-form `License:` field (Writing R Extensions, 1.1.2) to an SPDX expression.
/// Alternatives separated by `|` become `OR`; `+ file LICENSE` (extra terms in a file) is
/// dropped from the identifier, as the SPDX licence list does for MIT and BSD templates.
/// `None` when any part is not a licence Formulary knows, so that the policy treats it as unknown
/// rather than guessing.
pub fn licence_to_spdx(field: &str) -> Option<String> {
    let alternatives: Option<Vec<String>> = field
        .split('|')
        .map(|part| single_licence(part.trim()))
        .collect();
    let alternatives = alternatives?;
    if alternatives.is_empty() {
        return None;
    }
    let mut unique: Vec<String> = Vec::new();
    for alternative in alternatives {
        if !unique.contains(&alternative) {
            unique.push(alternative);
        }
    }
    Some(unique.join(" OR "))
}

fn single_licence(text: &str) -> Option<String> {
    let without_file = text.split('+').next().unwrap_or_default().trim();
    let compact: String = without_file
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    let spdx = match compact.as_str() {
        "gpl-2" | "gpl(==2)" | "gpl(==2.0)" | "gpl-2.0" => "GPL-2.0-only",
        "gpl-3" | "gpl(==3)" | "gpl(==3.0)" | "gpl-3.0" => "GPL-3.0-only",
        "gpl" | "gpl(>=2)" | "gpl(>=2.0)" | "gpl-2|gpl-3" => "GPL-2.0-or-later",
        "gpl(>=3)" | "gpl(>=3.0)" => "GPL-3.0-or-later",
        "lgpl-2" => "LGPL-2.0-only",
        "lgpl-2.1" => "LGPL-2.1-only",
        "lgpl-3" => "LGPL-3.0-only",
        "lgpl" | "lgpl(>=2)" => "LGPL-2.0-or-later",
        "lgpl(>=2.1)" => "LGPL-2.1-or-later",
        "lgpl(>=3)" => "LGPL-3.0-or-later",
        "agpl-3" | "agpl(>=3)" => "AGPL-3.0-only",
        "mit" => "MIT",
        "bsd_2_clause" => "BSD-2-Clause",
        "bsd_3_clause" => "BSD-3-Clause",
        "apachelicense2.0"
        | "apachelicense(==2.0)"
        | "apachelicense(>=2.0)"
        | "apachelicense"
        | "apache-2.0" => "Apache-2.0",
        "artistic-2.0" | "artisticlicense2.0" => "Artistic-2.0",
        "mpl-2.0" | "mozillapubliclicense2.0" => "MPL-2.0",
        "cc0" => "CC0-1.0",
        "ccby4.0" | "cc-by-4.0" => "CC-BY-4.0",
        "unlimited" | "publicdomain" => return None,
        other if spdx_id(other).is_some() => return spdx_id(other),
        _ => return None,
    };
    Some(spdx.to_owned())
}

/// A field that is already an SPDX identifier, in any case.
fn spdx_id(lowered: &str) -> Option<String> {
    const KNOWN: [&str; 8] = [
        "MIT",
        "Apache-2.0",
        "BSD-2-Clause",
        "BSD-3-Clause",
        "GPL-2.0-or-later",
        "GPL-3.0-or-later",
        "MPL-2.0",
        "ISC",
    ];
    KNOWN
        .iter()
        .find(|id| id.to_ascii_lowercase() == lowered)
        .map(|id| (*id).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_r_licence_fields_map_to_spdx() {
        for (field, spdx) in [
            ("GPL (>= 2)", "GPL-2.0-or-later"),
            ("GPL-2 | GPL-3", "GPL-2.0-only OR GPL-3.0-only"),
            ("MIT + file LICENSE", "MIT"),
            ("BSD_3_clause + file LICENSE", "BSD-3-Clause"),
            ("Apache License (== 2.0)", "Apache-2.0"),
            ("LGPL (>= 2.1)", "LGPL-2.1-or-later"),
            ("GPL-3", "GPL-3.0-only"),
            ("CC0", "CC0-1.0"),
        ] {
            assert_eq!(licence_to_spdx(field).as_deref(), Some(spdx), "{field}");
        }
    }

    #[test]
    fn unknown_or_restrictive_fields_stay_unknown() {
        for field in ["file LICENSE", "Proprietary", "", "GPL-2 | Something odd"] {
            assert_eq!(licence_to_spdx(field), None, "{field:?}");
        }
    }
}
