//! The PyPI gateway driven by the real pip and uv, against a local upstream built from real
//! wheels (downloaded once with pip) and served by Python's own static HTTP server. A small
//! fault-injecting upstream covers corrupt and interrupted files.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::formulary_cli::{repo_root, static_server, text, Running, Workspace};

/// Real wheels: requests with an advisory-affected version (2.19.1, PYSEC-2018-28), an older
/// unaffected-by-2018 but affected-by-2023 version, and allowed versions, with dependencies.
const WHEELS: [&str; 11] = [
    "requests==2.19.1",
    "requests==2.31.0",
    "requests==2.32.3",
    "idna==2.7",
    "idna==3.7",
    "urllib3==1.23",
    "urllib3==2.2.2",
    "chardet==3.0.4",
    "certifi==2024.7.4",
    "charset-normalizer==3.3.2",
    "six==1.16.0",
];

/// Downloads the wheels once per target folder (kept between runs).
pub(crate) fn wheels() -> &'static Path {
    static FOLDER: OnceLock<PathBuf> = OnceLock::new();
    FOLDER.get_or_init(|| {
        let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-wheels");
        std::fs::create_dir_all(&folder).expect("wheel folder");
        let present = std::fs::read_dir(&folder).map(|items| items.count()).unwrap_or(0);
        if present < WHEELS.len() {
            // One requirement per call: pip refuses two versions of a project in one resolution.
            for requirement in WHEELS {
                let output = Command::new("python3")
                    .args(["-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check", "-d"])
                    .arg(&folder)
                    .arg(requirement)
                    .env("PIP_CONFIG_FILE", "/dev/null")
                    .env_remove("PIP_FIND_LINKS")
                    .output()
                    .expect("python3 -m pip runs");
                assert!(output.status.success(), "could not download {requirement} from PyPI (the test needs network to PyPI): {}", text(&output.stderr));
            }
        }
        folder
    })
}

/// A PEP 503 tree of the wheels, served by `python3 -m http.server`.
pub(crate) fn static_upstream(root: &Path) -> (Running, String) {
    let simple = root.join("simple");
    let packages = root.join("packages");
    std::fs::create_dir_all(&packages).expect("packages");
    let mut projects: std::collections::BTreeMap<String, Vec<(String, String)>> =
        Default::default();
    for entry in std::fs::read_dir(wheels()).expect("wheels").flatten() {
        let filename = entry.file_name().to_string_lossy().into_owned();
        let bytes = std::fs::read(entry.path()).expect("wheel");
        std::fs::write(packages.join(&filename), &bytes).expect("copy");
        let project = filename
            .split('-')
            .next()
            .expect("name")
            .to_ascii_lowercase()
            .replace('_', "-");
        projects
            .entry(project)
            .or_default()
            .push((filename, hex::encode(Sha256::digest(&bytes))));
    }
    for (project, files) in &projects {
        let folder = simple.join(project);
        std::fs::create_dir_all(&folder).expect("project folder");
        let links: String = files
            .iter()
            .map(|(file, digest)| {
                format!("<a href=\"../../packages/{file}#sha256={digest}\">{file}</a><br>\n")
            })
            .collect();
        std::fs::write(
            folder.join("index.html"),
            format!("<!DOCTYPE html><html><body>\n{links}</body></html>\n"),
        )
        .expect("index");
    }
    let (server, base) = static_server(root);
    (server, format!("{base}simple/"))
}

/// Starts `formulary serve` with the given upstreams.
fn gateway(workspace: &Workspace, upstreams: &str) -> (Running, String) {
    gateway_with(workspace, upstreams, &[])
}

/// Starts `formulary serve` with the given upstreams and extra settings.
fn gateway_with(
    workspace: &Workspace,
    upstreams: &str,
    extra: &[(&str, String)],
) -> (Running, String) {
    let mut settings = vec![
        ("FORMULARY_PYPI_UPSTREAMS", upstreams.to_owned()),
        ("FORMULARY_INDEX_REVALIDATE_SECONDS", "0".to_owned()),
        ("FORMULARY_UPSTREAM_TIMEOUT_SECONDS", "5".to_owned()),
    ];
    settings.extend(extra.iter().cloned());
    workspace.serve(&settings)
}

pub(crate) fn venv(root: &Path, name: &str) -> PathBuf {
    let path = root.join(name);
    let output = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&path)
        .output()
        .expect("venv");
    assert!(output.status.success(), "{}", text(&output.stderr));
    path
}

