"""Drives the real conda tools for Formulary's conda gateway tests.

  driver.py channel OUT
      Builds a local upstream channel in OUT from package contents made here: noarch packages
      (tinylib 1.0 and 2.0, tinyapp depending on tinylib, r-tinyr as an R package) as .tar.bz2,
      and a linux-64 package (platformtool 1.1.0 and 1.2.0) as .conda built with
      conda-package-handling (cph);
      then indexes it with py-rattler's indexer (repodata.json per subdirectory), dates every
      record a month ago except tinylib 2.0, indexed today, and writes channeldata.json and
      .sigs attestations for the two tinylib files.

  driver.py channel OUT advisory
      The same channel plus a linux-64 package that repackages a PyPI project with a real
      advisory: pytorch 1.13.0 and 1.13.1 (.tar.bz2; PyPI's torch before 1.13.1 is affected by
      PYSEC-2022-43015).

  driver.py install CHANNEL_URL PREFIX CACHE SPEC...
      Solves SPECs against the channel with py-rattler (linux-64 and noarch), installs them into
      PREFIX and prints one JSON line: {"solved": [{name, version, url}]}. py-rattler prefers
      CEP-16 sharded repodata (its default SourceConfig(sharded_enabled=True)). Then waits for a line
      on stdin; on "reinstall PREFIX2 CACHE2" installs the same records again into a fresh prefix
      with an empty cache and prints {"reinstalled": true} or {"error": "..."}.

py-rattler can crash at interpreter exit, so results are printed (and flushed) before exiting.
"""

import asyncio
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import time


