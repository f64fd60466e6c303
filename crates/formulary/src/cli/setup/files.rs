//! The edits `formulary setup` makes to each client's configuration text. Each function takes
//! the file's current text (empty when there is none) and returns the new text, keeping every
//! other setting and comment; applying one twice gives the same text (setup is idempotent).
//! Pure: no I/O, so each format is unit-tested.

use anyhow::Context as _;

/// Marks the block setup owns in a file whose language has no safe key-level edit (R code).
const BEGIN: &str =
    "# >>> formulary setup: managed by `formulary setup`, removed by `formulary setup --undo` >>>";
const END: &str = "# <<< formulary setup <<<";

/// Sets `key = value` in `[section]` of an INI file (pip.conf, pip.ini), replacing the key
/// where it is (pip treats `index_url` and `index-url` alike) or adding it to the section,
/// which is added when missing.
pub(crate) fn ini_set(existing: &str, section: &str, key: &str, value: &str) -> String {
    let spellings = [key.to_owned(), key.replace('-', "_")];
    let mut lines: Vec<String> = existing.lines().map(str::to_owned).collect();
    let header = format!("[{section}]");
    let start = lines.iter().position(|line| line.trim() == header);
    let wanted = format!("{key} = {value}");
    match start {
        None => {
            if lines.last().is_some_and(|line| !line.trim().is_empty()) {
                lines.push(String::new());
            }
            lines.push(header);
            lines.push(wanted);
        }
        Some(start) => {
            let end = lines[start + 1..]
                .iter()
                .position(|line| line.trim_start().starts_with('['))
                .map_or(lines.len(), |offset| start + 1 + offset);
            let found = (start + 1..end).find(|&index| {
                let line = lines[index].trim();
                line.split_once(['=', ':']).is_some_and(|(name, _)| {
                    spellings.iter().any(|spelling| name.trim() == spelling)
                })
            });
            match found {
                Some(index) => lines[index] = wanted,
                None => {
                    let last = (start..end)
                        .rev()
                        .find(|&index| !lines[index].trim().is_empty())
                        .unwrap_or(start);
                    lines.insert(last + 1, wanted);
                }
            }
        }
    }
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// The keys of an INI section other than `key`, that send pip elsewhere (for a warning).
pub(crate) fn ini_other_indexes(existing: &str) -> Vec<String> {
    existing
        .lines()
        .filter_map(|line| line.split_once('='))
        .filter(|(name, _)| {
            matches!(
                name.trim(),
                "extra-index-url" | "extra_index_url" | "find-links" | "find_links"
            )
        })
        .map(|(name, value)| format!("{} = {}", name.trim(), value.trim()))
        .collect()
}

/// uv.toml: an `[[index]]` named `formulary` with the URL, the default index. Another index
/// marked `default`, and a top-level `index-url`, would take its place, so they are
/// unmarked/removed (and reported). With `python_downloads`, `python-downloads-json-url` too,
/// so that `uv python install` gets the CPython builds the gateway allows.
pub(crate) fn uv_toml(
    existing: &str,
    url: &str,
    python_downloads: Option<&str>,
) -> anyhow::Result<(String, Vec<String>)> {
    let mut document: toml_edit::DocumentMut = existing.parse().context(
        "the existing uv.toml is not valid TOML; fix it or move it away, then run setup again",
    )?;
    let mut notes = Vec::new();
    if let Some(list) = python_downloads {
        document.insert("python-downloads-json-url", toml_edit::value(list));
    }
    if document.remove("index-url").is_some() {
        notes.push("removed the top-level index-url (the formulary index replaces it)".to_owned());
    }
    let indexes = document
        .entry("index")
        .or_insert(toml_edit::Item::ArrayOfTables(
            toml_edit::ArrayOfTables::new(),
        ))
        .as_array_of_tables_mut()
        .context(
            "uv.toml's `index` is not a list of [[index]] tables; fix it and run setup again",
        )?;
    let mut ours = None;
    for (position, table) in indexes.iter_mut().enumerate() {
        if table.get("name").and_then(toml_edit::Item::as_str) == Some("formulary") {
            ours = Some(position);
        } else if table.get("default").and_then(toml_edit::Item::as_bool) == Some(true) {
            table.remove("default");
            let name = table
                .get("name")
                .and_then(toml_edit::Item::as_str)
                .unwrap_or("an index");
            notes.push(format!("{name} is no longer the default index"));
        }
    }
    let table = match ours {
        Some(position) => indexes.get_mut(position).context("index")?,
        None => {
            let mut table = toml_edit::Table::new();
            table.insert("name", toml_edit::value("formulary"));
            indexes.push(table);
            let last = indexes.len() - 1;
            indexes.get_mut(last).context("index")?
        }
    };
    table.insert("url", toml_edit::value(url));
    table.insert("default", toml_edit::value(true));
    Ok((document.to_string(), notes))
}

/// Replaces (or appends) setup's marked block in a text file.
pub(crate) fn set_block(existing: &str, body: &str) -> String {
    let block = format!("{BEGIN}\n{}\n{END}\n", body.trim_end());
    match (existing.find(BEGIN), existing.find(END)) {
        (Some(start), Some(end)) if end > start => {
            let after = existing[end + END.len()..].trim_start_matches(['\r', '\n']);
            format!("{}{block}{after}", &existing[..start])
        }
        _ if existing.trim().is_empty() => block,
        _ => {
            let separator = if existing.ends_with('\n') {
                "\n"
            } else {
                "\n\n"
            };
            format!("{existing}{separator}{block}")
        }
    }
}

/// The R code setup puts in `.Rprofile`: the organisation's CRAN view as the repository. R's
/// own libcurl download method does not read netrc before R 4.6 and prints every URL, so the
/// token is not put in the URL: downloads use the curl program, which reads the netrc file.
pub(crate) fn r_profile(existing: &str, repository: &str, netrc: &str) -> String {
    let repository = r_string(repository);
    let netrc = r_string(netrc);
    set_block(
        existing,
        &format!(
            "local({{\n  options(repos = c(CRAN = {repository}))\n  # The token is in {netrc} (readable only by you); curl reads it.\n  options(download.file.method = \"curl\", download.file.extra = paste(\"--netrc-file\", shQuote({netrc})))\n}})"
        ),
    )
}

fn r_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Sets one `machine` entry of a netrc file (other machines are kept as they are).
pub(crate) fn netrc(existing: &str, host: &str, login: &str, password: &str) -> String {
    // netrc is a stream of tokens; entries start at `machine` or `default`.
    let mut kept: Vec<String> = Vec::new();
    let mut skipping = false;
    for line in existing.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(position) = words
            .iter()
            .position(|word| *word == "machine" || *word == "default")
        {
            skipping = words[position] == "machine" && words.get(position + 1) == Some(&host);
        } else if words.first() == Some(&"macdef") {
            skipping = false;
        }
        if !skipping {
            kept.push(line.to_owned());
        }
    }
    while kept.last().is_some_and(|line| line.trim().is_empty()) {
        kept.pop();
    }
    kept.push(format!("machine {host} login {login} password {password}"));
    let mut text = kept.join("\n");
    text.push('\n');
    text
}

