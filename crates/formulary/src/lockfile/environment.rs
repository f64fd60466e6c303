//! The environment that PEP 508 markers (`; python_version < "3.8"`) are evaluated against: the
//! one declared on the command line (`--python-version`, `--platform`), else this machine's
//! `python3`, as pip evaluates them against the interpreter it runs in. It is worked out only
//! when a marker needs it, so files without markers never run Python.

use std::cell::OnceCell;
use std::process::Command;

use anyhow::{bail, Context};
use pep508_rs::{MarkerEnvironment, MarkerEnvironmentBuilder, MarkerTree};

/// An operating system a marker environment can be declared for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// Linux (`sys_platform == "linux"`).
    Linux,
    /// Windows (`sys_platform == "win32"`).
    Windows,
    /// macOS (`sys_platform == "darwin"`).
    Macos,
}

impl Platform {
    /// Reads `linux`, `windows` or `macos` (also `win32`, `darwin`).
    pub fn parse(text: &str) -> anyhow::Result<Platform> {
        Ok(match text.to_ascii_lowercase().as_str() {
            "linux" => Platform::Linux,
            "windows" | "win32" | "win" => Platform::Windows,
            "macos" | "darwin" | "mac" | "osx" => Platform::Macos,
            _ => bail!(
                "'{}' is not a platform Formulary knows; use linux, windows or macos",
                text.escape_debug()
            ),
        })
    }

    /// The platform this program runs on.
    fn current() -> Platform {
        match std::env::consts::OS {
            "windows" => Platform::Windows,
            "macos" => Platform::Macos,
            _ => Platform::Linux,
        }
    }

    /// (`os_name`, `sys_platform`, `platform_system`, `platform_machine`) as CPython reports them.
    fn markers(self) -> (&'static str, &'static str, &'static str, &'static str) {
        let arm = std::env::consts::ARCH == "aarch64";
        match self {
            Platform::Linux => (
                "posix",
                "linux",
                "Linux",
                if arm { "aarch64" } else { "x86_64" },
            ),
            Platform::Windows => (
                "nt",
                "win32",
                "Windows",
                if arm { "ARM64" } else { "AMD64" },
            ),
            Platform::Macos => (
                "posix",
                "darwin",
                "Darwin",
                if arm { "arm64" } else { "x86_64" },
            ),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Platform::Linux => "linux",
            Platform::Windows => "windows",
            Platform::Macos => "macos",
        }
    }
}

/// Asks an interpreter for every marker variable, as `packaging.markers.default_environment()`
/// computes them.
const PROBE: &str = r#"
import json, os, platform, sys
def fmt(info):
    version = "{0.major}.{0.minor}.{0.micro}".format(info)
    if info.releaselevel != "final":
        version += info.releaselevel[0] + str(info.serial)
    return version
print(json.dumps({
    "implementation_name": sys.implementation.name,
    "implementation_version": fmt(sys.implementation.version),
    "os_name": os.name,
    "platform_machine": platform.machine(),
    "platform_python_implementation": platform.python_implementation(),
    "platform_release": platform.release(),
    "platform_system": platform.system(),
    "platform_version": platform.version(),
    "python_full_version": platform.python_version(),
    "python_version": ".".join(platform.python_version_tuple()[:2]),
    "sys_platform": sys.platform,
}))
"#;

/// Where markers are evaluated: declared parts, and the rest from this machine's Python.
#[derive(Debug, Default)]
pub struct Environment {
    python_version: Option<String>,
    platform: Option<Platform>,
    resolved: OnceCell<Result<(MarkerEnvironment, String), String>>,
}

impl Environment {
    /// An environment declared by `--python-version` (`3.12` or `3.12.4`) and `--platform`;
    /// what is not declared comes from this machine (its `python3`, its operating system).
    pub fn declared(python_version: Option<String>, platform: Option<Platform>) -> Environment {
        Environment {
            python_version,
            platform,
            resolved: OnceCell::new(),
        }
    }

    /// An environment fixed in advance (for tests).
    pub fn fixed(markers: MarkerEnvironment, description: &str) -> Environment {
        let resolved = OnceCell::new();
        let _ = resolved.set(Ok((markers, description.to_owned())));
        Environment {
            python_version: None,
            platform: None,
            resolved,
        }
    }

    /// True when the marker holds in this environment. Errors when the environment cannot be
    /// worked out (no Python declared or found).
    pub fn holds(&self, marker: &MarkerTree) -> anyhow::Result<bool> {
        if marker.is_true() {
            return Ok(true);
        }
        Ok(marker.evaluate(&self.resolve()?.0, &[]))
    }

    /// Says which environment markers were evaluated against ("Python 3.12 on linux, declared").
    pub fn describe(&self) -> anyhow::Result<&str> {
        Ok(self.resolve()?.1.as_str())
    }

    fn resolve(&self) -> anyhow::Result<&(MarkerEnvironment, String)> {
        self.resolved
            .get_or_init(|| self.work_out().map_err(|error| format!("{error:#}")))
            .as_ref()
            .map_err(|error| anyhow::anyhow!("{error}"))
    }

