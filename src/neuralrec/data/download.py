"""Downloads with checksum verification and atomic writes.

An archive is streamed to a temporary file beside its destination, hashed on the way, checked
against the published checksum and only then renamed into place; extraction goes to a temporary
directory that is swapped in when complete. A failure at any step leaves no partial file behind.
"""

from __future__ import annotations

import hashlib
import shutil
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from neuralrec.data.registry import DatasetSpec, cache_dir, not_found
from neuralrec.errors import ChecksumError, DataError
from neuralrec.utils.atomic import atomic_directory, atomic_path

Progress = Callable[[int, int | None], None]
_CHUNK = 1 << 20

#: the opener used for every download (tests replace it; file:// URLs work with the default)
urlopen = urllib.request.urlopen


def file_digests(path: Path) -> dict[str, str]:
    """sha256 and md5 of a file, read in chunks."""
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            sha.update(chunk)
            md5.update(chunk)
    return {"sha256": sha.hexdigest(), "md5": md5.hexdigest()}


def verify_checksum(
    path: Path,
    spec: DatasetSpec,
    digests: dict[str, str] | None = None,
    *,
    source: str | None = None,
) -> str:
    """Check ``path`` against the spec's sha256 (or md5 where only that is published).

    Returns the algorithm used; raises :class:`ChecksumError` naming ``source`` (default: the
    path) on a mismatch. A spec with neither checksum is refused rather than trusted blindly.
    """
    digests = digests or file_digests(path)
    source = source or str(path)
    for algo in ("sha256", "md5"):
        expected = getattr(spec, algo)
        if expected:
            if digests[algo] != expected.lower():
                raise ChecksumError(
                    f"{algo} checksum mismatch: expected {expected}, got {digests[algo]} "
                    f"(a corrupt or different archive; delete it and download again)",
                    source=source,
                )
            return algo
    raise ChecksumError(f"no published checksum for {spec.name}", source=source)


def fetch(spec: DatasetSpec, dest: Path, *, progress: Progress | None = None) -> Path:
    """Download ``spec.url`` to ``dest`` atomically, verifying its checksum before the rename."""
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    try:
        with atomic_path(dest) as tmp:
            with urlopen(spec.url, timeout=60) as resp, open(tmp, "wb") as out:
                total = resp.headers.get("Content-Length") if hasattr(resp, "headers") else None
                total_n = int(total) if total else spec.size
                done = 0
                while chunk := resp.read(_CHUNK):
                    out.write(chunk)
                    sha.update(chunk)
                    md5.update(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total_n)
            digests = {"sha256": sha.hexdigest(), "md5": md5.hexdigest()}
            verify_checksum(tmp, spec, digests, source=spec.url)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise not_found(spec, None, f"Downloading {spec.url} failed: {exc}") from exc
    return dest


def extract(spec: DatasetSpec, archive: Path, target: Path) -> Path:
    """Unpack the members under the archive's top folder into ``target`` (flattened).

    Refuses members that would escape the target, and an archive that lacks a required file.
    """
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        raise DataError(f"not a valid zip archive: {exc}", source=str(archive)) from None
    with zf, atomic_directory(target) as tmp:
        for info in zf.infolist():
            parts = PurePosixPath(info.filename).parts
            if info.is_dir() or len(parts) < 2 or parts[0] != spec.folder:
                continue
            if any(p in ("..", "") or p.startswith("/") for p in parts):
                raise DataError(f"unsafe member name {info.filename!r}", source=str(archive))
            out = tmp.joinpath(*parts[1:])
            out.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, _CHUNK)
        missing = [f for f in spec.files if not (tmp / f).is_file()]
        if missing:
            raise DataError(
                f"archive lacks {', '.join(f'{spec.folder}/{m}' for m in missing)}",
                source=str(archive),
            )
    return target


def download(
    spec: DatasetSpec,
    *,
    force: bool = False,
    progress: Progress | None = None,
    archive: Path | None = None,
) -> Path:
    """Make sure ``spec`` is extracted in the cache and return that directory.

    ``archive`` uses an already present zip (e.g. one in the offline home) instead of the
    network; it is checksum-verified all the same.
    """
    root = cache_dir()
    target = root / "datasets" / spec.name
    if not force and all((target / f).is_file() for f in spec.files):
        return target
    if archive is not None:
        verify_checksum(archive, spec)
        return extract(spec, archive, target)
    archive = root / "downloads" / f"{spec.name}.zip"
    fetch(spec, archive, progress=progress)
    extract(spec, archive, target)
    # the extracted copy is the cache; keeping the zip too would double the disk use
    archive.unlink(missing_ok=True)
    return target
