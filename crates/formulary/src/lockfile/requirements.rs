//! pip requirements files, read as pip reads them (`pip/_internal/req/req_file.py`): lines
//! joined at a trailing `\`, comments (`#` at the start or after white space) removed, `${VAR}`
//! expanded, the requirement being everything before the first word that starts with `-`, and
//! the options after it. Each requirement is a PEP 508 specifier read by `pep508_rs` (so
//! `PyYAML == 5.3` is the same pin as `PyYAML==5.3`), its environment marker evaluated, and
//! `-r`/`--requirement` and `-c`/`--constraint` files read relative to the file that names them.
//! No crate reads the requirements-file layer itself (uv's is an internal part of uv), so this
//! module does, and its property tests hold it to pip's rules.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context};
use formulary_core::ecosystems::Ecosystem;
use pep508_rs::pep440_rs::Operator;
use pep508_rs::{Requirement, VersionOrUrl};

use super::environment::Environment;
use super::{pin, printable, read_text, Pins};

/// Whether a file's lines are requirements (installed) or constraints (versions only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Requirements,
    Constraints,
}

/// One requirement or constraint line.
#[derive(Debug)]
struct Wanted {
    name: String,
    /// The version of an exact `==` (or `===`) pin.
    version: Option<String>,
    place: String,
    text: String,
    /// Where it came in the files, to list notes in reading order.
    order: usize,
}

/// Reads a requirements file and every file it includes.
pub(super) fn read(path: &Path, environment: &Environment) -> anyhow::Result<Pins> {
    let mut reader = Reader::new(environment);
    reader.file(path, Kind::Requirements)?;
    Ok(reader.finish())
}

/// Reads requirements given as text (for tests): includes are relative to `folder`.
#[cfg(test)]
pub(super) fn read_str(
    text: &str,
    folder: &Path,
    environment: &Environment,
) -> anyhow::Result<Pins> {
    let mut reader = Reader::new(environment);
    reader.text(text, &folder.join("requirements.txt"), Kind::Requirements)?;
    Ok(reader.finish())
}

struct Reader<'e> {
    environment: &'e Environment,
    /// The files being read, outermost first (canonical paths), to find cycles.
    reading: Vec<(PathBuf, String)>,
    /// Files already read, so a file included twice is read once.
    done: HashSet<(PathBuf, Kind)>,
    wanted: Vec<Wanted>,
    constraints: Vec<Wanted>,
    /// Notes in reading order: (position, text).
    notes: Vec<(usize, String)>,
    /// Lines read so far (the position of the next note or requirement).
    position: usize,
}