/// .npmrc: the registry, and the token for that registry's path only (`//host/path/:_authToken`).
pub(crate) fn npmrc(existing: &str, registry: &str, token: &str) -> String {
    let scope = registry
        .split_once("://")
        .map_or(registry, |(_, rest)| rest);
    let auth_key = format!("//{scope}:_authToken");
    let mut lines: Vec<String> = Vec::new();
    let (mut registry_set, mut token_set) = (false, false);
    for line in existing.lines() {
        let key = line.split_once('=').map(|(key, _)| key.trim());
        match key {
            Some("registry") => {
                lines.push(format!("registry={registry}"));
                registry_set = true;
            }
            Some(key) if key == auth_key => {
                lines.push(format!("{auth_key}={token}"));
                token_set = true;
            }
            _ => lines.push(line.to_owned()),
        }
    }
    if !registry_set {
        lines.push(format!("registry={registry}"));
    }
    if !token_set {
        lines.push(format!("{auth_key}={token}"));
    }
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// A YAML mapping with some keys set (yarn's `.yarnrc.yml`, conda's `.condarc`). Comments in
/// the file are not kept by the YAML library; `--undo` restores the original.
pub(crate) fn yaml_set(
    existing: &str,
    settings: &[(&str, serde_yaml::Value)],
) -> anyhow::Result<String> {
    let mut document: serde_yaml::Value = if existing.trim().is_empty() {
        serde_yaml::Value::Mapping(serde_yaml::Mapping::new())
    } else {
        serde_yaml::from_str(existing).context(
            "the existing file is not valid YAML; fix it or move it away, then run setup again",
        )?
    };
    let mapping = document
        .as_mapping_mut()
        .context("the existing file is not a YAML mapping of settings")?;
    for (key, value) in settings {
        mapping.insert(serde_yaml::Value::from(*key), value.clone());
    }
    Ok(serde_yaml::to_string(&document)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pip_conf_keeps_other_settings_and_is_idempotent() {
        let existing = "# my settings\n[global]\ntimeout = 60\nindex_url = https://pypi.org/simple/\n\n[install]\nuser = true\n";
        let once = ini_set(
            existing,
            "global",
            "index-url",
            "https://f.example/pypi/simple/",
        );
        assert_eq!(
            once,
            "# my settings\n[global]\ntimeout = 60\nindex-url = https://f.example/pypi/simple/\n\n[install]\nuser = true\n"
        );
        assert_eq!(
            ini_set(
                &once,
                "global",
                "index-url",
                "https://f.example/pypi/simple/"
            ),
            once
        );
        assert_eq!(
            ini_set("", "global", "index-url", "u"),
            "[global]\nindex-url = u\n"
        );
        assert_eq!(
            ini_set("[install]\nuser = true\n", "global", "index-url", "u"),
            "[install]\nuser = true\n\n[global]\nindex-url = u\n"
        );
        assert_eq!(
            ini_set(
                "[global]\ntimeout = 60\n\n[install]\nuser = true\n",
                "global",
                "index-url",
                "u"
            ),
            "[global]\ntimeout = 60\nindex-url = u\n\n[install]\nuser = true\n"
        );
        assert_eq!(
            ini_other_indexes("[global]\nextra-index-url = https://pypi.org/simple/\n"),
            ["extra-index-url = https://pypi.org/simple/"]
        );
    }

    #[test]
    fn uv_toml_adds_one_default_index_and_keeps_the_rest() {
        let existing = "# mine\nnative-tls = true\nindex-url = \"https://pypi.org/simple/\"\n\n[[index]]\nname = \"internal\"\nurl = \"https://internal.example/simple/\"\ndefault = true\n";
        let (once, notes) =
            uv_toml(existing, "https://f.example/pypi/simple/", None).expect("edits");
        assert!(once.contains("# mine\nnative-tls = true"), "{once}");
        assert!(once.contains("name = \"internal\""), "{once}");
        assert!(!once.contains("index-url"), "{once}");
        assert_eq!(once.matches("default = true").count(), 1, "{once}");
        assert!(
            once.contains(
                "name = \"formulary\"\nurl = \"https://f.example/pypi/simple/\"\ndefault = true"
            ),
            "{once}"
        );
        assert_eq!(notes.len(), 2, "{notes:?}");
        let (twice, notes) = uv_toml(&once, "https://f.example/pypi/simple/", None).expect("edits");
        assert_eq!(twice, once);
        assert!(notes.is_empty());
        let parsed: toml::Value = toml::from_str(&once).expect("valid TOML");
        assert_eq!(parsed["index"].as_array().map(Vec::len), Some(2));
        assert!(uv_toml("index = 3", "u", None).is_err());
        let (with_python, _) = uv_toml(
            "",
            "https://f.example/pypi/simple/",
            Some("https://f.example/python/download-metadata.json"),
        )
        .expect("edits");
        assert!(with_python.starts_with(
            "python-downloads-json-url = \"https://f.example/python/download-metadata.json\"\n"
        ));
    }

    #[test]
    fn blocks_are_replaced_in_place() {
        let first = r_profile(
            "options(digits = 4)\n",
            "https://f.example/o/RJ1/cran",
            "/home/ana/.netrc",
        );
        assert!(
            first.starts_with("options(digits = 4)\n\n# >>> formulary setup"),
            "{first}"
        );
        assert!(first.contains("CRAN = \"https://f.example/o/RJ1/cran\""));
        assert!(first.contains("--netrc-file"));
        assert_eq!(
            r_profile(&first, "https://f.example/o/RJ1/cran", "/home/ana/.netrc"),
            first
        );
        let moved = r_profile(
            &format!("{first}x <- 1\n"),
            "https://g.example/cran",
            "/home/ana/.netrc",
        );
        assert!(moved.contains("https://g.example/cran") && !moved.contains("f.example"));
        assert!(moved.ends_with("x <- 1\n"), "{moved}");
        assert_eq!(moved.matches(BEGIN).count(), 1);
        assert!(r_string("C:\\Users\\a \"b\"") == "\"C:\\\\Users\\\\a \\\"b\\\"\"");
    }

    #[test]
    fn netrc_replaces_only_its_machine() {
        let existing = "machine github.com login me password abc\nmachine f.example\n  login old\n  password frm_old\ndefault login anonymous password me@example\n";
        let once = netrc(existing, "f.example", "formulary", "frm_new");
        assert_eq!(
            once,
            "machine github.com login me password abc\ndefault login anonymous password me@example\nmachine f.example login formulary password frm_new\n"
        );
        assert_eq!(netrc(&once, "f.example", "formulary", "frm_new"), once);
        assert_eq!(netrc("", "h", "l", "p"), "machine h login l password p\n");
    }

    #[test]
    fn npmrc_sets_the_registry_and_a_token_for_its_path_only() {
        let existing = "save-exact=true\nregistry=https://registry.npmjs.org/\n//registry.npmjs.org/:_authToken=npm_abc\n";
        let once = npmrc(existing, "https://f.example/o/RJ1/npm/", "frm_x");
        assert_eq!(
            once,
            "save-exact=true\nregistry=https://f.example/o/RJ1/npm/\n//registry.npmjs.org/:_authToken=npm_abc\n//f.example/o/RJ1/npm/:_authToken=frm_x\n"
        );
        assert_eq!(npmrc(&once, "https://f.example/o/RJ1/npm/", "frm_x"), once);
    }

    #[test]
    fn yaml_settings_are_set_and_others_kept() {
        let once = yaml_set(
            "enableTelemetry: false\nnpmRegistryServer: https://registry.yarnpkg.com\n",
            &[
                ("npmRegistryServer", "https://f.example/npm/".into()),
                ("npmMinimalAgeGate", 0.into()),
            ],
        )
        .expect("edits");
        let parsed: serde_yaml::Value = serde_yaml::from_str(&once).expect("YAML");
        assert_eq!(parsed["enableTelemetry"], false);
        assert_eq!(parsed["npmRegistryServer"], "https://f.example/npm/");
        assert_eq!(parsed["npmMinimalAgeGate"], 0);
        assert!(yaml_set("- a\n- b\n", &[]).is_err());
    }
}