def package_folder(root, name, version, build, subdir, depends, license, noarch, files):
    folder = os.path.join(root, f"{name}-{version}-{build}")
    os.makedirs(os.path.join(folder, "info"), exist_ok=True)
    paths = []
    for relative, content in files.items():
        path = os.path.join(folder, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(content)
        paths.append(
            {
                "_path": relative,
                "path_type": "hardlink",
                "sha256": hashlib.sha256(content).hexdigest(),
                "size_in_bytes": len(content),
            }
        )
    index = {
        "name": name,
        "version": version,
        "build": build,
        "build_number": 0,
        "depends": depends,
        "license": license,
        "subdir": subdir,
        "timestamp": int(time.time() * 1000) - 30 * 24 * 3600 * 1000,
    }
    if noarch:
        index["noarch"] = "generic"
    with open(os.path.join(folder, "info", "index.json"), "w") as handle:
        json.dump(index, handle)
    with open(os.path.join(folder, "info", "paths.json"), "w") as handle:
        json.dump({"paths": paths, "paths_version": 1}, handle)
    with open(os.path.join(folder, "info", "files"), "w") as handle:
        handle.write("\n".join(files) + "\n")
    return folder


def tar_bz2(folder, out):
    with tarfile.open(out, "w:bz2") as archive:
        for entry in sorted(os.listdir(folder)):
            archive.add(os.path.join(folder, entry), arcname=entry)


def make_channel(out, advisory=False):
    work = os.path.join(out, "..", "package-sources")
    os.makedirs(os.path.join(out, "noarch"), exist_ok=True)
    os.makedirs(os.path.join(out, "linux-64"), exist_ok=True)
    noarch = [
        ("tinylib", "1.0", [], "MIT"),
        ("tinylib", "2.0", [], "MIT"),
        ("tinyapp", "1.0", ["tinylib"], "BSD-3-Clause"),
        ("r-tinyr", "0.3.1", ["tinylib >=1.0"], "GPL-2.0-or-later"),
    ]
    for name, version, depends, license in noarch:
        folder = package_folder(
            work, name, version, "0", "noarch", depends, license, True,
            {f"share/{name}/VERSION": f"{name} {version}\n".encode()},
        )
        tar_bz2(folder, os.path.join(out, "noarch", f"{name}-{version}-0.tar.bz2"))
    for version in ("1.1.0", "1.2.0"):
        folder = package_folder(
            work, "platformtool", version, "h0_0", "linux-64", [], "Apache-2.0", False,
            {"bin/platformtool": f"#!/bin/sh\necho platformtool {version}\n".encode()},
        )
        subprocess.run(
            ["cph", "create", folder, f"platformtool-{version}-h0_0.conda",
             "--out-folder", os.path.join(out, "linux-64")],
            check=True, stdout=subprocess.DEVNULL,
        )
    if advisory:
        for version in ("1.13.0", "1.13.1"):
            folder = package_folder(
                work, "pytorch", version, "py_0", "linux-64", [], "BSD-3-Clause", False,
                {"lib/torch/VERSION": f"torch {version}\n".encode()},
            )
            tar_bz2(folder, os.path.join(out, "linux-64", f"pytorch-{version}-py_0.tar.bz2"))
    import rattler

    asyncio.run(rattler.index.index_fs(out, write_zst=False, write_shards=False))
    # The indexer dates every record now (CEP-47 indexed_timestamp). Make the channel look
    # like one that has existed for a month, where only tinylib 2.0 was indexed today.
    for subdir in ("noarch", "linux-64"):
        path = os.path.join(out, subdir, "repodata.json")
        with open(path) as handle:
            repodata = json.load(handle)
        for key in ("packages", "packages.conda"):
            for filename, record in repodata.get(key, {}).items():
                if not filename.startswith("tinylib-2.0-"):
                    record["indexed_timestamp"] = record["timestamp"]
        with open(path, "w") as handle:
            json.dump(repodata, handle, indent=1, sort_keys=True)
    # Channel-level metadata as conda-index writes it, and CEP-27 attestations (.sigs) for
    # two of the noarch packages (their content is passed through, not checked, by Formulary).
    channeldata = {
        "channeldata_version": 1,
        "subdirs": ["linux-64", "noarch"],
        "packages": {
            name: {"version": version, "subdirs": ["noarch"], "license": license}
            for name, version, _, license in noarch
        },
    }
    with open(os.path.join(out, "channeldata.json"), "w") as handle:
        json.dump(channeldata, handle, indent=1, sort_keys=True)
    for filename in ("tinylib-1.0-0.tar.bz2", "tinylib-2.0-0.tar.bz2"):
        with open(os.path.join(out, "noarch", filename + ".sigs"), "w") as handle:
            json.dump([{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                        "subject": filename}], handle)


def install(channel, prefix, cache, specs):
    import rattler

    async def run():
        gateway = rattler.Gateway(
            cache_dir=cache, default_config=rattler.SourceConfig(sharded_enabled=True)
        )
        records = await rattler.solve(
            [rattler.Channel(channel)],
            specs,
            gateway=gateway,
            platforms=["linux-64", "noarch"],
        )
        await rattler.install(records, prefix, cache_dir=cache, show_progress=False)
        return records

    try:
        records = asyncio.run(run())
    except Exception as error:  # noqa: BLE001 - the test reads the message
        print(json.dumps({"error": f"{type(error).__name__}: {error}"}), flush=True)
        return
    print(
        json.dumps(
            {"solved": [{"name": r.name.normalized, "version": str(r.version), "url": str(r.url)} for r in records]}
        ),
        flush=True,
    )
    line = sys.stdin.readline().split()
    if line[:1] == ["reinstall"]:
        try:
            asyncio.run(rattler.install(records, line[1], cache_dir=line[2], show_progress=False))
            print(json.dumps({"reinstalled": True}), flush=True)
        except Exception as error:  # noqa: BLE001
            print(json.dumps({"error": f"{type(error).__name__}: {error}"}), flush=True)


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "channel":
        make_channel(sys.argv[2], advisory="advisory" in sys.argv[3:])
    elif command == "install":
        install(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
    else:
        sys.exit(f"unknown command {command}")
    sys.stdout.flush()
    os._exit(0)
