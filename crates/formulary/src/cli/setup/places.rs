//! Where each client keeps its user-level configuration, on Linux, macOS and Windows. The
//! environment (platform, home folder, variables, which folders exist) is passed in, so every
//! platform's answer is unit-tested on any machine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// An operating system family, as the clients tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Platform {
    /// Linux and other Unix systems (XDG folders).
    Linux,
    /// macOS.
    MacOs,
    /// Windows.
    Windows,
}

/// The person's environment: enough to say where each client reads its settings.
#[derive(Debug, Clone)]
pub(crate) struct Places {
    platform: Platform,
    home: PathBuf,
    variables: BTreeMap<String, String>,
    existing: Vec<PathBuf>,
}

/// The variables the paths below depend on.
const VARIABLES: [&str; 9] = [
    "XDG_CONFIG_HOME",
    "APPDATA",
    "USERPROFILE",
    "R_PROFILE_USER",
    "R_USER",
    "NPM_CONFIG_USERCONFIG",
    "NETRC",
    "CONDARC",
    "FORMULARY_CONFIG_DIR",
];

impl Places {
    /// The environment of this process.
    pub(crate) fn current() -> anyhow::Result<Places> {
        let platform = if cfg!(windows) {
            Platform::Windows
        } else if cfg!(target_os = "macos") {
            Platform::MacOs
        } else {
            Platform::Linux
        };
        let home_variable = if platform == Platform::Windows {
            "USERPROFILE"
        } else {
            "HOME"
        };
        let home = std::env::var_os(home_variable)
            .filter(|home| !home.is_empty())
            .map(PathBuf::from)
            .ok_or_else(|| {
                anyhow::anyhow!("{home_variable} is not set, so there is no home folder to configure; set it to your home folder and run setup again")
            })?;
        let variables = VARIABLES
            .iter()
            .filter_map(|name| {
                std::env::var(name)
                    .ok()
                    .map(|value| ((*name).to_owned(), value))
            })
            .collect();
        let pip_macos = home.join("Library/Application Support/pip");
        let existing = [pip_macos]
            .into_iter()
            .filter(|path| path.is_dir())
            .collect();
        Ok(Places::new(platform, home, variables, existing))
    }

    /// An environment described by the caller (tests).
    pub(crate) fn new(
        platform: Platform,
        home: PathBuf,
        variables: BTreeMap<String, String>,
        existing: Vec<PathBuf>,
    ) -> Places {
        Places {
            platform,
            home,
            variables,
            existing,
        }
    }

    fn variable(&self, name: &str) -> Option<PathBuf> {
        self.variables
            .get(name)
            .filter(|value| !value.is_empty())
            .map(PathBuf::from)
    }

    /// `%APPDATA%` on Windows (its usual place when the variable is missing).
    fn app_data(&self) -> PathBuf {
        self.variable("APPDATA")
            .unwrap_or_else(|| self.home.join("AppData").join("Roaming"))
    }

    /// `$XDG_CONFIG_HOME`, else `~/.config`.
    fn xdg_config(&self) -> PathBuf {
        self.variable("XDG_CONFIG_HOME")
            .filter(|path| path.is_absolute() || self.platform == Platform::Windows)
            .unwrap_or_else(|| self.home.join(".config"))
    }

    /// pip's user file: `%APPDATA%\pip\pip.ini`; on macOS
    /// `~/Library/Application Support/pip/pip.conf` when that folder exists, else the XDG one;
    /// `$XDG_CONFIG_HOME/pip/pip.conf` (default `~/.config/pip/pip.conf`) elsewhere.
    pub(crate) fn pip(&self) -> PathBuf {
        match self.platform {
            Platform::Windows => self.app_data().join("pip").join("pip.ini"),
            Platform::MacOs => {
                let native = self.home.join("Library/Application Support/pip");
                if self.existing.contains(&native) {
                    native.join("pip.conf")
                } else {
                    self.xdg_config().join("pip").join("pip.conf")
                }
            }
            Platform::Linux => self.xdg_config().join("pip").join("pip.conf"),
        }
    }