pub(crate) fn pip(venv: &Path, index: &str, requirement: &str) -> Output {
    Command::new(venv.join("bin/pip"))
        .args([
            "install",
            "--disable-pip-version-check",
            "--no-cache-dir",
            "--no-input",
            "--index-url",
            index,
            requirement,
        ])
        .env("PIP_CONFIG_FILE", "/dev/null")
        .env_remove("PIP_FIND_LINKS")
        .output()
        .expect("pip runs")
}

pub(crate) fn uv(venv: &Path, index: &str, requirement: &str) -> Output {
    Command::new("uv")
        .args(["pip", "install", "--no-cache", "--python"])
        .arg(venv.join("bin/python"))
        .args(["--index-url", index, requirement])
        .env("UV_NO_CONFIG", "1")
        .env_remove("PIP_FIND_LINKS")
        .output()
        .expect("uv runs (scripts/test installs it)")
}

fn installed(venv: &Path) -> Vec<String> {
    let output = Command::new(venv.join("bin/python"))
        .args(["-c", "import importlib.metadata as m; print('\\n'.join(sorted(f\"{d.metadata['Name'].lower()}=={d.version}\" for d in m.distributions())))"])
        .output()
        .expect("python runs");
    text(&output.stdout)
        .lines()
        .map(str::to_owned)
        .filter(|line| !line.starts_with("pip==") && !line.starts_with("setuptools=="))
        .collect()
}

fn import_requests_advisories(workspace: &Workspace) {
    workspace.ok(&[
        "advisories",
        "import",
        &repo_root()
            .join("test-data/osv/pypa-advisory-database/vulns/requests")
            .display()
            .to_string(),
    ]);
}

