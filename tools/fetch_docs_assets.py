"""Bring the interactive-docs assets (Swagger UI, ReDoc) into the package, from npm, pinned.

    python tools/fetch_docs_assets.py           # fetch, verify, write velocipy/openapi/assets/
    python tools/fetch_docs_assets.py --check   # verify the shipped files against the manifest

The docs pages are served from files inside the package, never from a CDN: many
users' networks (and this project's machines) reach none. Each npm tarball is
fetched with the npm client (`npm pack`), its sha256 must equal the one pinned
below before anything is extracted, and only the files the pages need, with
their licence files, are written. `MANIFEST.json` beside them records each
package's version, tarball checksum, licence and every shipped file's sha256;
`tests/openapi/test_assets.py` holds the shipped files to it.

To move to a newer version: change `version` and set `tarball_sha256` to the
new tarball's checksum (the script prints it when they differ), run the script,
read the diff of the licence files, commit.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "velocipy" / "openapi" / "assets"
MANIFEST = ASSETS / "MANIFEST.json"


@dataclass(frozen=True)
class Package:
    """One npm package: the pinned version and checksum, and what we ship of it."""

    name: str
    version: str
    tarball_sha256: str
    licence: str
    #: Path inside the tarball (under `package/`) → file name in our assets folder.
    files: dict[str, str]


PACKAGES = (
    Package(
        name="swagger-ui-dist",
        version="5.35.0",
        tarball_sha256="1b8e891893404ea4c3558b6a87e2a3e494e7eedba41168c2ece5800a391a6ea6",
        licence="Apache-2.0",
        files={
            "swagger-ui-bundle.js": "swagger-ui-bundle.js",
            "swagger-ui.css": "swagger-ui.css",
            "oauth2-redirect.js": "oauth2-redirect.js",
            "LICENSE": "LICENSE",
            "NOTICE": "NOTICE",
            "swagger-ui-bundle.js.LICENSE.txt": "swagger-ui-bundle.js.LICENSE.txt",
        },
    ),
    Package(
        name="redoc",
        version="2.5.4",
        tarball_sha256="44922df4d0eb45c1b066c09ec251e6bd9bd7ded16bc69e87613337b9d911a56e",
        licence="MIT",
        files={
            "bundles/redoc.standalone.js": "redoc.standalone.js",
            "LICENSE": "LICENSE",
        },
    ),
)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_tarball(package: Package, workdir: Path) -> bytes:
    """The package's tarball, fetched by the npm client and checked against the pin."""
    spec = f"{package.name}@{package.version}"
    subprocess.run(
        ["npm", "pack", spec, "--silent", "--pack-destination", str(workdir)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    (tarball,) = workdir.glob(f"{package.name}-{package.version}.tgz")
    data = tarball.read_bytes()
    if sha256(data) != package.tarball_sha256:
        raise SystemExit(
            f"{spec}: tarball sha256 is {sha256(data)}, pinned {package.tarball_sha256}; "
            "refusing to extract it"
        )
    return data


def extract(package: Package, tarball: bytes) -> dict[str, bytes]:
    """The files we ship of `package`, by their name in our assets folder."""
    found: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        for inner, shipped in package.files.items():
            member = archive.extractfile(f"package/{inner}")
            if member is None:
                raise SystemExit(f"{package.name}: package/{inner} is not a file")
            found[shipped] = member.read()
    return found


def fetch() -> None:
    manifest: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for package in PACKAGES:
            files = extract(package, fetch_tarball(package, Path(tmp)))
            folder = ASSETS / package.name
            folder.mkdir(parents=True, exist_ok=True)
            for name, data in files.items():
                (folder / name).write_bytes(data)
            manifest[package.name] = {
                "version": package.version,
                "tarball_sha256": package.tarball_sha256,
                "licence": package.licence,
                "files": {name: sha256(data) for name, data in sorted(files.items())},
            }
    MANIFEST.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    print(f"wrote {MANIFEST}")


def check() -> int:
    """Exit status 0 when every shipped file matches the manifest and the pins."""
    manifest = json.loads(MANIFEST.read_text())
    problems = []
    for package in PACKAGES:
        entry = manifest.get(package.name)
        if entry is None or entry["version"] != package.version:
            problems.append(f"{package.name}: manifest does not record version {package.version}")
            continue
        for name, digest in entry["files"].items():
            path = ASSETS / package.name / name
            if not path.is_file() or sha256(path.read_bytes()) != digest:
                problems.append(f"{package.name}/{name}: missing or changed")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify instead of fetching")
    args = parser.parse_args()
    if args.check:
        raise SystemExit(check())
    fetch()


if __name__ == "__main__":
    main()
