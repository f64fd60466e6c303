use crate::ecosystem::Ecosystem;
use crate::name::PackageName;
use crate::version::Version;

/// Longest distribution file name accepted.
const MAX_FILENAME_LENGTH: usize = 255;

const SDIST_SUFFIXES: [&str; 5] = [".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar.xz"];

/// Legacy distribution formats PyPI still lists (eggs and Windows installers) that neither pip
/// nor uv installs. The gateway drops them unless `pypi_legacy_files` is on.
const LEGACY_SUFFIXES: [&str; 3] = [".egg", ".exe", ".msi"];

/// Platform tags that follow the version in a legacy installer's name
/// (`numpy-1.6.0.win32-py2.7.exe`).
const LEGACY_PLATFORMS: [&str; 4] = ["win", "linux", "macosx", "cygwin"];

/// True for a legacy distribution file (`.egg`, `.exe`, `.msi`).
pub fn is_legacy_distribution(filename: &str) -> bool {
    let lower = filename.to_ascii_lowercase();
    LEGACY_SUFFIXES.iter().any(|suffix| lower.ends_with(suffix))
}

/// Checks that a file name is safe to use as one path segment and looks like a distribution:
/// no separators, no control characters, no leading dot, a known extension.
pub fn check_filename(filename: &str) -> Result<(), &'static str> {
    if filename.is_empty() || filename.len() > MAX_FILENAME_LENGTH {
        return Err("a file name must have 1 to 255 characters");
    }
    if filename.starts_with('.')
        || filename.contains(['/', '\\', ':'])
        || filename.chars().any(char::is_control)
    {
        return Err(
            "a file name must not contain separators or control characters, or start with '.'",
        );
    }
    let lower = filename.to_ascii_lowercase();
    if !(lower.ends_with(".whl")
        || SDIST_SUFFIXES.iter().any(|suffix| lower.ends_with(suffix))
        || is_legacy_distribution(&lower))
    {
        return Err("only Python distributions (.whl, .tar.gz, .zip and the legacy .egg, .exe, .msi) are served");
    }
    Ok(())
}

/// The version a distribution's file name carries, for a given project: wheels
/// (`name-version-…-tag.whl`, PEP 427) and sdists (`name-version.tar.gz`). `None` when the name
/// does not belong to the project or the version is not PEP 440.
pub fn version_from_filename(project: &PackageName, filename: &str) -> Option<Version> {
    let lower = filename.to_ascii_lowercase();
    if is_legacy_distribution(&lower) {
        return legacy_version(project, &lower);
    }
    let (stem, is_wheel) = if let Some(stem) = lower.strip_suffix(".whl") {
        (stem, true)
    } else {
        let suffix = SDIST_SUFFIXES
            .iter()
            .find(|suffix| lower.ends_with(*suffix))?;
        (&lower[..lower.len() - suffix.len()], false)
    };
    let (name, version) = if is_wheel {
        let mut parts = stem.split('-');
        (parts.next()?, parts.next()?)
    } else {
        // The name may itself contain '-': take the split whose prefix names the project.
        let split = stem
            .char_indices()
            .filter(|(_, c)| *c == '-')
            .map(|(index, _)| index)
            .find(|index| {
                PackageName::new(Ecosystem::Pypi, &stem[..*index])
                    .is_ok_and(|name| &name == project)
            })?;
        (&stem[..split], &stem[split + 1..])
    };
    let name = PackageName::new(Ecosystem::Pypi, name).ok()?;
    if &name != project {
        return None;
    }
    Version::parse(Ecosystem::Pypi, version).ok()
}