crate::on_both_databases!(fn pip_and_uv_install_allowed_versions_and_show_why_a_pin_is_refused);
fn pip_and_uv_install_allowed_versions_and_show_why_a_pin_is_refused() {
    let workspace = Workspace::new();
    let (upstream, upstream_url) = static_upstream(&workspace.folder.path().join("upstream"));
    import_requests_advisories(&workspace);
    let (_server, base) = gateway(&workspace, &format!("[\"{upstream_url}\"]"));
    let index = format!("{base}/pypi/simple/");
    let root = || {
        let (status, _, body) =
            crate::gateway_npm::get(&index, "application/vnd.pypi.simple.v1+json", &[]);
        assert_eq!(status, 200, "{body}");
        body
    };
    assert!(!root().contains("requests"), "nothing cached yet");

    let latest = venv(workspace.folder.path(), "latest");
    let output = pip(&latest, &index, "requests");
    assert!(output.status.success(), "{}", text(&output.stderr));
    // The root index is reused between requests, and lists a project as soon as it is cached.
    let listed = root();
    for name in [
        "certifi",
        "charset-normalizer",
        "idna",
        "requests",
        "urllib3",
    ] {
        assert!(
            listed.contains(&format!("{{\"name\":\"{name}\"}}")),
            "{listed}"
        );
    }
    assert_eq!(
        installed(&latest),
        [
            "certifi==2024.7.4",
            "charset-normalizer==3.3.2",
            "idna==3.7",
            "requests==2.32.3",
            "urllib3==2.2.2"
        ]
    );

    let older = venv(workspace.folder.path(), "older");
    let output = pip(&older, &index, "requests<2.32");
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        installed(&older).contains(&"requests==2.31.0".to_owned()),
        "2.19.1 is affected, so the resolver picks 2.31.0: {:?}",
        installed(&older)
    );

    let pinned = venv(workspace.folder.path(), "pinned");
    let output = pip(&pinned, &index, "requests==2.19.1");
    assert!(!output.status.success());
    let message = text(&output.stderr);
    assert!(
        message.contains("403")
            && message.contains("Blocked by Formulary")
            && message.contains("PYSEC-2018-28"),
        "{message}"
    );

    let with_uv = venv(workspace.folder.path(), "uv");
    let output = uv(&with_uv, &index, "requests");
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(installed(&with_uv).contains(&"requests==2.32.3".to_owned()));
    let output = uv(&with_uv, &index, "requests==2.19.1");
    assert!(!output.status.success());
    let message = text(&output.stderr);
    assert!(
        message.contains("Blocked by Formulary") && message.contains("PYSEC-2018-28"),
        "{message}"
    );

    // A curated organisation view serves only what its entries approve.
    workspace.ok(&["org", "add", "RJ2", "--name", "A curated trust"]);
    workspace.ok(&[
        "org",
        "settings",
        "RJ2",
        "--ecosystem",
        "pypi",
        "--stance",
        "curated",
    ]);
    for name in [
        "requests",
        "idna",
        "urllib3",
        "certifi",
        "charset-normalizer",
    ] {
        workspace.ok(&[
            "entry",
            "add",
            &format!("pkg:pypi/{name}"),
            "--status",
            "approved",
            "--reason",
            "needed by requests",
            "--org",
            "RJ2",
        ]);
    }
    std::thread::sleep(Duration::from_secs(3));
    let curated_index = format!("{base}/o/RJ2/pypi/simple/");
    let curated = venv(workspace.folder.path(), "curated");
    let output = pip(&curated, &curated_index, "requests");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let refused = pip(&curated, &curated_index, "six");
    assert!(!refused.status.success());
    // Nothing of six is allowed: its newest version stays listed, so pip reaches the refused
    // download and prints why, with where to request it (absolute, from public_url).
    let message = text(&refused.stderr);
    assert!(
        message.contains("403 Client Error: Blocked by Formulary: six is not in RJ2's formulary")
            && message.contains(&format!(
                "Request it at {base}/requests/new?component=pkg:pypi/six"
            )),
        "{message}"
    );

    // A dated view shows the formulary as it stood on that day: before RJ2's entries existed,
    // its curated view allowed nothing, so every file but the newest is yanked with the reason.
    let dated = Command::new("python3")
        .args(["-c", &format!("import urllib.request\nfor path in ['o/RJ2/@2020-01-01/pypi/simple/requests/', 'o/RJ2/pypi/simple/requests/']:\n print(urllib.request.urlopen('{base}/' + path).read().decode().count('not in RJ2'))")])
        .output()
        .expect("python");
    let answers = text(&dated.stdout);
    let counts: Vec<usize> = answers
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect();
    assert!(
        counts.len() == 2 && counts[0] > 0 && counts[1] == 0,
        "{answers}{}",
        text(&dated.stderr)
    );

    // The upstream stops: cached index documents and files still install, and the gateway says so.
    drop(upstream);
    let offline = venv(workspace.folder.path(), "offline");
    let output = pip(&offline, &index, "requests");
    assert!(
        output.status.success(),
        "cached files still install: {}",
        text(&output.stderr)
    );
    let headers = Command::new("python3")
        .args(["-c", &format!("import urllib.request\nr = urllib.request.urlopen('{index}requests/')\nprint(r.headers.get('x-formulary-stale'))")])
        .output()
        .expect("python");
    assert!(
        text(&headers.stdout).contains("upstream unreachable"),
        "{}",
        text(&headers.stdout)
    );
}

#[test]
fn an_air_gapped_site_installs_imported_files_with_no_upstream() {
    let workspace = Workspace::new();
    let imported = workspace.ok(&["mirror", "import", "pypi", &wheels().display().to_string()]);
    assert!(
        imported.contains(&format!("Imported {} files", WHEELS.len())),
        "{imported}"
    );
    import_requests_advisories(&workspace);
    let (_server, base) = gateway(&workspace, "[]");
    let index = format!("{base}/pypi/simple/");
    let target = venv(workspace.folder.path(), "airgapped");
    let output = pip(&target, &index, "requests");
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        installed(&target).contains(&"requests==2.32.3".to_owned()),
        "{:?}",
        installed(&target)
    );
    let output = uv(&target, &index, "requests==2.19.1");
    assert!(
        text(&output.stderr).contains("PYSEC-2018-28"),
        "imported files obey the same policy: {}",
        text(&output.stderr)
    );

    // PEP 658/714: the wheel's core metadata is advertised and served, digest and all.
    let script = format!(
        "import json, hashlib, urllib.request\n\
         page = json.load(urllib.request.urlopen(urllib.request.Request('{index}idna/', headers={{'Accept': 'application/vnd.pypi.simple.v1+json'}})))\n\
         wheel = [f for f in page['files'] if f['filename'].startswith('idna-3.7')][0]\n\
         body = urllib.request.urlopen(urllib.request.urljoin('{index}idna/', wheel['url']) + '.metadata').read()\n\
         print(wheel['core-metadata']['sha256'] == hashlib.sha256(body).hexdigest(), body.split(b'\\n')[1].decode())"
    );
    let output = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python");
    let answer = text(&output.stdout);
    assert!(
        answer.starts_with("True Name: idna"),
        "{answer}{}",
        text(&output.stderr)
    );
}

