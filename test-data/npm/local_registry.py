"""Builds a local npm registry folder for the gateway's failure tests, from real tarballs.

usage: local_registry.py TARBALLS_DIR OUT_DIR BASE_URL

TARBALLS_DIR holds chalk-5.6.0.tgz and is-number-7.0.0.tgz as published on the npm
registry. OUT_DIR receives registry/<name> (packuments) and tarballs/<file>, with tarball
URLs under BASE_URL (the static server's address):

- chalk 5.6.0 (the real tarball) and 5.6.1: the same contents with package.json saying
  5.6.1, standing in for the malicious release of 8 September 2025 (MAL-2025-46969); the
  upstream's dist-tags point `latest` at 5.6.1, as the registry did that day;
- is-number 7.0.0, whose packument publishes a wrong integrity (a damaged upstream);
- @formulary-test/pad 1.0.0, a scoped package made from is-number's contents;
- formulary-hook 1.0.0 (no scripts) and 1.1.0 (a `postinstall` script that writes
  `postinstall-ran` in the package's folder), made from is-number's contents, for the
  install-scripts setting.
"""

import base64
import hashlib
import io
import json
import os
import sys
import tarfile


def digests(data):
    return {
        "integrity": "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode(),
        "shasum": hashlib.sha1(data).hexdigest(),
    }


def rewrite(data, **fields):
    """The tarball with package/package.json's fields replaced."""
    source = tarfile.open(fileobj=io.BytesIO(data), mode="r:gz")
    out = io.BytesIO()
    target = tarfile.open(fileobj=out, mode="w:gz")
    for member in source.getmembers():
        content = source.extractfile(member).read() if member.isfile() else None
        if member.name == "package/package.json":
            manifest = json.loads(content)
            manifest.update(fields)
            content = json.dumps(manifest, indent=2).encode()
            member.size = len(content)
        target.addfile(member, io.BytesIO(content) if content is not None else None)
    target.close()
    return out.getvalue()


def version_object(name, version, filename, data, base):
    return {
        "name": name,
        "version": version,
        "license": "MIT",
        "dist": dict(digests(data), tarball=f"{base}tarballs/{filename}"),
    }


def main():
    tarballs, out, base = sys.argv[1], sys.argv[2], sys.argv[3]
    os.makedirs(f"{out}/registry", exist_ok=True)
    os.makedirs(f"{out}/tarballs", exist_ok=True)
    chalk = open(f"{tarballs}/chalk-5.6.0.tgz", "rb").read()
    bad_chalk = rewrite(chalk, version="5.6.1")
    is_number = open(f"{tarballs}/is-number-7.0.0.tgz", "rb").read()
    pad = rewrite(is_number, name="@formulary-test/pad", version="1.0.0")
    hook_script = {"postinstall": "node -e \"require('fs').writeFileSync('postinstall-ran', 'yes')\""}
    hook = rewrite(is_number, name="formulary-hook", version="1.0.0")
    hook_scripted = rewrite(is_number, name="formulary-hook", version="1.1.0", scripts=hook_script)
    files = {
        "formulary-hook-1.0.0.tgz": hook,
        "formulary-hook-1.1.0.tgz": hook_scripted,
        "chalk-5.6.0.tgz": chalk,
        "chalk-5.6.1.tgz": bad_chalk,
        "is-number-7.0.0.tgz": is_number,
        "pad-1.0.0.tgz": pad,
    }
    for filename, data in files.items():
        open(f"{out}/tarballs/{filename}", "wb").write(data)
    packuments = {
        "chalk": {
            "name": "chalk",
            "dist-tags": {"latest": "5.6.1"},
            "time": {
                "created": "2013-08-03T00:20:24.465Z",
                "modified": "2025-09-08T13:56:31.000Z",
                "5.6.0": "2025-08-20T10:00:00.000Z",
                "5.6.1": "2025-09-08T13:16:00.000Z",
            },
            "versions": {
                "5.6.0": version_object("chalk", "5.6.0", "chalk-5.6.0.tgz", chalk, base),
                "5.6.1": version_object("chalk", "5.6.1", "chalk-5.6.1.tgz", bad_chalk, base),
            },
        },
        "is-number": {
            "name": "is-number",
            "dist-tags": {"latest": "7.0.0"},
            "time": {"7.0.0": "2018-07-04T15:08:58.238Z"},
            "versions": {
                "7.0.0": dict(
                    version_object("is-number", "7.0.0", "is-number-7.0.0.tgz", is_number, base),
                    dist=dict(digests(b"not the tarball"), tarball=f"{base}tarballs/is-number-7.0.0.tgz"),
                )
            },
        },
        "formulary-hook": {
            "name": "formulary-hook",
            "dist-tags": {"latest": "1.1.0"},
            "time": {"1.0.0": "2020-01-01T00:00:00.000Z", "1.1.0": "2020-02-01T00:00:00.000Z"},
            "versions": {
                "1.0.0": version_object("formulary-hook", "1.0.0", "formulary-hook-1.0.0.tgz", hook, base),
                "1.1.0": dict(
                    version_object("formulary-hook", "1.1.0", "formulary-hook-1.1.0.tgz", hook_scripted, base),
                    scripts=hook_script,
                ),
            },
        },
        "@formulary-test/pad": {
            "name": "@formulary-test/pad",
            "dist-tags": {"latest": "1.0.0"},
            "time": {"1.0.0": "2020-01-01T00:00:00.000Z"},
            "versions": {
                "1.0.0": version_object("@formulary-test/pad", "1.0.0", "pad-1.0.0.tgz", pad, base)
            },
        },
    }
    os.makedirs(f"{out}/registry/@formulary-test", exist_ok=True)
    for name, document in packuments.items():
        # A static server decodes %2f, so a scoped packument lives at registry/@scope/name.
        open(f"{out}/registry/{name}", "w").write(json.dumps(document))


main()
