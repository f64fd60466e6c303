//! Configuration, layered: built-in defaults, then a TOML file (`--config`, `FORMULARY_CONFIG`,
//! or `./formulary.toml` when present), then `FORMULARY_*` environment variables, then flags.
//! Every setting is documented in docs/configuration.md.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use formulary_store::{BlobLocation, S3Options};
use serde::{Deserialize, Serialize};

/// Every setting Formulary reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Folder for the embedded defaults: the SQLite file and the blob folder.
    pub data_dir: PathBuf,
    /// Where records live: `sqlite://PATH` or `postgres://USER@HOST/DATABASE`. Default: the
    /// SQLite file `formulary.db` in `data_dir`.
    pub database_url: Option<String>,
    /// Where blobs (cached package files) live, as a folder. Default: `blobs` in `data_dir`.
    /// `blob_store` supersedes it.
    pub blob_dir: Option<PathBuf>,
    /// Where blobs live: a folder, or `s3://BUCKET/PREFIX` on an S3-compatible server (with
    /// `s3_endpoint`, `s3_region`, `s3_allow_http`; credentials from `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY` or the AWS credential chain, never from this file). Default:
    /// `blob_dir`.
    pub blob_store: Option<String>,
    /// The S3-compatible server's address, e.g. `https://s3.eu-west-2.amazonaws.com` or
    /// `http://127.0.0.1:9000`. Default: AWS (or `AWS_ENDPOINT`).
    pub s3_endpoint: Option<String>,
    /// The bucket's region. Default: `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`.
    pub s3_region: Option<String>,
    /// Allows a plain `http://` `s3_endpoint` (a server on this machine, or a test): blobs and
    /// signed requests then travel unencrypted.
    pub s3_allow_http: bool,
    /// The address `formulary serve` listens on.
    pub listen: SocketAddr,
    /// OSV exports (`all.zip` URLs) that `formulary advisories sync` fetches and `formulary
    /// serve` keeps current.
    pub advisory_sources: Vec<String>,
    /// Seconds between the server's syncs of `advisory_sources` (incremental where the source
    /// publishes `modified_id.csv`); 0 turns the scheduled sync off.
    pub advisory_sync_interval_seconds: u64,
    /// URLs that receive every recall opened or extended, as JSON (`POST`).
    pub recall_webhooks: Vec<String>,
    /// The shared secret recall webhooks are signed with (`X-Formulary-Signature: sha256=<HMAC
    /// of the body>`); unset sends them unsigned.
    pub recall_webhook_secret: Option<String>,
    /// Log format: `text` or `json`.
    pub log_format: String,
    /// PEP 503/691 indexes the PyPI gateway pulls from, in order; empty for an air-gapped site.
    pub pypi_upstreams: Vec<String>,
    /// CRAN-like repositories the CRAN gateway pulls from, in order; empty for an air-gapped site.
    pub cran_upstreams: Vec<String>,
    /// npm registries the npm gateway pulls from, in order; empty for an air-gapped site.
    pub npm_upstreams: Vec<String>,
    /// conda channels the conda gateway serves (`/conda/{channel}/`), each mapped to the
    /// upstream channel URLs it pulls from, in order.
    pub conda_channels: std::collections::BTreeMap<String, Vec<String>>,
    /// A JSON file mapping conda package names to the PyPI (and CRAN) names they repackage,
    /// replacing the mapping shipped with Formulary (docs/conda.md); unset uses the shipped one.
    pub conda_name_mapping: Option<PathBuf>,
    /// Seconds one request to an upstream may take in all (connecting, the first byte, the
    /// whole index document, retries included) before Formulary gives up.
    pub upstream_timeout_seconds: u64,
    /// Milliseconds a request that has a cached copy waits for the upstream before the cached
    /// copy is served (marked stale) while the refresh goes on behind it.
    pub upstream_patience_ms: u64,
    /// Seconds a cached upstream index document is used before it is revalidated.
    pub index_revalidate_seconds: u64,
    /// The organisation whose view the unprefixed gateway paths (`/pypi/simple/`) serve.
    pub default_organisation: String,
    /// Organisations that pull PyPI packages from upstreams of their own, instead of
    /// `pypi_upstreams`: organisation code → index URLs in order.
    pub pypi_organisation_upstreams: std::collections::BTreeMap<String, Vec<String>>,
    /// Whether the PyPI gateway serves the legacy files (`.egg`, `.exe`, `.msi`) upstream indexes
    /// still list. Off by default: neither pip nor uv installs them, and the installers run code.
    pub pypi_legacy_files: bool,
    /// The address people and clients use to reach the server, e.g.
    /// `https://formulary.example.nhs.uk/`. Links and install commands are built from it; when
    /// it is `https`, cookies are `Secure` and pages carry HSTS; browsers' form posts must come
    /// from its origin. Default: `http://<listen address>/`.
    pub public_url: Option<String>,
    /// Reverse proxies (CIDRs or addresses) whose `X-Forwarded-For` is believed when working
    /// out a client's address (sign-in throttling, audit). Empty: the TCP peer is the client.
    pub trusted_proxies: Vec<String>,
    /// The most bytes the download ledger's local journal (kept in `data_dir` while the database
    /// does not take lines) may hold; beyond it lines are dropped and counted.
    pub ledger_journal_max_bytes: u64,
    /// Seconds a client may take to send a request's headers (from the connection, or from the
    /// first byte of the next request); slower connections are closed.
    pub header_read_timeout_seconds: u64,
    /// Seconds a kept-alive connection may wait for its next request, and a response may wait
    /// for a client that does not read it, before the connection is closed.
    pub idle_timeout_seconds: u64,
    /// Connections open at most; more are answered 503 and closed.
    pub max_connections: usize,
    /// Seconds transfers may go on after SIGTERM or Ctrl-C before they are cut.
    pub shutdown_deadline_seconds: u64,
    /// Seconds `formulary serve` waits for the database at start before it serves what it holds
    /// from its local copy (`local-copy/` in `data_dir`) and keeps retrying in the background.
    pub database_start_timeout_seconds: u64,
    /// The secret that signs audit checkpoints. Keep it where the database's owner cannot read
    /// it (a secret mount), and out of database backups. Default: `audit.key` in `data_dir`,
    /// created on first use.
    pub audit_key_file: Option<PathBuf>,
    /// The append-only file of signed audit checkpoints. Default: `audit-checkpoints.jsonl` in
    /// `data_dir`.
    pub audit_checkpoint_file: Option<PathBuf>,
    /// Where notification emails go: `smtp://[user:password@]host[:port]` (STARTTLS required;
    /// add `?tls=none` only for a relay on the same host) or `smtps://…`. Unset: notifications
    /// are shown in the app only. Never logged.
    pub smtp_url: Option<String>,
    /// The `From:` of notification emails.
    pub smtp_from: String,
    /// A PEM file of certificate authorities to trust for the SMTP server, beyond the public
    /// ones (a private CA).
    pub smtp_ca_file: Option<PathBuf>,
    /// Who may read the package gateway: `anonymous` (anyone who reaches it; a token, when
    /// sent, names the reader in the download ledger) or `token` (every gateway request
    /// carries a Formulary token).
    pub gateway_access: String,
    /// OpenID Connect providers people may sign in with (NHS CIS2, Entra ID, others), each a
    /// `[[oidc_providers]]` table (docs/configuration.md). Local accounts keep working beside them.
    pub oidc_providers: Vec<formulary_server::oidc::OidcProviderSettings>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            data_dir: PathBuf::from("formulary-data"),
            database_url: None,
            blob_dir: None,
            blob_store: None,
            s3_endpoint: None,
            s3_region: None,
            s3_allow_http: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            advisory_sources: vec![
                "https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip".to_owned(),
                "https://osv-vulnerabilities.storage.googleapis.com/CRAN/all.zip".to_owned(),
            ],
            advisory_sync_interval_seconds: 600,
            recall_webhooks: Vec::new(),
            recall_webhook_secret: None,
            log_format: "text".to_owned(),
            pypi_upstreams: vec!["https://pypi.org/simple/".to_owned()],
            cran_upstreams: vec!["https://cloud.r-project.org/".to_owned()],
            npm_upstreams: vec!["https://registry.npmjs.org/".to_owned()],
            conda_channels: std::collections::BTreeMap::from([(
                "conda-forge".to_owned(),
                vec!["https://conda.anaconda.org/conda-forge/".to_owned()],
            )]),
            conda_name_mapping: None,
            upstream_timeout_seconds: 12,
            upstream_patience_ms: 1500,
            index_revalidate_seconds: 600,
            default_organisation: "NATIONAL".to_owned(),
            pypi_organisation_upstreams: std::collections::BTreeMap::new(),
            pypi_legacy_files: false,
            public_url: None,
            trusted_proxies: Vec::new(),
            ledger_journal_max_bytes: 256 * 1024 * 1024,
            header_read_timeout_seconds: 15,
            idle_timeout_seconds: 60,
            max_connections: 1024,
            shutdown_deadline_seconds: 20,
            database_start_timeout_seconds: 5,
            audit_key_file: None,
            audit_checkpoint_file: None,
            smtp_url: None,
            smtp_from: "Formulary <formulary@localhost>".to_owned(),
            smtp_ca_file: None,
            gateway_access: "anonymous".to_owned(),
            oidc_providers: Vec::new(),
        }
    }
}