    fn work_out(&self) -> anyhow::Result<(MarkerEnvironment, String)> {
        let probed = if self.python_version.is_none() {
            Some(probe().context(
                "environment markers (`; python_version < \"3.8\"`) need a Python to be evaluated against, and none could be asked; declare one with --python-version 3.12 (and --platform linux|windows|macos)",
            )?)
        } else {
            None
        };
        let platform = self
            .platform
            .or_else(|| probed.is_none().then(Platform::current));
        let (full, short) = match (&self.python_version, &probed) {
            (Some(declared), _) => {
                let parts: Vec<&str> = declared.split('.').collect();
                if !(2..=3).contains(&parts.len())
                    || parts.iter().any(|part| part.parse::<u32>().is_err())
                {
                    bail!(
                        "--python-version '{}' is not a Python version; write it as 3.12 or 3.12.4",
                        declared.escape_debug()
                    );
                }
                let full = if parts.len() == 2 {
                    format!("{declared}.0")
                } else {
                    declared.clone()
                };
                (full, format!("{}.{}", parts[0], parts[1]))
            }
            (None, Some(probed)) => (
                probed["python_full_version"].clone(),
                probed["python_version"].clone(),
            ),
            (None, None) => unreachable!("probed when no version is declared"),
        };
        let text = |key: &str, declared: &'static str| -> String {
            match (&probed, platform) {
                (Some(probed), None) => probed.get(key).cloned().unwrap_or_default(),
                _ => declared.to_owned(),
            }
        };
        let (os_name, sys_platform, platform_system, machine) =
            platform.unwrap_or_else(Platform::current).markers();
        let implementation_version = match &probed {
            Some(probed) if self.python_version.is_none() => {
                probed["implementation_version"].clone()
            }
            _ => full.clone(),
        };
        let os_name = text("os_name", os_name);
        let sys_platform = text("sys_platform", sys_platform);
        let platform_system = text("platform_system", platform_system);
        let platform_machine = text("platform_machine", machine);
        let platform_release = text("platform_release", "");
        let platform_version = text("platform_version", "");
        let (implementation_name, python_implementation) = match &probed {
            Some(probed) => (
                probed["implementation_name"].clone(),
                probed["platform_python_implementation"].clone(),
            ),
            None => ("cpython".to_owned(), "CPython".to_owned()),
        };
        let markers = MarkerEnvironment::try_from(MarkerEnvironmentBuilder {
            implementation_name: &implementation_name,
            implementation_version: &implementation_version,
            os_name: &os_name,
            platform_machine: &platform_machine,
            platform_python_implementation: &python_implementation,
            platform_release: &platform_release,
            platform_system: &platform_system,
            platform_version: &platform_version,
            python_full_version: &full,
            python_version: &short,
            sys_platform: &sys_platform,
        })
        .context("the Python version could not be read as a PEP 440 version")?;
        let platform_name = platform.map_or_else(
            || sys_platform.clone(),
            |platform| platform.name().to_owned(),
        );
        let source = match (&self.python_version, self.platform) {
            (Some(_), Some(_)) => "declared",
            (Some(_), None) => "declared; the platform is this machine's",
            (None, Some(_)) => "the platform declared; the Python is this machine's python3",
            (None, None) => "this machine's python3",
        };
        Ok((
            markers,
            format!("Python {full} on {platform_name} ({platform_machine}), {source}"),
        ))
    }
}

/// Runs `python3` (or `python`) to read its marker variables.
fn probe() -> anyhow::Result<std::collections::HashMap<String, String>> {
    let mut failures = Vec::new();
    for program in ["python3", "python"] {
        match Command::new(program).args(["-c", PROBE]).output() {
            Ok(output) if output.status.success() => {
                return serde_json::from_slice(&output.stdout).with_context(|| {
                    format!("{program} answered something other than the marker variables")
                });
            }
            Ok(output) => failures.push(format!(
                "{program} failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )),
            Err(error) => failures.push(format!("{program}: {error}")),
        }
    }
    bail!("{}", failures.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declared_environment_decides_markers_without_python() {
        let environment = Environment::declared(Some("3.7".to_owned()), Some(Platform::Windows));
        let old: MarkerTree = "python_version < '3.8' and sys_platform == 'win32'"
            .parse()
            .expect("marker");
        let linux: MarkerTree = "sys_platform == 'linux'".parse().expect("marker");
        assert!(environment.holds(&old).expect("evaluated"));
        assert!(!environment.holds(&linux).expect("evaluated"));
        assert_eq!(
            environment.describe().expect("described"),
            "Python 3.7.0 on windows (AMD64), declared"
                .replace("AMD64", Platform::Windows.markers().3)
        );
    }

    #[test]
    fn a_bad_declared_version_says_how_to_write_it() {
        let environment = Environment::declared(Some("three".to_owned()), None);
        let marker: MarkerTree = "python_version < '3.8'".parse().expect("marker");
        let error = environment.holds(&marker).expect_err("refused");
        assert!(error.to_string().contains("3.12.4"), "{error}");
    }
}
