"""The results folder of a server that runs for days: which files make a result, the results newest first (the
gallery), dropping all but the newest `keep` results, and refusing new work when the disk is nearly full.

A result is its sidecar <name>.json plus <name>_rgb.png; its other files are <name> + one of RESULT_SUFFIXES.
A result goes whole (every file of it) or not at all; files that belong to no result are never touched.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from ..runtime import constants as C
from ..runtime.errors import Ldm3dError

RESULT_SUFFIXES = (C.RGB_SUFFIX, C.DEPTH_SUFFIX, C.SIDECAR_SUFFIX, C.DEPTH_F32_SUFFIX, ".glb", ".mp4", ".gif",
                   "_strip.png", "_points.ply", ".ply", ".obj", ".mtl", "_texture.png", "_explore.glb",
                   "_explore.ply", "_explore.mp4", "_explore.gif", "_explore_strip.png", "_explore.json")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,200}$")
# a result file's name as GET /v1/results/{name} takes it (the OpenAPI schema states it): a result name (no "..",
# no path) and one of its suffixes
RESULT_FILE_PATTERN = (r"^[A-Za-z0-9][A-Za-z0-9_\-]*(\.[A-Za-z0-9_\-]+)*("
                       + "|".join(re.escape(x) for x in RESULT_SUFFIXES) + ")$")
RESULT_FILE_MAX = 240
STAGING_PREFIX = ".job-"          # <results>/.job-<id>/: a job's files while it writes them
JOB_ID_RE = re.compile(r"^[0-9a-f]{32}")          # the server's job ids (uuid4 hex), the names of its results
TEMP_RE = re.compile(r"^\..+\.[a-z0-9_]{8}\.[A-Za-z0-9]+$")   # runtime.result.atomic_write's temporary files
# `ldm3d serve` defaults. A 128² result of the embedded model with every server output is 0.85 MB (GLB 0.71);
# at 512² 12.4 MB (GLB 11.5: the mesh grows with the pixels), so 200 such results take about 2.5 GB
SERVE_KEEP = 200
SERVE_MIN_FREE_MB = 512


class DiskFull(Ldm3dError):
    """Too little free disk to take a job (the server answers 507)."""


def result_names(folder: str | Path) -> list[str]:
    """The results in `folder`, newest first (by the sidecar's modification time)."""
    folder = Path(folder)
    names = []
    for sidecar in folder.glob("*" + C.SIDECAR_SUFFIX):
        name = sidecar.name[: -len(C.SIDECAR_SUFFIX)]
        if NAME_RE.match(name) and (folder / (name + C.RGB_SUFFIX)).is_file():
            try:
                names.append((sidecar.stat().st_mtime, name))
            except FileNotFoundError:      # removed meanwhile
                continue
    return [name for _, name in sorted(names, reverse=True)]


def prune(folder: str | Path, keep: int) -> list[str]:
    """Delete every file of all but the newest `keep` results (keep <= 0: keep all); the names deleted."""
    if keep <= 0:
        return []
    folder = Path(folder)
    gone = result_names(folder)[keep:]
    for name in gone:
        # the sidecar last: a result half-deleted by a crash is still listed, and deleted again next time
        for suffix in sorted(RESULT_SUFFIXES, key=lambda s: s == C.SIDECAR_SUFFIX):
            (folder / (name + suffix)).unlink(missing_ok=True)
    return gone


def check_free_space(folder: str | Path, min_free_mb: int) -> None:
    """Raise DiskFull when the disk holding `folder` has less than `min_free_mb` MB free (0: no check)."""
    if min_free_mb <= 0:
        return
    free_mb = shutil.disk_usage(folder).free // 2**20
    if free_mb < min_free_mb:
        raise DiskFull(f"the results disk has {free_mb} MB free, below this server's minimum of {min_free_mb} MB "
                       "(--min-free-mb): free some space, or start the server with a smaller --keep")


def publish(staging: Path, folder: Path, sidecar: str) -> None:
    """Move a job's finished files from its staging folder into the results folder, the sidecar last (until it
    is there the result is not listed, and a crash in between leaves files that sweep_partial removes)."""
    for p in sorted(staging.iterdir(), key=lambda p: p.name == sidecar):
        os.replace(p, folder / p.name)


def sweep_partial(folder: str | Path) -> list[str]:
    """At start: remove what a killed server left half-written in its results folder: staging folders, the
    temporary files of interrupted writes, and files of a server job (named by its id) that has no sidecar or no
    RGB (never listed, never finished). Other files are not touched. Returns the names removed."""
    folder = Path(folder)
    listed = set(result_names(folder))       # whole results: the gallery's own test
    gone = []
    for p in folder.iterdir():
        name = p.name
        if p.is_dir():
            if name.startswith(STAGING_PREFIX):
                shutil.rmtree(p, ignore_errors=True)
                gone.append(name)
            continue
        if TEMP_RE.match(name):
            partial = True
        elif JOB_ID_RE.match(name) and name.endswith(RESULT_SUFFIXES):
            partial = name[:32] not in listed
        else:
            continue
        if partial:
            p.unlink(missing_ok=True)
            gone.append(name)
    return gone
