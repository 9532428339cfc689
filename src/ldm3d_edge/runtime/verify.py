"""Checking an artifact folder's files against its manifest: sizes always, sha256 once per file version.

A model folder that a cheap SSD damaged must not load and "generate" garbage. The manifest records every file's
sha256 (and, since this version, its size). `verify_folder` compares sizes (a stat per file) and hashes; a hash is
computed once per file version and remembered in the cache folder (verified.json, keyed by path, size, mtime and
inode), so a warm start only stats. A file rewritten in place keeps its size but gets a new mtime, so it is hashed
again; a change that restores the mtime as well goes unseen by `Pipeline.load` until `ldm3d verify`, which hashes
every file every time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import constants as C
from .errors import ModelFolderError
from .result import atomic_write

log = logging.getLogger(__name__)

VERIFIED_FILE = "verified.json"   # in the cache folder: {path: [size, mtime_ns, inode, sha256]}
_CHUNK = 16 * 1024 * 1024
PROGRESS_BYTES = 256 * 1024**2    # Pipeline.load shows a progress bar when it has more than this to hash


@dataclass(frozen=True)
class FileProblem:
    path: str            # relative to the folder, as the manifest writes it
    problem: str         # what is wrong, in words
    fatal: bool = True   # an unknown extra file is only a warning


@dataclass
class VerifyReport:
    root: Path
    files: int = 0                 # files the manifest lists
    hashed: int = 0                # hashed now
    remembered: int = 0            # hash taken from the cache (same path, size, mtime, inode)
    bytes_hashed: int = 0
    seconds: float = 0.0
    problems: list[FileProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(p.fatal for p in self.problems)

    @property
    def warnings(self) -> list[FileProblem]:
        return [p for p in self.problems if not p.fatal]

    def error(self) -> ModelFolderError:
        bad = [p for p in self.problems if p.fatal]
        what = "; ".join(f"{p.path}: {p.problem}" for p in bad)
        return ModelFolderError(f"model folder {self.root} is damaged ({len(bad)} file(s)): {what}. Re-export it "
                                "('ldm3d export') or download it again; 'ldm3d verify' lists every file")


def hash_into(h: Any, path: Path, on_bytes: Any = None) -> None:
    """Feed a file to the hash object `h` in 16 MB blocks (a 3.4 GB UNet is never read whole into memory)."""
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
            if on_bytes is not None:
                on_bytes(len(block))


def sha256_file(path: Path, on_bytes: Any = None) -> str:
    h = hashlib.sha256()
    hash_into(h, path, on_bytes)
    return h.hexdigest()


def _remembered_path() -> Path:
    return C.cache_base() / VERIFIED_FILE


def _read_remembered() -> dict[str, list[Any]]:
    try:
        raw = json.loads(_remembered_path().read_text())
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


def _write_remembered(entries: dict[str, list[Any]]) -> None:
    """Merged with what another process wrote meanwhile; entries of files that are gone are dropped. A lost race
    only costs a hash on the next start."""
    path = _remembered_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        merged = {**_read_remembered(), **entries}
        merged = {k: v for k, v in merged.items() if os.path.exists(k)}
        atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(merged)))   # a unique temporary name
    except OSError as e:     # a read-only cache folder must not stop a kiosk: it only hashes again next time
        log.warning("cannot remember verified hashes in %s: %s", path, e)


def verify_folder(root: str | Path, raw: dict[str, Any] | None = None, hashes: bool = True, remember: bool = True,
                  progress: bool | None = None) -> VerifyReport:
    """Check every file the manifest lists: present, of the recorded size, of the recorded sha256 (hashes=True;
    remember=True takes and stores hashes in the cache folder). Files the manifest does not list are warnings.
    raw: the manifest's JSON (read from root when None). progress: a bar over the bytes to hash (None: when over
    PROGRESS_BYTES)."""
    t0 = time.perf_counter()
    root = Path(root)
    if raw is None:
        try:
            raw = json.loads((root / C.MANIFEST_FILE).read_text())
        except (OSError, ValueError) as e:
            raise ModelFolderError(f"cannot read {root / C.MANIFEST_FILE}: {e}") from None
    files, sizes = raw.get("files"), raw.get("sizes") or {}
    if not isinstance(files, dict) or not isinstance(sizes, dict):
        raise ModelFolderError(f"corrupt manifest {root / C.MANIFEST_FILE}: 'files' and 'sizes' must be objects")
    report = VerifyReport(root=root, files=len(files))
    remembered = _read_remembered() if hashes and remember else {}
    to_hash: list[tuple[str, Path, os.stat_result]] = []
    for rel in sorted(files):
        path = root / rel
        try:
            st = path.stat()
        except OSError:
            report.problems.append(FileProblem(rel, "missing"))
            continue
        want = sizes.get(rel)
        if want is not None and st.st_size != int(want):
            report.problems.append(FileProblem(rel, f"{st.st_size} bytes, the manifest says {int(want)} "
                                                    "(truncated or replaced)"))
            continue
        if not hashes:
            continue
        key = str(path.resolve())
        seen = remembered.get(key)
        if seen and seen[:3] == [st.st_size, st.st_mtime_ns, st.st_ino]:
            report.remembered += 1
            if seen[3] != files[rel]:
                report.problems.append(FileProblem(rel, "sha256 differs from the manifest's (damaged or edited)"))
        else:
            to_hash.append((rel, path, st))
    if to_hash:
        total = sum(st.st_size for *_, st in to_hash)
        show = total > PROGRESS_BYTES if progress is None else progress
        from tqdm.auto import tqdm

        new: dict[str, list[Any]] = {}
        with tqdm(total=total, unit="B", unit_scale=True, desc=f"verifying {root.name}", disable=not show) as bar:
            for rel, path, st in to_hash:
                digest = sha256_file(path, bar.update)
                report.hashed += 1
                report.bytes_hashed += st.st_size
                new[str(path.resolve())] = [st.st_size, st.st_mtime_ns, st.st_ino, digest]
                if digest != files[rel]:
                    report.problems.append(FileProblem(rel, "sha256 differs from the manifest's (damaged or edited)"))
        if remember:
            _write_remembered(new)
    listed = set(files) | {C.MANIFEST_FILE}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and rel not in listed:
            report.problems.append(FileProblem(rel, "not in the manifest (ignored)", fatal=False))
    report.seconds = time.perf_counter() - t0
    return report