/// The setting names, as the environment spells them after `FORMULARY_` (upper case): derived
/// from [`Settings`] itself so that the two cannot drift apart.
fn setting_names() -> Vec<String> {
    match serde_json::to_value(Settings::default()) {
        Ok(serde_json::Value::Object(fields)) => {
            fields.keys().map(|key| key.to_ascii_uppercase()).collect()
        }
        _ => Vec::new(),
    }
}

/// Variables that are not settings but are read elsewhere.
const OTHER_VARIABLES: [&str; 7] = [
    "CONFIG",
    "CONFIG_DIR",
    "LOG",
    "TOKEN",
    "SERVER",
    "CREDENTIALS",
    "SKIP_LINT",
];

impl Settings {
    /// Loads the layers. `overrides` are the flags the user gave (only those set).
    pub fn load(config_file: Option<&Path>, overrides: Overrides) -> anyhow::Result<Settings> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        let file = config_file
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("FORMULARY_CONFIG").map(PathBuf::from))
            .or_else(|| Some(PathBuf::from("formulary.toml")).filter(|path| path.exists()));
        if let Some(file) = &file {
            if !file.exists() {
                bail!(
                    "the configuration file {} does not exist; check --config or FORMULARY_CONFIG",
                    file.display()
                );
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment
            .merge(
                Env::prefixed("FORMULARY_").only(
                    &setting_names()
                        .iter()
                        .map(String::as_str)
                        .collect::<Vec<_>>(),
                ),
            )
            .merge(Serialized::defaults(overrides));
        let settings: Settings = figment.extract().context(
            "the configuration is not valid (see docs/configuration.md for every setting)",
        )?;
        if !matches!(settings.log_format.as_str(), "text" | "json") {
            bail!(
                "log_format must be text or json, not '{}'",
                settings.log_format.escape_debug()
            );
        }
        Ok(settings)
    }

    /// The database URL in force.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("formulary.db").display()))
    }

    /// The public URL in force for a server listening on `listening` (the bound address, so
    /// that port 0 gives the real port): `public_url`, else `http://<listening>/`.
    pub fn public_url(&self, listening: SocketAddr) -> anyhow::Result<url::Url> {
        let text = self
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{listening}/"));
        let mut url = url::Url::parse(&text).with_context(|| {
            format!(
                "public_url '{}' is not a URL; write it as https://formulary.example.nhs.uk/",
                text.escape_debug()
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            bail!(
                "public_url '{}' must be an http:// or https:// address with a host name",
                text.escape_debug()
            );
        }
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            bail!(
                "public_url '{}' must not carry a query, a fragment or credentials",
                text.escape_debug()
            );
        }
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Ok(url)
    }

    /// The download ledger's local journal.
    pub fn ledger_journal(&self) -> PathBuf {
        self.data_dir.join("ledger-journal.jsonl")
    }

    /// The folder of the local copy of what serving reads (kept while the database answers,
    /// served from when it does not at start).
    pub fn local_copy_dir(&self) -> PathBuf {
        self.data_dir.join("local-copy")
    }

    /// The file holding the audit checkpoint key.
    pub fn audit_key_file(&self) -> PathBuf {
        self.audit_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("audit.key"))
    }

    /// Where signed audit checkpoints are appended.
    pub fn audit_checkpoint_file(&self) -> PathBuf {
        self.audit_checkpoint_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("audit-checkpoints.jsonl"))
    }

    /// The blob folder in force (when blobs live in a folder).
    pub fn blob_dir(&self) -> PathBuf {
        self.blob_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("blobs"))
    }

    /// How an S3-compatible server is reached, from `s3_endpoint`, `s3_region` and
    /// `s3_allow_http`.
    pub fn s3_options(&self) -> S3Options {
        S3Options {
            endpoint: self
                .s3_endpoint
                .clone()
                .filter(|endpoint| !endpoint.trim().is_empty()),
            region: self
                .s3_region
                .clone()
                .filter(|region| !region.trim().is_empty()),
            allow_http: self.s3_allow_http,
        }
    }

    /// Reads a store named on the command line (a folder or `s3://BUCKET/PREFIX`), reached with
    /// the configured S3 settings.
    pub fn blob_location_of(&self, text: &str) -> anyhow::Result<BlobLocation> {
        Ok(BlobLocation::parse(text, &self.s3_options())?)
    }

    /// Where blobs live: `blob_store`, else the folder `blob_dir`.
    pub fn blob_location(&self) -> anyhow::Result<BlobLocation> {
        match self
            .blob_store
            .as_deref()
            .filter(|text| !text.trim().is_empty())
        {
            Some(text) => {
                if self.blob_dir.is_some() {
                    bail!("both blob_store and blob_dir are set; keep only blob_store (blob_dir is its older, folder-only spelling)");
                }
                self.blob_location_of(text)
            }
            None => Ok(BlobLocation::Folder(self.blob_dir())),
        }
    }
}