    /// uv's user file: `%APPDATA%\uv\uv.toml` on Windows, `$XDG_CONFIG_HOME/uv/uv.toml`
    /// (default `~/.config/uv/uv.toml`) on macOS and Linux.
    pub(crate) fn uv(&self) -> PathBuf {
        match self.platform {
            Platform::Windows => self.app_data().join("uv").join("uv.toml"),
            Platform::MacOs | Platform::Linux => self.xdg_config().join("uv").join("uv.toml"),
        }
    }

    /// R's user profile: `R_PROFILE_USER`, else `.Rprofile` in R's home folder (`R_USER`, else
    /// the Documents folder on Windows; the home folder elsewhere).
    pub(crate) fn r_profile(&self) -> PathBuf {
        if let Some(path) = self.variable("R_PROFILE_USER") {
            return path;
        }
        match self.platform {
            Platform::Windows => self
                .variable("R_USER")
                .unwrap_or_else(|| self.home.join("Documents"))
                .join(".Rprofile"),
            Platform::MacOs | Platform::Linux => self.home.join(".Rprofile"),
        }
    }

    /// npm's and pnpm's user file: `NPM_CONFIG_USERCONFIG`, else `~/.npmrc`.
    pub(crate) fn npmrc(&self) -> PathBuf {
        self.variable("NPM_CONFIG_USERCONFIG")
            .unwrap_or_else(|| self.home.join(".npmrc"))
    }

    /// Yarn's (Berry) user file: `~/.yarnrc.yml`.
    pub(crate) fn yarnrc(&self) -> PathBuf {
        self.home.join(".yarnrc.yml")
    }

    /// conda's user file: `CONDARC`, else `~/.condarc`.
    pub(crate) fn condarc(&self) -> PathBuf {
        self.variable("CONDARC")
            .unwrap_or_else(|| self.home.join(".condarc"))
    }

    /// The netrc file pip, uv, conda and curl read: `NETRC`, else `~/_netrc` on Windows and
    /// `~/.netrc` elsewhere.
    pub(crate) fn netrc(&self) -> PathBuf {
        self.variable("NETRC")
            .unwrap_or_else(|| match self.platform {
                Platform::Windows => self.home.join("_netrc"),
                Platform::MacOs | Platform::Linux => self.home.join(".netrc"),
            })
    }

    /// Formulary's own folder (the credential, the record of what setup changed):
    /// `FORMULARY_CONFIG_DIR`, else `%APPDATA%\formulary` on Windows, else
    /// `$XDG_CONFIG_HOME/formulary` (default `~/.config/formulary`).
    pub(crate) fn formulary(&self) -> PathBuf {
        if let Some(path) = self.variable("FORMULARY_CONFIG_DIR") {
            return path;
        }
        match self.platform {
            Platform::Windows => self.app_data().join("formulary"),
            Platform::MacOs | Platform::Linux => self.xdg_config().join("formulary"),
        }
    }