/// How often the upstream was asked for `counted-1.0-py3-none-any.whl`.
static COUNTED_FETCHES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A real (if minimal) wheel of `name` `version`: its dist-info METADATA and a payload, stored
/// uncompressed, so that it passes the gateway's wheel check and has a predictable size.
pub(crate) fn wheel(name: &str, version: &str, payload: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .last_modified_time(zip::DateTime::default());
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    writer
        .start_file(format!("{name}-{version}.dist-info/METADATA"), options)
        .expect("metadata");
    writer
        .write_all(format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n").as_bytes())
        .expect("write");
    writer
        .start_file(format!("{name}/payload.bin"), options)
        .expect("payload");
    writer.write_all(payload).expect("write");
    writer.finish().expect("zip").into_inner()
}

/// A small wheel (verified before serving) for the single-fetch test.
fn counted_file() -> Vec<u8> {
    let payload: Vec<u8> = (0..200_000u32).map(|index| (index % 199) as u8).collect();
    wheel("counted", "1.0", &payload)
}

/// Size of the payload of the wheels that are large enough to be streamed to the first client.
const BIG_FILE_BYTES: usize = 10 * 1024 * 1024;

/// A large wheel whose bytes depend on `seed` (big 1.0 for seed 1, big 2.0 otherwise). Each is
/// built once: building and hashing 10 MB in a debug build takes seconds, which the upstream's
/// answers must not (the gateway's upstream budget in these tests is 5 s).
fn big_file(seed: u8) -> Vec<u8> {
    static BUILT: std::sync::Mutex<Vec<(u8, Vec<u8>)>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, bytes)) = built.iter().find(|(built_seed, _)| *built_seed == seed) {
        return bytes.clone();
    }
    let payload: Vec<u8> = (0..BIG_FILE_BYTES)
        .map(|index| (index % 251) as u8 ^ seed)
        .collect();
    let bytes = wheel("big", if seed == 1 { "1.0" } else { "2.0" }, &payload);
    built.push((seed, bytes.clone()));
    bytes
}

/// An upstream that misbehaves on purpose: one file does not match its published digest, the
/// other breaks off half-way.
fn faulty_upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let announced = hex::encode(Sha256::digest(b"the bytes the index promises"));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let announced = announced.clone();
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut request_line = String::new();
                let _ = reader.read_line(&mut request_line);
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).map_or(true, |read| read == 0)
                        || header == "\r\n"
                    {
                        break;
                    }
                }
                let path = request_line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("/")
                    .to_owned();
                if path.starts_with("/simple/big") {
                    // big-1.0 is served as announced; big-2.0 is served with other bytes than announced.
                    let good = hex::encode(Sha256::digest(big_file(1)));
                    let promised = hex::encode(Sha256::digest(big_file(3)));
                    let body = format!(
                        r#"{{"meta":{{"api-version":"1.1"}},"name":"big","files":[{{"filename":"big-1.0-py3-none-any.whl","url":"/files/big-1.0-py3-none-any.whl","hashes":{{"sha256":"{good}"}},"size":{size}}},{{"filename":"big-2.0-py3-none-any.whl","url":"/files/big-2.0-py3-none-any.whl","hashes":{{"sha256":"{promised}"}},"size":{size}}}]}}"#,
                        size = big_file(1).len()
                    );
                    let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.pypi.simple.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                } else if let Some(seed) = path
                    .strip_prefix("/files/big-")
                    .and_then(|rest| rest.chars().next())
                    .and_then(|c| c.to_digit(10))
                {
                    let body = big_file(seed as u8);
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(&body);
                } else if path.starts_with("/simple/counted") {
                    let digest = hex::encode(Sha256::digest(counted_file()));
                    let body = format!("<a href=\"/files/counted-1.0-py3-none-any.whl#sha256={digest}\">counted-1.0-py3-none-any.whl</a>\n");
                    let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                } else if path.ends_with("counted-1.0-py3-none-any.whl") {
                    COUNTED_FETCHES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let body = counted_file();
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    // Slowly, so that concurrent requests overlap with the fetch.
                    for chunk in body.chunks(body.len() / 10) {
                        let _ = stream.write_all(chunk);
                        std::thread::sleep(Duration::from_millis(30));
                    }
                } else if path.starts_with("/simple/redirected") {
                    // Same port, another host name: a redirect Formulary must not follow.
                    let _ = write!(stream, "HTTP/1.1 302 Found\r\nLocation: http://localhost:{port}/simple/faulty/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                } else if path.starts_with("/simple/faulty") {
                    let body = format!(
                        "<a href=\"/files/faulty-1.0-py3-none-any.whl#sha256={announced}\">faulty-1.0-py3-none-any.whl</a>\n<a href=\"/files/faulty-2.0-py3-none-any.whl\">faulty-2.0-py3-none-any.whl</a>\n"
                    );
                    let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                } else if path.ends_with("faulty-1.0-py3-none-any.whl") {
                    let body = b"different bytes altogether";
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(body);
                } else if path.ends_with("faulty-2.0-py3-none-any.whl") {
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\nConnection: close\r\n\r\n"
                    );
                    let _ = stream.write_all(&[7u8; 100_000]);
                    let _ = stream.shutdown(std::net::Shutdown::Both);
                } else {
                    let _ = write!(
                        stream,
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                }
            });
        }
    });
    format!("http://127.0.0.1:{port}/simple/")
}