/// Settings given as flags; `None` leaves the lower layers in force.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    /// `--data-dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// `--database-url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// `--listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
}

/// `FORMULARY_*` variables that are set but mean nothing to Formulary (usually a typo).
pub fn unknown_variables() -> Vec<String> {
    let known = setting_names();
    std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter_map(|name| name.strip_prefix("FORMULARY_").map(str::to_owned))
        .filter(|rest| !rest.starts_with("TEST_"))
        .filter(|rest| !known.contains(rest) && !OTHER_VARIABLES.contains(&rest.as_str()))
        .map(|rest| format!("FORMULARY_{rest}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_url_defaults_to_the_listen_address_and_is_checked() {
        let listening = SocketAddr::from(([127, 0, 0, 1], 8123));
        let mut settings = Settings::default();
        assert_eq!(
            settings.public_url(listening).expect("default").as_str(),
            "http://127.0.0.1:8123/"
        );
        settings.public_url = Some("https://formulary.example.nhs.uk".to_owned());
        assert_eq!(
            settings.public_url(listening).expect("configured").as_str(),
            "https://formulary.example.nhs.uk/"
        );
        for bad in [
            "ftp://x/",
            "not a url",
            "https://user:pw@host/",
            "https://host/?a=1",
        ] {
            settings.public_url = Some(bad.to_owned());
            assert!(settings.public_url(listening).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_are_the_embedded_setup() {
        let settings = Settings::default();
        assert_eq!(
            settings.database_url(),
            "sqlite://formulary-data/formulary.db"
        );
        assert_eq!(settings.blob_dir(), PathBuf::from("formulary-data/blobs"));
        assert_eq!(settings.listen.to_string(), "127.0.0.1:8080");
    }

    #[test]
    #[expect(
        clippy::result_large_err,
        reason = "figment::Jail's closure must return figment::Error"
    )]
    fn the_blob_store_is_read_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("FORMULARY_BLOB_STORE", "s3://formulary-cache/blobs");
            jail.set_env("FORMULARY_S3_ENDPOINT", "http://127.0.0.1:9000");
            jail.set_env("FORMULARY_S3_REGION", "eu-west-2");
            jail.set_env("FORMULARY_S3_ALLOW_HTTP", "true");
            let settings =
                Settings::load(None, Overrides::default()).map_err(|error| error.to_string())?;
            let location = settings
                .blob_location()
                .map_err(|error| error.to_string())?;
            assert_eq!(
                location,
                BlobLocation::S3 {
                    bucket: "formulary-cache".to_owned(),
                    prefix: "blobs".to_owned(),
                    options: S3Options {
                        endpoint: Some("http://127.0.0.1:9000".to_owned()),
                        region: Some("eu-west-2".to_owned()),
                        allow_http: true,
                    },
                }
            );
            jail.set_env("FORMULARY_S3_ALLOW_HTTP", "false");
            let settings =
                Settings::load(None, Overrides::default()).map_err(|error| error.to_string())?;
            let refused = settings.blob_location().expect_err("plain http refused");
            assert!(refused.to_string().contains("s3_allow_http"), "{refused}");
            Ok(())
        });
        let settings = Settings::default();
        assert_eq!(
            settings.blob_location().expect("default"),
            BlobLocation::Folder(PathBuf::from("formulary-data/blobs"))
        );
    }

    #[test]
    #[expect(
        clippy::result_large_err,
        reason = "figment::Jail's closure must return figment::Error"
    )]
    fn file_then_environment_then_flags() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "formulary.toml",
                "data_dir = \"/srv/formulary\"\nlisten = \"0.0.0.0:9000\"\n",
            )?;
            jail.set_env("FORMULARY_LISTEN", "127.0.0.1:9100");
            let from_env =
                Settings::load(None, Overrides::default()).map_err(|error| error.to_string())?;
            assert_eq!(from_env.data_dir, PathBuf::from("/srv/formulary"));
            assert_eq!(from_env.listen.to_string(), "127.0.0.1:9100");
            let flags = Overrides {
                listen: Some(SocketAddr::from(([127, 0, 0, 1], 9200))),
                ..Overrides::default()
            };
            let from_flags = Settings::load(None, flags).map_err(|error| error.to_string())?;
            assert_eq!(from_flags.listen.to_string(), "127.0.0.1:9200");
            Ok(())
        });
    }

    #[test]
    #[expect(
        clippy::result_large_err,
        reason = "figment::Jail's closure must return figment::Error"
    )]
    fn every_setting_can_come_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "FORMULARY_PYPI_UPSTREAMS",
                "[\"http://127.0.0.1:1/simple/\"]",
            );
            jail.set_env("FORMULARY_UPSTREAM_TIMEOUT_SECONDS", "5");
            jail.set_env("FORMULARY_DEFAULT_ORGANISATION", "RJ1");
            let settings =
                Settings::load(None, Overrides::default()).map_err(|error| error.to_string())?;
            assert_eq!(settings.pypi_upstreams, ["http://127.0.0.1:1/simple/"]);
            assert_eq!(settings.upstream_timeout_seconds, 5);
            assert_eq!(settings.default_organisation, "RJ1");
            assert!(unknown_variables().is_empty(), "{:?}", unknown_variables());
            Ok(())
        });
    }

    #[test]
    #[expect(
        clippy::result_large_err,
        reason = "figment::Jail's closure must return figment::Error"
    )]
    fn oidc_providers_come_from_the_file_with_their_defaults() {
        use formulary_server::oidc::ClaimsProfile;
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "formulary.toml",
                r#"
[[oidc_providers]]
id = "cis2"
display_name = "NHS Care Identity"
issuer = "https://cis2.example.nhs.uk"
client_id = "formulary"
client_secret_env = "CIS2_SECRET"
profile = "cis2"
role_map = { "R8000" = ["requester"] }
"#,
            )?;
            let settings =
                Settings::load(None, Overrides::default()).map_err(|error| error.to_string())?;
            let provider = &settings.oidc_providers[0];
            assert_eq!(provider.profile, ClaimsProfile::Cis2);
            assert!(provider.use_selected_role && !provider.allow_national_roles);
            assert_eq!(
                provider.scopes(),
                [
                    "openid",
                    "profile",
                    "email",
                    "nationalrbacaccess",
                    "associatedorgs"
                ]
            );
            assert_eq!(provider.role_map["R8000"], ["requester"]);
            jail.create_file(
                "formulary.toml",
                "[[oidc_providers]]\nid = \"x\"\ndisplay_name = \"X\"\nissuer = \"https://x\"\nclient_id = \"c\"\nprofile = \"cis2\"\nclient_secret = \"inline\"\n",
            )?;
            assert!(
                Settings::load(None, Overrides::default()).is_err(),
                "a secret written inline is refused (only a file or a variable)"
            );
            Ok(())
        });
    }

    #[test]
    #[expect(
        clippy::result_large_err,
        reason = "figment::Jail's closure must return figment::Error"
    )]
    fn unknown_file_settings_are_errors() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("formulary.toml", "databse_url = \"sqlite://x\"\n")?;
            let error = Settings::load(None, Overrides::default()).expect_err("a typo is refused");
            assert!(format!("{error:#}").contains("databse_url"), "{error:#}");
            Ok(())
        });
    }
}