/// The version of a legacy file: eggs are `name-version(-pyX.Y(-platform))?.egg`, installers
/// `name-version.platform(-pyX.Y)?.exe|msi`.
fn legacy_version(project: &PackageName, lower: &str) -> Option<Version> {
    let suffix = LEGACY_SUFFIXES
        .iter()
        .find(|suffix| lower.ends_with(*suffix))?;
    let stem = &lower[..lower.len() - suffix.len()];
    let split = stem
        .char_indices()
        .filter(|(_, c)| *c == '-')
        .map(|(index, _)| index)
        .find(|index| {
            PackageName::new(Ecosystem::Pypi, &stem[..*index]).is_ok_and(|name| &name == project)
        })?;
    let rest = &stem[split + 1..];
    if *suffix == ".egg" {
        return Version::parse(Ecosystem::Pypi, rest.split('-').next()?).ok();
    }
    // Installers: drop a trailing `-pyX.Y`, then the `.platform` after the version.
    let rest = match rest.rsplit_once("-py") {
        Some((head, tail)) if tail.chars().all(|c| c.is_ascii_digit() || c == '.') => head,
        _ => rest,
    };
    let rest = rest.split('-').next()?;
    rest.char_indices()
        .filter(|(_, c)| *c == '.')
        .map(|(index, _)| index)
        .find(|index| {
            LEGACY_PLATFORMS
                .iter()
                .any(|platform| rest[index + 1..].starts_with(platform))
        })
        .and_then(|index| Version::parse(Ecosystem::Pypi, &rest[..index]).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(name: &str) -> PackageName {
        PackageName::new(Ecosystem::Pypi, name).unwrap()
    }

    #[test]
    fn versions_come_from_wheel_and_sdist_names() {
        let v = |project_name: &str, file: &str| {
            version_from_filename(&project(project_name), file).map(|version| version.to_string())
        };
        assert_eq!(
            v("requests", "requests-2.32.3-py3-none-any.whl").as_deref(),
            Some("2.32.3")
        );
        assert_eq!(
            v("requests", "requests-2.19.1.tar.gz").as_deref(),
            Some("2.19.1")
        );
        assert_eq!(
            v(
                "zope-interface",
                "zope.interface-6.0-cp311-cp311-manylinux.whl"
            )
            .as_deref(),
            Some("6.0")
        );
        assert_eq!(
            v("python-dateutil", "python-dateutil-2.9.0.post0.tar.gz").as_deref(),
            Some("2.9.0.post0")
        );
        assert_eq!(
            v("requests", "urllib3-2.0.0-py3-none-any.whl"),
            None,
            "another project's file"
        );
    }

    #[test]
    fn legacy_eggs_and_installers_carry_their_versions() {
        let v = |project_name: &str, file: &str| {
            version_from_filename(&project(project_name), file).map(|version| version.to_string())
        };
        assert_eq!(
            v("requests", "requests-2.23.0-py2.7.egg").as_deref(),
            Some("2.23.0")
        );
        assert_eq!(
            v("numpy", "numpy-1.6.0.win32-py2.7.exe").as_deref(),
            Some("1.6.0")
        );
        assert_eq!(
            v("numpy", "numpy-1.5.1.win32-py2.6-nosse.exe").as_deref(),
            Some("1.5.1")
        );
        assert_eq!(
            v("numpy", "numpy-1.0.1.dev3460.win32-py2.4.exe").as_deref(),
            Some("1.0.1.dev3460")
        );
        assert_eq!(
            v("pywin32", "pywin32-306.win-amd64-py3.12.exe").as_deref(),
            Some("306")
        );
        assert_eq!(
            v("numpy", "numpy-setup.exe"),
            None,
            "an installer without a version is not guessed at"
        );
        assert!(is_legacy_distribution("numpy-1.6.0.win32-py2.7.exe"));
        assert!(!is_legacy_distribution("numpy-1.6.0.tar.gz"));
    }

    #[test]
    fn hostile_file_names_are_refused() {
        for bad in [
            "../x.whl",
            "a/b.whl",
            ".hidden.whl",
            "x.dll",
            "x\n.whl",
            "",
            "C:x.whl",
        ] {
            assert!(check_filename(bad).is_err(), "{bad:?}");
        }
        assert!(check_filename("requests-2.32.3-py3-none-any.whl").is_ok());
    }
}