impl<'e> Reader<'e> {
    fn new(environment: &'e Environment) -> Reader<'e> {
        Reader {
            environment,
            reading: Vec::new(),
            done: HashSet::new(),
            wanted: Vec::new(),
            constraints: Vec::new(),
            notes: Vec::new(),
            position: 0,
        }
    }

    fn file(&mut self, path: &Path, kind: Kind) -> anyhow::Result<()> {
        let shown = path.display().to_string();
        let canonical = std::fs::canonicalize(path).with_context(|| {
            match self.reading.last() {
                Some((_, parent)) => format!("{parent} includes {shown}, which cannot be read; fix the path (it is relative to the including file)"),
                None => format!("cannot read {shown}"),
            }
        })?;
        if let Some(at) = self
            .reading
            .iter()
            .position(|(reading, _)| *reading == canonical)
        {
            let chain: Vec<&str> = self.reading[at..]
                .iter()
                .map(|(_, shown)| shown.as_str())
                .collect();
            bail!(
                "{} → {shown} is a cycle of included files, which pip cannot read either; remove one of the -r/-c lines",
                chain.join(" → ")
            );
        }
        if !self.done.insert((canonical.clone(), kind)) {
            return Ok(());
        }
        let text = read_text(path)?;
        self.reading.push((canonical, shown));
        let read = self.text(&text, path, kind);
        self.reading.pop();
        read
    }

    fn note(&mut self, text: String) {
        self.notes.push((self.position, text));
    }

    fn text(&mut self, text: &str, path: &Path, kind: Kind) -> anyhow::Result<()> {
        let shown = path.display().to_string();
        for (number, line) in logical_lines(text) {
            let place = format!("{shown} line {number}");
            self.position += 1;
            self.line(&line, path, &place, kind)?;
        }
        Ok(())
    }

    fn line(&mut self, line: &str, path: &Path, place: &str, kind: Kind) -> anyhow::Result<()> {
        let (args, options) = split_args_options(line);
        let options = parse_options(&shell_words(&options))
            .with_context(|| format!("{place}: pip would stop here"))?;
        if !args.is_empty() {
            return self.requirement(&args, place, kind);
        }
        for (option, value) in options {
            match option {
                "requirement" => self.include(&value, path, place, Kind::Requirements)?,
                "constraint" => self.include(&value, path, place, Kind::Constraints)?,
                "editable" => self.note(format!(
                    "{place}: -e {value} is an editable install of a local folder or a VCS checkout, not a released version; not judged"
                )),
                _ => {}
            }
        }
        Ok(())
    }

    fn include(
        &mut self,
        target: &str,
        path: &Path,
        place: &str,
        kind: Kind,
    ) -> anyhow::Result<()> {
        let flag = if kind == Kind::Constraints {
            "-c"
        } else {
            "-r"
        };
        if target.starts_with("http://") || target.starts_with("https://") {
            self.note(format!(
                "{place}: {flag} {target} is a file on a server; Formulary does not download it. Save it and check it with --file"
            ));
            return Ok(());
        }
        let target = target.strip_prefix("file://").unwrap_or(target);
        let included = path
            .parent()
            .map_or_else(|| PathBuf::from(target), |folder| folder.join(target));
        self.file(&included, kind)
    }

    fn requirement(&mut self, text: &str, place: &str, kind: Kind) -> anyhow::Result<()> {
        // pep508_rs 0.9.2 panics on some invalid names instead of refusing them: check first.
        let parsed = match invalid_name(text) {
            Some(why) => Err(why.to_owned()),
            None => Requirement::<pep508_rs::VerbatimUrl>::from_str(text).map_err(|error| {
                error
                    .to_string()
                    .lines()
                    .next()
                    .unwrap_or("unreadable")
                    .to_owned()
            }),
        };
        let requirement = match parsed {
            Ok(requirement) => requirement,
            Err(why) => {
                let note = if looks_like_location(text) {
                    format!(
                        "{place}: '{}' is a local path or URL, not a released version; not judged",
                        printable(text)
                    )
                } else {
                    format!("{place}: '{}' is not a valid requirement ({why}); pip would refuse the file", printable(text))
                };
                self.note(note);
                return Ok(());
            }
        };
        if !self.environment.holds(&requirement.marker)? {
            let marker = text
                .split_once(';')
                .map(|(_, marker)| marker.trim().to_owned())
                .or_else(|| requirement.marker.try_to_string())
                .unwrap_or_default();
            self.note(format!(
                "{place}: '{}' is only for environments where {marker}, and markers were evaluated for {}; not judged",
                printable(text),
                self.environment.describe()?
            ));
            return Ok(());
        }
        let version = match &requirement.version_or_url {
            Some(VersionOrUrl::Url(url)) => {
                self.note(format!(
                    "{place}: {} comes from {url}, not from a package index; not judged",
                    requirement.name
                ));
                return Ok(());
            }
            Some(VersionOrUrl::VersionSpecifier(specifiers)) => match specifiers.as_ref() {
                [only] if matches!(only.operator(), Operator::Equal | Operator::ExactEqual) => {
                    Some(only.version().to_string())
                }
                _ => None,
            },
            None => None,
        };
        let wanted = Wanted {
            name: requirement.name.to_string(),
            version,
            place: place.to_owned(),
            text: text.to_owned(),
            order: self.position,
        };
        match kind {
            Kind::Requirements => self.wanted.push(wanted),
            Kind::Constraints => self.constraints.push(wanted),
        }
        Ok(())
    }

    /// Pins every requirement (by its own `==`, else by a constraint's) and says what was not.
    fn finish(mut self) -> Pins {
        let mut constrained: HashMap<&str, &Wanted> = HashMap::new();
        for constraint in &self.constraints {
            if constraint.version.is_some() {
                constrained
                    .entry(constraint.name.as_str())
                    .or_insert(constraint);
            }
        }
        let mut used: HashSet<&str> = HashSet::new();
        let mut found = Pins::default();
        let mut notes = std::mem::take(&mut self.notes);
        let mut seen = HashSet::new();
        for wanted in &self.wanted {
            let constraint = constrained.get(wanted.name.as_str());
            if constraint.is_some() {
                used.insert(wanted.name.as_str());
            }
            let version = match (&wanted.version, constraint) {
                (Some(own), Some(constraint)) => {
                    if constraint.version.as_ref() != Some(own) {
                        notes.push((wanted.order, format!(
                            "{}: '{}' conflicts with the constraint '{}' at {}; pip would refuse to install both",
                            wanted.place, printable(&wanted.text), printable(&constraint.text), constraint.place
                        )));
                    }
                    own
                }
                (Some(own), None) => own,
                (None, Some(constraint)) => constraint
                    .version
                    .as_ref()
                    .unwrap_or_else(|| unreachable!("only pinned constraints are kept")),
                (None, None) => {
                    notes.push((
                        wanted.order,
                        format!(
                            "{}: '{}' is not pinned with ==; pin it (pip freeze) to check it",
                            wanted.place,
                            printable(&wanted.text)
                        ),
                    ));
                    continue;
                }
            };
            match pin(Ecosystem::Pypi, &wanted.name, version) {
                Ok(pinned) => {
                    if seen.insert(pinned.to_string()) {
                        found.pins.push(pinned);
                    }
                }
                Err(error) => notes.push((wanted.order, format!("{}: {error}", wanted.place))),
            }
        }
        let unused: Vec<&str> = constrained
            .keys()
            .filter(|name| !used.contains(*name))
            .copied()
            .collect();
        if !unused.is_empty() {
            let mut names = unused;
            names.sort_unstable();
            let more = names.len().saturating_sub(5);
            let listed = names.iter().take(5).copied().collect::<Vec<_>>().join(", ");
            notes.push((usize::MAX, format!(
                "{} constraint{} pin packages no requirement names ({listed}{}); not judged here. A dependency that needs one gets exactly that version: check the constraints file itself with --file",
                names.len(),
                if names.len() == 1 { "" } else { "s" },
                if more > 0 { format!(" and {more} more") } else { String::new() }
            )));
        }
        notes.sort_by_key(|(order, _)| *order);
        found.skipped = notes.into_iter().map(|(_, text)| text).collect();
        found
    }
}

/// pip's `join_lines`, `ignore_comments` and `expand_env_variables`: logical lines with the number
/// of the physical line each starts on.
pub(super) fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut joined: Vec<(usize, String)> = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (index, line) in physical_lines(text).into_iter().enumerate() {
        let number = index + 1;
        let is_comment = line.trim_start().starts_with('#');
        if !line.ends_with('\\') || is_comment {
            let line = if is_comment {
                format!(" {line}")
            } else {
                line.to_owned()
            };
            match pending.take() {
                Some((start, mut so_far)) => {
                    so_far.push_str(&line);
                    joined.push((start, so_far));
                }
                None => joined.push((number, line)),
            }
        } else {
            let part = line.trim_matches('\\');
            match &mut pending {
                Some((_, so_far)) => so_far.push_str(part),
                None => pending = Some((number, part.to_owned())),
            }
        }
    }
    joined.extend(pending);
    joined
        .into_iter()
        .filter_map(|(number, line)| {
            let line = expand_variables(without_comment(&line).trim());
            (!line.is_empty()).then_some((number, line))
        })
        .collect()
}

