"""Fetch axe-core for the browser tests: `python tests/fetch_axe.py VERSION FOLDER` (run by `make test`).

The npm registry's tarball of that version is downloaded, checked against the SHA-512 pinned here (the
registry's published integrity of that version, so a changed file fails loudly), and only axe.min.js and
its LICENSE are unpacked into FOLDER (git-ignored). No Node.js is needed, and the app never loads it.
"""
from __future__ import annotations

import base64
import hashlib
import io
import sys
import tarfile
import urllib.request
from pathlib import Path

# dist.integrity of https://registry.npmjs.org/axe-core/<version>
INTEGRITY = {"4.14.1": "sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ=="}
WANTED = ("package/axe.min.js", "package/LICENSE")


def fetch(version: str, folder: Path) -> None:
    if version not in INTEGRITY:
        sys.exit(f"no pinned integrity for axe-core {version}: add the registry's dist.integrity to INTEGRITY")
    url = f"https://registry.npmjs.org/axe-core/-/axe-core-{version}.tgz"
    with urllib.request.urlopen(url, timeout=60) as response:
        data = response.read()
    digest = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    if digest != INTEGRITY[version]:
        sys.exit(f"axe-core {version} from {url} does not match its pinned SHA-512")
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for name in WANTED:
            member = tar.getmember(name)
            (folder / Path(name).name).write_bytes(tar.extractfile(member).read())
    print(f"axe-core {version} -> {folder}")


if __name__ == "__main__":
    fetch(sys.argv[1], Path(sys.argv[2]))
