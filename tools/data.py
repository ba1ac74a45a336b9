"""Fetch the public datasets (Toxic Spans, ConvAbuse) into REVIEWAPP_DATA_DIR and verify them.

    python -m tools.data [--dest DIR] [--base-url URL]      # what `make data` runs

Tests, the demo (`manage.py seed_demo --data …`) and the benchmarks read these files from
REVIEWAPP_DATA_DIR. On CI it is `../shared/data` beside the clone; on a fresh machine with
internet this script fills it from the datasets' public GitHub repositories, at the commits our
copies were taken from, and checks every file against the sha256 pinned below. A file whose sum
does not match is refused: it stays in a temporary file that is deleted, nothing is installed and
the exit status is 1. A file already present with the right sum is not downloaded again.

Standard library only, so it runs before the virtualenv exists. `--base-url` (or
REVIEWAPP_DATA_BASE_URL) replaces https://github.com for every download: a mirror, or the
loopback server of tests/test_data_fetch.py.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BASE_URL = "https://github.com"
CHUNK = 1 << 20
TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class DataFile:
    """One file we use: where it lives upstream (repository, commit, path) and where it goes here."""

    dataset: str  # folder under REVIEWAPP_DATA_DIR
    name: str  # file name in that folder (what the readers open)
    repo: str  # owner/name on GitHub
    commit: str
    upstream_path: str
    sha256: str

    def url(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}/{self.repo}/raw/{self.commit}/{self.upstream_path}"


TOXIC_SPANS = ("ipavlopoulos/toxic_spans", "beaf170")
CONVABUSE = ("amandacurry/convabuse", "c0a9469")
# Sums of the copies in ../shared/data (the files CI tests against); see its README.md.
FILES = (
    DataFile("toxic-spans", "data_comments.csv", *TOXIC_SPANS, "data/comments.csv",
             "76cd6ebd10a890d269c0a7e5e451f3da12375219906f314fd9cfb1e18b1a905f"),
    DataFile("toxic-spans", "data_annotations.csv", *TOXIC_SPANS, "data/annotations.csv",
             "f67725aa9de73cd4ef9050222f6ae985ef0e33e8da89cb8137ffeb9a1d0fc32b"),
    DataFile("toxic-spans", "data_spans.csv", *TOXIC_SPANS, "data/spans.csv",
             "389c6964db5d96d79ecfe038aa4ffe04abafd64b6d6427fbad4ec7fb2c7672aa"),
    DataFile("convabuse", "ConvAbuseEMNLPfull.csv", *CONVABUSE, "1_full/ConvAbuseEMNLPfull.csv",
             "c054ed30375651cd234930eada705fee6fcad79f86bdca45c1e557284b6b1af4"),
    DataFile("convabuse", "ConvAbuseEMNLPtrain.csv", *CONVABUSE, "2_splits/ConvAbuseEMNLPtrain.csv",
             "23abab3eff791d0e8cac681cec15a5ef299ed052699e4fca762d1d4640c36936"),
    DataFile("convabuse", "ConvAbuseEMNLPvalid.csv", *CONVABUSE, "2_splits/ConvAbuseEMNLPvalid.csv",
             "a28bc3083fe3ea305b8c417539a20fda7e68057dc06365507b85c46b60e65443"),
    DataFile("convabuse", "ConvAbuseEMNLPtest.csv", *CONVABUSE, "2_splits/ConvAbuseEMNLPtest.csv",
             "8387d70332cd2245a095240534629152dd5729e8e9556e91b6b20dabdc0bb9d0"),
)  # fmt: skip
DATASETS = tuple(dict.fromkeys(f.dataset for f in FILES))


class ChecksumMismatch(Exception):
    """A downloaded file is not the one we pinned; it was not installed."""


def data_dir() -> Path:
    """REVIEWAPP_DATA_DIR, else ../shared/data beside the clone when it exists, else .data/ in it.

    The same rule as `REVIEWAPP_DATA_DIR` in the Django settings (a test keeps them equal); it is
    repeated here because this script and the benchmarks run without Django."""
    configured = os.environ.get("REVIEWAPP_DATA_DIR")
    if configured:
        return Path(configured).expanduser().resolve()
    shared = REPO_ROOT.parent / "shared" / "data"
    return (shared if shared.is_dir() else REPO_ROOT / ".data").resolve()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def is_installed(file: DataFile, dest: Path) -> bool:
    """True when the file is in place with the pinned sum (a wrong one counts as missing)."""
    target = dest / file.dataset / file.name
    return target.is_file() and sha256_of(target) == file.sha256


def file_fetch(*, file: DataFile, dest: Path, base_url: str) -> bool:
    """Download one file beside its target, check its sum, then rename it into place.

    Returns False when it was already present with the right sum (nothing downloaded). Raises
    ChecksumMismatch, leaving any existing target untouched, when the download is not the pinned
    file; the temporary file is always removed."""
    if is_installed(file, dest):
        return False
    folder = dest / file.dataset
    folder.mkdir(parents=True, exist_ok=True)
    # Same folder as the target, so the final rename is atomic and never crosses file systems.
    handle, temp_name = tempfile.mkstemp(prefix=f".{file.name}.", suffix=".part", dir=folder)
    temp = Path(temp_name)
    try:
        digest = hashlib.sha256()
        # The scheme is checked in main(): http(s) only, never file: or custom handlers.
        response = urllib.request.urlopen(file.url(base_url), timeout=TIMEOUT_SECONDS)  # noqa: S310
        with os.fdopen(handle, "wb") as out, response:
            while chunk := response.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != file.sha256:
            raise ChecksumMismatch(
                f"{file.url(base_url)}: sha256 {digest.hexdigest()} is not the pinned {file.sha256}; "
                f"{folder / file.name} was not installed"
            )
        temp.replace(folder / file.name)
    finally:
        temp.unlink(missing_ok=True)
    return True


def data_fetch(*, dest: Path, base_url: str) -> int:
    """Fetch every missing file; exit status 0 when all are in place, 1 when any was refused or failed."""
    failures = 0
    for file in FILES:
        target = dest / file.dataset / file.name
        try:
            fetched = file_fetch(file=file, dest=dest, base_url=base_url)
        except ChecksumMismatch as error:
            failures += 1
            print(f"data: REFUSED {error}", file=sys.stderr)
            continue
        except OSError as error:  # URLError and HTTPError are OSErrors
            failures += 1
            print(f"data: FAILED {file.url(base_url)} → {target}: {error}", file=sys.stderr)
            continue
        print(f"data: {'fetched' if fetched else 'present'} {target}")
    if failures:
        print(f"data: {failures} of {len(FILES)} files missing or refused in {dest}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=None, help="Target folder (default: REVIEWAPP_DATA_DIR rule).")
    parser.add_argument(
        "--base-url",
        default=os.environ.get("REVIEWAPP_DATA_BASE_URL") or DEFAULT_BASE_URL,
        help=f"Replaces {DEFAULT_BASE_URL} in every download URL (a mirror, or a test server).",
    )
    args = parser.parse_args(argv)
    if not args.base_url.startswith(("https://", "http://")):
        parser.error(f"--base-url must be an http(s) URL, not {args.base_url!r}")
    return data_fetch(dest=args.dest or data_dir(), base_url=args.base_url)


if __name__ == "__main__":
    sys.exit(main())