    /// Shortens a path under the home folder to `~/…` for messages.
    pub(crate) fn show(&self, path: &Path) -> String {
        match path.strip_prefix(&self.home) {
            Ok(rest) => format!("~/{}", rest.display()),
            Err(_) => path.display().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn places(platform: Platform, home: &str, variables: &[(&str, &str)]) -> Places {
        Places::new(
            platform,
            PathBuf::from(home),
            variables
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
            Vec::new(),
        )
    }

    #[test]
    fn linux_paths_follow_xdg() {
        let linux = places(Platform::Linux, "/home/ana", &[]);
        assert_eq!(linux.pip(), Path::new("/home/ana/.config/pip/pip.conf"));
        assert_eq!(linux.uv(), Path::new("/home/ana/.config/uv/uv.toml"));
        assert_eq!(linux.r_profile(), Path::new("/home/ana/.Rprofile"));
        assert_eq!(linux.npmrc(), Path::new("/home/ana/.npmrc"));
        assert_eq!(linux.yarnrc(), Path::new("/home/ana/.yarnrc.yml"));
        assert_eq!(linux.condarc(), Path::new("/home/ana/.condarc"));
        assert_eq!(linux.netrc(), Path::new("/home/ana/.netrc"));
        assert_eq!(linux.formulary(), Path::new("/home/ana/.config/formulary"));
        let custom = places(
            Platform::Linux,
            "/home/ana",
            &[
                ("XDG_CONFIG_HOME", "/srv/ana/config"),
                ("R_PROFILE_USER", "/srv/ana/Rprofile"),
                ("NPM_CONFIG_USERCONFIG", "/srv/ana/npmrc"),
                ("NETRC", "/srv/ana/netrc"),
            ],
        );
        assert_eq!(custom.pip(), Path::new("/srv/ana/config/pip/pip.conf"));
        assert_eq!(custom.uv(), Path::new("/srv/ana/config/uv/uv.toml"));
        assert_eq!(custom.r_profile(), Path::new("/srv/ana/Rprofile"));
        assert_eq!(custom.npmrc(), Path::new("/srv/ana/npmrc"));
        assert_eq!(custom.netrc(), Path::new("/srv/ana/netrc"));
        // A relative XDG_CONFIG_HOME is invalid by the XDG specification and ignored.
        let relative = places(Platform::Linux, "/home/ana", &[("XDG_CONFIG_HOME", "cfg")]);
        assert_eq!(relative.uv(), Path::new("/home/ana/.config/uv/uv.toml"));
        assert_eq!(linux.show(&linux.pip()), "~/.config/pip/pip.conf");
    }

    #[test]
    fn macos_pip_uses_application_support_only_when_it_exists() {
        let plain = places(Platform::MacOs, "/Users/ana", &[]);
        assert_eq!(plain.pip(), Path::new("/Users/ana/.config/pip/pip.conf"));
        assert_eq!(plain.uv(), Path::new("/Users/ana/.config/uv/uv.toml"));
        assert_eq!(plain.r_profile(), Path::new("/Users/ana/.Rprofile"));
        assert_eq!(plain.netrc(), Path::new("/Users/ana/.netrc"));
        let native = Places::new(
            Platform::MacOs,
            PathBuf::from("/Users/ana"),
            BTreeMap::new(),
            vec![PathBuf::from("/Users/ana/Library/Application Support/pip")],
        );
        assert_eq!(
            native.pip(),
            Path::new("/Users/ana/Library/Application Support/pip/pip.conf")
        );
    }

    #[test]
    fn windows_paths_use_appdata_documents_and_underscore_netrc() {
        let windows = places(
            Platform::Windows,
            r"C:\Users\ana",
            &[("APPDATA", r"C:\Users\ana\AppData\Roaming")],
        );
        let expected =
            |text: &str| PathBuf::from(text.replace('\\', std::path::MAIN_SEPARATOR_STR));
        let normal = |path: PathBuf| {
            PathBuf::from(
                path.display()
                    .to_string()
                    .replace('\\', std::path::MAIN_SEPARATOR_STR),
            )
        };
        assert_eq!(
            normal(windows.pip()),
            expected(r"C:\Users\ana\AppData\Roaming\pip\pip.ini")
        );
        assert_eq!(
            normal(windows.uv()),
            expected(r"C:\Users\ana\AppData\Roaming\uv\uv.toml")
        );
        assert_eq!(
            normal(windows.r_profile()),
            expected(r"C:\Users\ana\Documents\.Rprofile")
        );
        assert_eq!(normal(windows.npmrc()), expected(r"C:\Users\ana\.npmrc"));
        assert_eq!(normal(windows.netrc()), expected(r"C:\Users\ana\_netrc"));
        assert_eq!(
            normal(windows.formulary()),
            expected(r"C:\Users\ana\AppData\Roaming\formulary")
        );
        let r_user = places(Platform::Windows, r"C:\Users\ana", &[("R_USER", r"D:\ana")]);
        assert_eq!(normal(r_user.r_profile()), expected(r"D:\ana\.Rprofile"));
        // Without APPDATA, its usual place under the profile.
        let bare = places(Platform::Windows, r"C:\Users\ana", &[]);
        assert_eq!(
            normal(bare.uv()),
            expected(r"C:\Users\ana\AppData\Roaming\uv\uv.toml")
        );
    }
}
