//! `/admin/tools`: desktop tools (components of the `generic` ecosystem) and their files per
//! platform, for national curators only: the list of every tool version with its files, and a
//! form that adds one file of a version (its upstream address, size, SHA-256, kind, the programs
//! to put on the PATH, for an installer the per-user install recipe, and when the vendor signs
//! the file, its signature's address, kind and the vendor's public key). The form is checked
//! exactly as `formulary tools add` checks a manifest (`formulary_store::tool_artifacts`), and
//! the store audits the addition as `tool.add` under the curator's name, as the CLI's is.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use formulary_core::request::FieldError;
use formulary_core::{OrgCode, Role};
use formulary_store::{ToolArtifact, ToolFileInput, PREFIX_PLACEHOLDER};
use maud::{html, Markup};
use serde::Deserialize;

use super::{done_banner, select};
use crate::error::ApiError;
use crate::state::AppState;
use crate::web::page::{self, Field, Section};
use crate::web::session::{PostedForm, SignedIn};
use crate::web::WebError;

/// What the page confirms after a change (`?done=`).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Done {
    #[serde(default)]
    done: String,
}

/// One file of a tool version, as posted.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct ToolForm {
    name: String,
    version: String,
    platform: String,
    url: String,
    sha256: String,
    size: String,
    kind: String,
    binaries: String,
    install_args: String,
    signature_url: String,
    signature_kind: String,
    signature_key: String,
}

/// The signature kinds offered in the form.
const SIGNATURE_KINDS: [(&str, &str); 3] = [
    ("", "The vendor does not sign it"),
    ("openpgp", "OpenPGP (.asc or .sig)"),
    ("minisign", "minisign (.minisig)"),
];

/// The platforms offered in the form, as manifests name them.
const PLATFORMS: [(&str, &str); 8] = [
    ("", "Choose a platform"),
    ("x86_64-windows", "Windows, x86-64 (x86_64-windows)"),
    ("aarch64-windows", "Windows, Arm (aarch64-windows)"),
    ("x86_64-macos", "macOS, Intel (x86_64-macos)"),
    ("aarch64-macos", "macOS, Apple silicon (aarch64-macos)"),
    ("x86_64-linux", "Linux, x86-64, glibc (x86_64-linux)"),
    ("aarch64-linux", "Linux, Arm, glibc (aarch64-linux)"),
    (
        "x86_64-linux-musl",
        "Linux, x86-64, musl (x86_64-linux-musl)",
    ),
];

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect()
}

impl ToolForm {
    /// The file the form describes, or what to fix.
    fn check(&self) -> Result<Vec<ToolArtifact>, Vec<FieldError>> {
        let size = self.size.trim();
        let parsed = size.parse::<u64>();
        let file = ToolFileInput {
            platform: self.platform.clone(),
            url: self.url.clone(),
            sha256: self.sha256.clone(),
            size: *parsed.as_ref().unwrap_or(&0),
            kind: self.kind.clone(),
            binaries: lines(&self.binaries),
            install_args: lines(&self.install_args),
            signature_url: self.signature_url.clone(),
            signature_kind: self.signature_kind.clone(),
            signature_key: self.signature_key.clone(),
        };
        formulary_store::tool_artifacts(&self.name, &self.version, &[file]).map_err(|problems| {
            problems
                .into_iter()
                .map(|problem| {
                    if problem.field == "size" && !size.is_empty() && parsed.is_err() {
                        FieldError::new("size", format!("'{}' is not a size: enter the file's size in bytes as a whole number, like 10485760", size.escape_debug()))
                    } else {
                        FieldError::new(problem.field, problem.message)
                    }
                })
                .collect()
        })
    }
}

/// National curators only; anyone else is told whose page it is.
fn curator_only(signed_in: &SignedIn) -> Result<(), WebError> {
    if signed_in
        .principal
        .holds(Role::NationalCurator, &OrgCode::national())
    {
        return Ok(());
    }
    Err(WebError::from(ApiError::forbidden(format!(
        "desktop tools are added by national curators; {} is {}. Ask a national curator to add the tool, or request it from its component page",
        signed_in.principal.name,
        signed_in.principal.describe_roles()
    )))
    .seen_by(&signed_in.viewer))
}