/// Python's `str.splitlines()` for the line ends that occur in text files.
fn physical_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut rest = text;
    while let Some(end) = rest.find(['\n', '\r']) {
        lines.push(&rest[..end]);
        let skip = if rest[end..].starts_with("\r\n") {
            2
        } else {
            1
        };
        rest = &rest[end + skip..];
    }
    if !rest.is_empty() {
        lines.push(rest);
    }
    lines
}

/// Removes `(^|\s+)#.*$`: a `#` at the start or after white space begins a comment.
fn without_comment(line: &str) -> &str {
    let mut previous_is_space = true;
    for (index, character) in line.char_indices() {
        if character == '#' && previous_is_space {
            return &line[..index];
        }
        previous_is_space = character.is_whitespace();
    }
    line
}

/// Replaces `${NAME}` (upper-case letters, digits, `_`) with the environment variable, when set.
fn expand_variables(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let name_end = after
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(after.len());
        let name = &after[..name_end];
        match (after[name_end..].starts_with('}') && !name.is_empty())
            .then(|| std::env::var(name).ok().filter(|value| !value.is_empty()))
            .flatten()
        {
            Some(value) => {
                out.push_str(&value);
                rest = &after[name_end + 1..];
            }
            None => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// pip's `break_args_options`: words (split at single spaces) up to the first that starts with
/// `-` are the requirement; the rest are options.
fn split_args_options(line: &str) -> (String, String) {
    let tokens: Vec<&str> = line.split(' ').collect();
    let first_option = tokens
        .iter()
        .position(|token| token.starts_with('-'))
        .unwrap_or(tokens.len());
    (
        tokens[..first_option].join(" ").trim().to_owned(),
        tokens[first_option..].join(" "),
    )
}

/// `shlex.split`: words separated by white space, with quotes and backslash escapes.
fn shell_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut characters = text.chars();
    let mut quote: Option<char> = None;
    while let Some(character) = characters.next() {
        match (quote, character) {
            (Some(open), c) if c == open => quote = None,
            (Some('"') | None, '\\') => {
                if let Some(next) = characters.next() {
                    word.push(next);
                }
                in_word = true;
            }
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(character);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// The options a requirements file may hold: (short form, long form, takes a value).
const OPTIONS: [(Option<char>, &str, bool); 17] = [
    (Some('r'), "requirement", true),
    (Some('c'), "constraint", true),
    (Some('e'), "editable", true),
    (Some('i'), "index-url", true),
    (None, "extra-index-url", true),
    (None, "no-index", false),
    (Some('f'), "find-links", true),
    (None, "trusted-host", true),
    (None, "use-feature", true),
    (None, "only-binary", true),
    (None, "no-binary", true),
    (None, "prefer-binary", false),
    (None, "require-hashes", false),
    (None, "pre", false),
    (None, "hash", true),
    (None, "config-settings", true),
    (None, "global-option", true),
];

/// Reads options as Python's optparse does (`--name=value`, `--name value`, `-xvalue`, `-x value`,
/// unambiguous prefixes of long names): (long name, value).
fn parse_options(words: &[String]) -> anyhow::Result<Vec<(&'static str, String)>> {
    let mut found = Vec::new();
    let mut words = words.iter();
    while let Some(word) = words.next() {
        let (option, attached) = if let Some(long) = word.strip_prefix("--") {
            let (name, value) = match long.split_once('=') {
                Some((name, value)) => (name, Some(value.to_owned())),
                None => (long, None),
            };
            let exact = OPTIONS.iter().find(|(_, long, _)| *long == name);
            let candidates: Vec<_> = OPTIONS
                .iter()
                .filter(|(_, long, _)| long.starts_with(name))
                .collect();
            let option = match (exact, candidates.as_slice()) {
                (Some(option), _) => option,
                (None, [only]) if !name.is_empty() => *only,
                (None, []) => bail!("no such option: --{}", name.escape_debug()),
                (None, _) if name.is_empty() => bail!("no such option: --"),
                (None, _) => bail!("--{} is ambiguous", name.escape_debug()),
            };
            (option, value)
        } else if let Some(short) = word.strip_prefix('-') {
            let mut characters = short.chars();
            let letter = characters.next();
            let Some(option) = OPTIONS
                .iter()
                .find(|(short, _, _)| short.is_some() && *short == letter)
            else {
                bail!("no such option: {}", word.escape_debug());
            };
            let rest: String = characters.collect();
            (option, (!rest.is_empty()).then_some(rest))
        } else {
            bail!(
                "'{}' is not an option; a requirement must come before the options on its line",
                word.escape_debug()
            );
        };
        let (_, long, takes_value) = *option;
        let value = match (takes_value, attached) {
            (true, Some(value)) => value,
            (true, None) => words
                .next()
                .cloned()
                .with_context(|| format!("--{long} needs a value"))?,
            (false, None) => String::new(),
            (false, Some(_)) => bail!("--{long} takes no value"),
        };
        found.push((long, value));
    }
    Ok(found)
}

/// Names that `pep508_rs` 0.9.2 would panic on rather than refuse: a package or extra name that
/// ends in `-`, `_` or `.` before another character (`foo- ==1`, `foo[a-]`).
fn invalid_name(text: &str) -> Option<&'static str> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let ends_badly = |name: &str| name.ends_with(['-', '_', '.']);
    let text = text.trim_start();
    let name_end = text.find(|c: char| !is_name(c)).unwrap_or(text.len());
    if ends_badly(&text[..name_end]) {
        return Some("a package name must end with a letter or digit");
    }
    let rest = text[name_end..].trim_start();
    let extras = rest.strip_prefix('[')?;
    let extras = extras.split(']').next().unwrap_or_default();
    extras
        .split(',')
        .map(str::trim_start)
        .any(|extra| ends_badly(&extra[..extra.find(|c: char| !is_name(c)).unwrap_or(extra.len())]))
        .then_some("an extra's name must end with a letter or digit")
}

/// A requirement pip would take as a path or URL rather than a name.
fn looks_like_location(text: &str) -> bool {
    let first = text.split([' ', ';']).next().unwrap_or_default();
    first.contains("://")
        || first.contains('/')
        || first.contains('\\')
        || first.starts_with('.')
        || [".whl", ".zip", ".tar.gz", ".tgz", ".tar", ".tar.bz2"]
            .iter()
            .any(|ending| first.to_ascii_lowercase().ends_with(ending))
}

#[cfg(test)]
#[path = "requirements_tests.rs"]
pub(super) mod tests;