fn files_under(folder: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if let Ok(items) = std::fs::read_dir(folder) {
        for item in items.flatten() {
            let path = item.path();
            if path.is_dir() {
                found.extend(files_under(&path));
            } else {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn corrupt_and_interrupted_upstream_files_are_refused_and_never_cached() {
    let workspace = Workspace::new();
    let upstream = faulty_upstream();
    let (_server, base) = gateway(&workspace, &format!("[\"{upstream}\"]"));
    for (file, expected) in [
        (
            "faulty-1.0-py3-none-any.whl",
            "corrupt or mismatched faulty-1.0-py3-none-any.whl (its sha256 is",
        ),
        ("faulty-2.0-py3-none-any.whl", "did not answer"),
    ] {
        let url = format!("{base}/pypi/files/faulty/{file}");
        let script = format!("import urllib.request\ntry:\n urllib.request.urlopen('{base}/pypi/simple/faulty/')\n urllib.request.urlopen('{url}')\n print('200')\nexcept urllib.error.HTTPError as e:\n print(e.code, e.read().decode())");
        let output = Command::new("python3")
            .args(["-c", &script])
            .output()
            .expect("python");
        let answer = text(&output.stdout);
        assert!(
            answer.starts_with("502") && answer.contains(expected),
            "{file}: {answer}"
        );
    }
    let blobs = files_under(&workspace.folder.path().join("data/blobs"));
    assert!(
        blobs.is_empty(),
        "nothing half-cached or corrupt was kept: {blobs:?}"
    );

    // Hostile names and paths get a clear 404 and touch nothing outside the store.
    let long_name = "a".repeat(5_000);
    for path in [
        "/pypi/files/faulty/..%2F..%2F..%2Fetc%2Fpasswd".to_owned(),
        "/pypi/files/faulty/%2Fetc%2Fpasswd.whl".to_owned(),
        "/pypi/files/..%2Fx/faulty-1.0-py3-none-any.whl".to_owned(),
        "/pypi/simple/%2E%2E/".to_owned(),
        "/pypi/simple/bad%0Aname/".to_owned(),
        format!("/pypi/simple/{long_name}/"),
        "/o/..%2F..%2Fetc/pypi/simple/faulty/".to_owned(),
        "/@1999-99-99/pypi/simple/faulty/".to_owned(),
    ] {
        let script = format!("import urllib.request\ntry:\n urllib.request.urlopen('{base}{path}')\n print('200')\nexcept urllib.error.HTTPError as e:\n print(e.code, e.headers.get('content-type'))");
        let output = Command::new("python3")
            .args(["-c", &script])
            .output()
            .expect("python");
        let answer = text(&output.stdout);
        assert!(
            answer.starts_with("404 application/problem+json"),
            "{path}: {answer}"
        );
    }
    assert!(files_under(&workspace.folder.path().join("data/blobs")).is_empty());

    // An upstream that redirects to another host is not followed.
    let script = format!("import urllib.request\ntry:\n urllib.request.urlopen('{base}/pypi/simple/redirected/')\n print('200')\nexcept urllib.error.HTTPError as e:\n print(e.code, e.read().decode())");
    let output = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python");
    let answer = text(&output.stdout);
    assert!(
        answer.starts_with("502") && answer.contains("another host"),
        "{answer}"
    );
}

#[test]
fn an_organisation_pulls_from_upstreams_of_its_own() {
    let workspace = Workspace::new();
    workspace.ok(&["org", "add", "RJ3", "--name", "A trust with its own mirror"]);
    let own_upstream = faulty_upstream();
    let (_server, base) = gateway_with(
        &workspace,
        "[]",
        &[(
            "FORMULARY_PYPI_ORGANISATION_UPSTREAMS",
            format!("{{RJ3=[\"{own_upstream}\"]}}"),
        )],
    );
    let status = |path: &str| {
        let script = format!("import urllib.request\ntry:\n print(urllib.request.urlopen('{base}{path}').status)\nexcept urllib.error.HTTPError as e:\n print(e.code)");
        text(
            &Command::new("python3")
                .args(["-c", &script])
                .output()
                .expect("python")
                .stdout,
        )
        .trim()
        .to_owned()
    };
    assert_eq!(
        status("/o/RJ3/pypi/simple/faulty/"),
        "200",
        "RJ3's own upstream has the project"
    );
    assert_eq!(
        status("/pypi/simple/faulty/"),
        "404",
        "the default view has no upstream at all"
    );
    assert_eq!(
        status("/o/NATIONAL/pypi/simple/faulty/"),
        "404",
        "other organisations do not see RJ3's upstream"
    );
}

#[test]
fn large_files_stream_to_the_first_client_and_a_corrupt_one_breaks_off_uncached() {
    let workspace = Workspace::new();
    let upstream = faulty_upstream();
    let (_server, base) = gateway(&workspace, &format!("[\"{upstream}\"]"));
    // Build the upstream's files before any request, so the upstream answers at once.
    for seed in [2, 3] {
        big_file(seed);
    }
    let good = hex::encode(Sha256::digest(big_file(1)));
    let script = format!(
        "import hashlib, urllib.request\n\
         base = '{base}/pypi/files/big/'\n\
         body = urllib.request.urlopen(base + 'big-1.0-py3-none-any.whl').read()\n\
         print(hashlib.sha256(body).hexdigest() == '{good}', len(body))\n\
         try:\n    broken = urllib.request.urlopen(base + 'big-2.0-py3-none-any.whl').read()\n    print('complete', len(broken))\n\
         except Exception as error:\n    print('broken', type(error).__name__)\n\
         again = urllib.request.urlopen(base + 'big-1.0-py3-none-any.whl')\n\
         print(again.headers.get('etag'), len(again.read()))"
    );
    let output = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python");
    let lines: Vec<String> = text(&output.stdout).lines().map(str::to_owned).collect();
    assert_eq!(
        lines.first().map(String::as_str),
        Some(format!("True {}", big_file(1).len()).as_str()),
        "{lines:?} {}",
        text(&output.stderr)
    );
    assert!(
        lines.get(1).is_some_and(|line| line.starts_with("broken")),
        "a corrupt file never arrives whole: {lines:?}"
    );
    assert_eq!(
        lines.get(2).map(String::as_str),
        Some(format!("\"sha256-{good}\" {}", big_file(1).len()).as_str()),
        "the second request is served from the cache: {lines:?}"
    );
    let stored: Vec<PathBuf> = files_under(&workspace.folder.path().join("data/blobs"));
    assert_eq!(stored.len(), 1, "only the good file is cached: {stored:?}");
    assert!(stored[0].ends_with(&good));
}

#[test]
fn concurrent_requests_for_an_uncached_file_fetch_it_from_upstream_once() {
    let workspace = Workspace::new();
    let upstream = faulty_upstream();
    let (_server, base) = gateway(&workspace, &format!("[\"{upstream}\"]"));
    let script = format!(
        "import urllib.request, concurrent.futures\n\
         urllib.request.urlopen('{base}/pypi/simple/counted/').read()\n\
         url = '{base}/pypi/files/counted/counted-1.0-py3-none-any.whl'\n\
         with concurrent.futures.ThreadPoolExecutor(12) as pool:\n    sizes = list(pool.map(lambda _: len(urllib.request.urlopen(url).read()), range(12)))\n\
         print(sizes)"
    );
    let output = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python");
    let sizes = text(&output.stdout);
    assert_eq!(
        sizes.trim(),
        format!("{:?}", vec![counted_file().len(); 12]),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(
        COUNTED_FETCHES.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "twelve concurrent requests, one upstream fetch"
    );
}
