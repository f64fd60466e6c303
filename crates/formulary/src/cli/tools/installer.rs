//! Per-user installers: a tool file of kind `installer` carries the arguments that install it for
//! the person only (its per-user recipe, `{prefix}` standing for the version's folder in their
//! profile). `formulary tools install` runs it with exactly those arguments, as the person, and
//! never asks for elevation: no `sudo`, no `runas`; on Windows the installer is started directly
//! (not through the shell, which is what shows an elevation prompt) with
//! `__COMPAT_LAYER=RunAsInvoker`, so one whose manifest asks for administrator rights runs with
//! the person's own rights instead of prompting.

use std::path::{Path, PathBuf};

use formulary_store::PREFIX_PLACEHOLDER;

/// How an installer is run: the program, its arguments and extra environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InstallerRun {
    /// The program started (the installer itself, `sh` for a shell script, `msiexec` for an MSI).
    pub program: PathBuf,
    /// Its arguments, the recipe's with `{prefix}` replaced.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub environment: Vec<(String, String)>,
}

/// The run of `installer` (downloaded as `filename`) with `recipe` into `prefix` on `os`
/// (`std::env::consts::OS`), or why it cannot be run.
pub(crate) fn plan(
    os: &str,
    installer: &Path,
    filename: &str,
    recipe: &[String],
    prefix: &Path,
) -> Result<InstallerRun, String> {
    if recipe.is_empty() {
        return Err("it has no per-user recipe".to_owned());
    }
    let prefix = prefix.display().to_string();
    let mut args: Vec<String> = recipe
        .iter()
        .map(|argument| argument.replace(PREFIX_PLACEHOLDER, &prefix))
        .collect();
    let lower = filename.to_ascii_lowercase();
    let mut environment = Vec::new();
    let program = if os == "windows" {
        environment.push(("__COMPAT_LAYER".to_owned(), "RunAsInvoker".to_owned()));
        if lower.ends_with(".msi") {
            args.splice(0..0, ["/i".to_owned(), installer.display().to_string()]);
            PathBuf::from("msiexec")
        } else if lower.ends_with(".exe") {
            installer.to_path_buf()
        } else {
            return Err(format!("{filename} is neither an .exe nor an .msi"));
        }
    } else if lower.ends_with(".sh") {
        args.insert(0, installer.display().to_string());
        PathBuf::from("sh")
    } else if lower.ends_with(".pkg") || lower.ends_with(".msi") || lower.ends_with(".exe") {
        return Err(format!("{filename} is not an installer for {os}"));
    } else {
        installer.to_path_buf()
    };
    Ok(InstallerRun {
        program,
        args,
        environment,
    })
}

/// Runs the installer and waits; `Err` holds what it printed last, for the person.
pub(crate) fn run(installer: &InstallerRun) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if installer.program.is_absolute() {
            std::fs::set_permissions(&installer.program, std::fs::Permissions::from_mode(0o700))
                .map_err(|error| format!("could not make it runnable: {error}"))?;
        }
    }
    let output = std::process::Command::new(&installer.program)
        .args(&installer.args)
        .envs(installer.environment.iter().cloned())
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|error| match error.raw_os_error() {
            // ERROR_ELEVATION_REQUIRED: Windows refused to start it without admin rights.
            Some(740) if cfg!(windows) => "it asks for administrator rights even for a per-user install, so it was not started".to_owned(),
            _ => format!("could not start {}: {error}", installer.program.display()),
        })?;
    if output.status.success() {
        return Ok(());
    }
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let tail: Vec<&str> = printed.lines().rev().take(12).collect();
    Err(format!(
        "it ended with {}; its last lines:\n{}",
        output.status,
        tail.into_iter()
            .rev()
            .map(|line| format!("    {line}"))
            .collect::<Vec<_>>()
            .join("\n")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe(arguments: &[&str]) -> Vec<String> {
        arguments
            .iter()
            .map(|argument| (*argument).to_owned())
            .collect()
    }

    #[test]
    fn an_inno_setup_installer_runs_itself_for_the_current_user() {
        let prefix = Path::new(r"C:\Users\Jane Doe\AppData\Local\formulary\tools\git\2.47.1");
        let run = plan(
            "windows",
            Path::new(r"C:\Users\Jane Doe\AppData\Local\formulary\tools\git-setup.exe"),
            "Git-2.47.1-64-bit.exe",
            &recipe(&["/CURRENTUSER", "/VERYSILENT", "/NORESTART", "/DIR={prefix}"]),
            prefix,
        )
        .expect("a plan");
        assert_eq!(
            run.program,
            Path::new(r"C:\Users\Jane Doe\AppData\Local\formulary\tools\git-setup.exe")
        );
        assert_eq!(
            run.args,
            [
                "/CURRENTUSER",
                "/VERYSILENT",
                "/NORESTART",
                r"/DIR=C:\Users\Jane Doe\AppData\Local\formulary\tools\git\2.47.1"
            ]
        );
        assert_eq!(
            run.environment,
            [("__COMPAT_LAYER".to_owned(), "RunAsInvoker".to_owned())]
        );
    }

    #[test]
    fn an_msi_runs_through_msiexec_per_user() {
        let run = plan(
            "windows",
            Path::new(r"C:\t\tool.msi"),
            "Tool-1.0.MSI",
            &recipe(&[
                "/qn",
                "ALLUSERS=2",
                "MSIINSTALLPERUSER=1",
                "INSTALLDIR={prefix}",
            ]),
            Path::new(r"C:\p"),
        )
        .expect("a plan");
        assert_eq!(run.program, Path::new("msiexec"));
        assert_eq!(
            run.args,
            [
                "/i",
                r"C:\t\tool.msi",
                "/qn",
                "ALLUSERS=2",
                "MSIINSTALLPERUSER=1",
                r"INSTALLDIR=C:\p"
            ]
        );
    }

    #[test]
    fn a_shell_installer_runs_with_sh_and_its_recipe() {
        let run = plan(
            "linux",
            Path::new("/home/jane/.local/share/formulary/tools/.download"),
            "Miniforge3-Linux-x86_64.sh",
            &recipe(&["-b", "-p", "{prefix}"]),
            Path::new("/home/jane/.local/share/formulary/tools/miniforge/24.11.3-0"),
        )
        .expect("a plan");
        assert_eq!(run.program, Path::new("sh"));
        assert_eq!(
            run.args,
            [
                "/home/jane/.local/share/formulary/tools/.download",
                "-b",
                "-p",
                "/home/jane/.local/share/formulary/tools/miniforge/24.11.3-0"
            ]
        );
        assert!(run.environment.is_empty());
    }

    #[test]
    fn no_recipe_or_the_wrong_platform_is_refused() {
        let prefix = Path::new("/p");
        assert!(plan("linux", Path::new("/i"), "x.sh", &[], prefix).is_err());
        assert!(plan(
            "linux",
            Path::new("/i"),
            "Git-2.47.1-64-bit.exe",
            &recipe(&["/DIR={prefix}"]),
            prefix
        )
        .is_err());
        assert!(plan(
            "windows",
            Path::new("/i"),
            "x.sh",
            &recipe(&["{prefix}"]),
            prefix
        )
        .is_err());
    }
}