fn tool_rows(artifacts: &[ToolArtifact]) -> Markup {
    html! {
        table.nhsuk-table #tools {
            caption.nhsuk-table__caption { "Tool versions and their files" }
            thead.nhsuk-table__head { tr {
                th scope="col" { "Tool" } th scope="col" { "Platform" } th scope="col" { "File" } th scope="col" { "How it installs" }
            } }
            tbody.nhsuk-table__body {
                @for artifact in artifacts {
                    tr.nhsuk-table__row {
                        td.nhsuk-table__cell { a href={ "/components/generic/" (artifact.name) } { (artifact.name) } " " (artifact.version) }
                        td.nhsuk-table__cell { code { (artifact.platform) } }
                        td.nhsuk-table__cell {
                            a href=(artifact.url) { (artifact.filename) } br;
                            span.nhsuk-body-s { (artifact.size) " bytes, SHA-256 " code { (artifact.sha256.get(..12).unwrap_or_default()) "…" } }
                        }
                        td.nhsuk-table__cell {
                            @match artifact.kind.as_str() {
                                "installer" if artifact.install_args.is_empty() => { "Installer with no per-user recipe: not installed by formulary tools" }
                                "installer" => { "Installer, per-user: " code { (artifact.install_args.join(" ")) } }
                                "binary" => { "One program" }
                                _ => { "Archive, unpacked" }
                            }
                            @if !artifact.binaries.is_empty() {
                                br; span.nhsuk-body-s { "Programs: " (artifact.binaries.join(", ")) }
                            }
                            br;
                            @if let Some(signature) = &artifact.signature {
                                span.nhsuk-body-s.formulary-signer { "Signed by the vendor: " (signature.signer) }
                            } @else {
                                span.nhsuk-body-s { "Not signed by the vendor: checked by its SHA-256 only" }
                            }
                        }
                    }
                }
            }
        }
    }
}

async fn render(
    state: &AppState,
    signed_in: &SignedIn,
    form: &ToolForm,
    errors: &[FieldError],
    done: Option<&str>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let artifacts = state.database.tool_artifacts().await?;
    let csrf = signed_in.viewer.csrf_token.as_deref().unwrap_or("");
    let kinds = [
        (
            "archive",
            "Archive (.zip, .tar.gz): unpacked into the person's profile",
        ),
        ("binary", "One program: saved under the tool's name"),
        ("installer", "Installer: run with its per-user recipe"),
    ];
    let recipe_hint = format!("One argument a line; {PREFIX_PLACEHOLDER} is the folder in the person's profile. For example -b, -p, {PREFIX_PLACEHOLDER} (Miniforge), or /CURRENTUSER, /VERYSILENT, /DIR={PREFIX_PLACEHOLDER} (Inno Setup installers such as Git for Windows). Leave empty if the installer cannot install for one person: it is then listed but not installed");
    let content = html! {
        nav aria-label="Administration" {
            ul.formulary-header-nav.formulary-admin-nav { li { a href="/admin" { "All organisations" } } }
        }
        (page::error_summary(errors))
        (done_banner(done))
        h1 { "Desktop tools" }
        p { "Tools such as R, Python, Git or an editor, installed by people into their own profile with " code { "formulary tools install" } ", with no admin rights. Who may download each version is decided by entries for " code { "pkg:generic/NAME" } ", as for packages. Every addition is in the audit log under your name." }
        @if artifacts.is_empty() { p { "No desktop tools yet." } } @else { (tool_rows(&artifacts)) }
        div.nhsuk-grid-row { div.nhsuk-grid-column-two-thirds {
            h2.nhsuk-heading-m #add { "Add a tool version's file" }
            p { "Add one file per platform: add the version again for each platform it has. A file already recorded for the same version and platform is replaced." }
            form method="post" action="/admin/tools" novalidate {
                (page::csrf_field(csrf))
                (page::input(Field { name: "name", label: "Tool", hint: Some("Its name as a component of the generic ecosystem, for example git, r or miniforge"), value: &form.name }, "text", Some("off"), errors))
                (page::input(Field { name: "version", label: "Version", hint: Some("As the vendor writes it, for example 2.47.1"), value: &form.version }, "text", Some("off"), errors))
                (select("platform", "Platform", None, &PLATFORMS, &form.platform, errors))
                (page::input(Field { name: "url", label: "Download address", hint: Some("The vendor's address of the file; the gateway pulls it from there once and checks it"), value: &form.url }, "url", Some("off"), errors))
                (page::input(Field { name: "sha256", label: "SHA-256", hint: Some("64 characters 0-9 and a-f, from the vendor's checksums"), value: &form.sha256 }, "text", Some("off"), errors))
                (page::input(Field { name: "size", label: "Size in bytes", hint: None, value: &form.size }, "text", Some("off"), errors))
                (page::radios("kind", "What the file is", None, &kinds, &form.kind, errors))
                (page::textarea(Field { name: "binaries", label: "Programs to put on the PATH (optional)", hint: Some("One a line, as paths inside the archive or installed folder, for example bin/git or ruff-x86_64-unknown-linux-gnu/ruff"), value: &form.binaries }, 3, errors))
                (page::textarea(Field { name: "install_args", label: "Per-user install recipe (installers only)", hint: Some(&recipe_hint), value: &form.install_args }, 3, errors))
                h3.nhsuk-heading-s { "The vendor's signature (when the vendor signs the file)" }
                p.nhsuk-body-s { "The gateway fetches the signature with the file and refuses the file, caching nothing, unless the signature verifies with the key below. Take the key from the vendor's own site, not from beside the file." }
                (select("signature_kind", "Signature kind", None, &SIGNATURE_KINDS, &form.signature_kind, errors))
                (page::input(Field { name: "signature_url", label: "Signature address", hint: Some("The detached signature's address, often the file's address with .asc, .sig or .minisig added"), value: &form.signature_url }, "url", Some("off"), errors))
                (page::textarea(Field { name: "signature_key", label: "The vendor's public key", hint: Some("OpenPGP: the armored key block, from -----BEGIN PGP PUBLIC KEY BLOCK----- to its END line. minisign: the .pub file, or its line starting RW"), value: &form.signature_key }, 4, errors))
                button.nhsuk-button type="submit" { "Add tool file" }
            }
        } }
    };
    Ok(page::render_with_status(
        status,
        &signed_in.viewer,
        Section::Admin,
        "Desktop tools",
        !errors.is_empty(),
        content,
    )
    .into_response())
}

/// `GET /admin/tools`.
pub(crate) async fn list(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Query(done): Query<Done>,
) -> Result<Response, WebError> {
    curator_only(&signed_in)?;
    let done = (done.done == "added").then_some(
        "The tool's file has been added; who may download it is decided by entries for pkg:generic/NAME.",
    );
    render(
        &state,
        &signed_in,
        &ToolForm::default(),
        &[],
        done,
        StatusCode::OK,
    )
    .await
}

/// `POST /admin/tools`.
pub(crate) async fn add(
    State(state): State<AppState>,
    posted: PostedForm<ToolForm>,
) -> Result<Response, WebError> {
    let PostedForm { signed_in, form } = posted;
    curator_only(&signed_in)?;
    let artifacts = match form.check() {
        Ok(artifacts) => artifacts,
        Err(errors) => {
            return render(
                &state,
                &signed_in,
                &form,
                &errors,
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    };
    state
        .database
        .add_tool_artifacts(&artifacts, &signed_in.principal.actor)
        .await?;
    Ok(Redirect::to("/admin/tools?done=added").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_is_checked_like_a_manifest() {
        let form = ToolForm {
            name: "Git".to_owned(),
            version: "2.47.1".to_owned(),
            platform: "x86_64-windows".to_owned(),
            url: "https://example.org/Git-2.47.1-64-bit.exe".to_owned(),
            sha256: "a".repeat(64),
            size: "66000000".to_owned(),
            kind: "installer".to_owned(),
            binaries: "cmd/git.exe\n".to_owned(),
            install_args: "/CURRENTUSER\r\n/VERYSILENT\n\n/DIR={prefix}\n".to_owned(),
            ..ToolForm::default()
        };
        let artifacts = form.check().expect("valid");
        assert_eq!(artifacts[0].name, "git");
        assert_eq!(
            artifacts[0].install_args,
            ["/CURRENTUSER", "/VERYSILENT", "/DIR={prefix}"]
        );
        let errors = ToolForm {
            size: "66 MB".to_owned(),
            ..ToolForm::default()
        }
        .check()
        .expect_err("problems");
        let fields: Vec<&str> = errors.iter().map(|error| error.field).collect();
        assert_eq!(
            fields,
            ["name", "version", "platform", "url", "sha256", "size", "kind"]
        );
        assert!(errors[5].message.contains("'66 MB' is not a size"));
        let errors = ToolForm {
            signature_kind: "openpgp".to_owned(),
            signature_url: "https://example.org/Git-2.47.1-64-bit.exe.asc".to_owned(),
            signature_key: "not a key".to_owned(),
            ..form
        }
        .check()
        .expect_err("problems");
        assert_eq!(errors[0].field, "signature_key");
        assert!(errors[0]
            .message
            .contains("not an armored OpenPGP public key"));
    }
}
