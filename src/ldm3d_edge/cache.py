"""What ldm3d-edge keeps in its cache folder ($LDM3D_EDGE_CACHE, else ~/.cache/ldm3d-edge), and clearing it.

The cache only grows on its own: OpenVINO writes compiled blobs for every model and precision it loads, the
embedded model is exported there (about 300 MB a version) when an ONNX device asks for it, `ldm3d bench` keeps its
full-size models, and verified.json remembers the hashes of verified model files.
`ldm3d cache` shows it; `ldm3d cache --clear KIND` removes one kind of CLEAR_KINDS.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from .runtime.constants import cache_base
from .runtime.errors import Ldm3dError

CLEAR_KINDS = {"compiled": "OpenVINO compile caches (rebuilt on the next load: a slower first start)",
               "stale": "exports of embedded-model versions other than the installed one",
               "all": "everything in the cache folder"}
EMBEDDED, COMPILED, BENCH, OTHER = "embedded export", "compiled (OpenVINO)", "benchmark models", "other"


@dataclass
class CacheEntry:
    kind: str            # EMBEDDED, COMPILED, BENCH or OTHER
    path: Path
    bytes: int
    stale: bool = False  # an embedded export of another model version

    def to_json(self) -> dict:
        return {"kind": self.kind, "path": str(self.path), "bytes": self.bytes, "stale": self.stale}


def _size(path: Path) -> int:
    if path.is_symlink() or not path.is_dir():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _current_embedded() -> str | None:
    """The export folder name of the installed embedded model (None when there is none)."""
    from .embedded import default_model_dir, fingerprint

    try:
        model = default_model_dir()
    except Ldm3dError:
        return None
    return f"{model.name}-{fingerprint(model)}"


def cache_entries(base: Path | None = None) -> list[CacheEntry]:
    """Every top-level thing in the cache folder, split where its parts differ in kind."""
    base = Path(base) if base else cache_base()
    if not base.is_dir():
        return []
    entries = []
    for top in sorted(base.iterdir()):
        if top.name == "embedded" and top.is_dir() and not top.is_symlink():
            current = _current_embedded()
            entries += [CacheEntry(EMBEDDED, p, _size(p), stale=p.name != current) for p in sorted(top.iterdir())]
        elif top.name == "openvino":
            entries.append(CacheEntry(COMPILED, top, _size(top)))
        elif top.name == "bench" and top.is_dir() and not top.is_symlink():
            for p in sorted(top.iterdir()):
                entries.append(CacheEntry(COMPILED if p.name == "compile-cache" else BENCH, p, _size(p)))
        else:
            entries.append(CacheEntry(OTHER, top, _size(top)))
    return entries


def clear(kind: str, base: Path | None = None) -> list[CacheEntry]:
    """Remove the entries of one kind (CLEAR_KINDS); the entries removed."""
    if kind not in CLEAR_KINDS:
        raise Ldm3dError(f"unknown cache kind {kind!r}; choose one of {', '.join(CLEAR_KINDS)}")
    pick = {"compiled": lambda e: e.kind == COMPILED, "stale": lambda e: e.stale, "all": lambda e: True}[kind]
    base = Path(base) if base else cache_base()
    gone = [e for e in cache_entries(base) if pick(e)]
    for e in gone:
        if e.path.is_dir() and not e.path.is_symlink():
            shutil.rmtree(e.path)
        else:
            e.path.unlink(missing_ok=True)
    for folder in (base / "embedded", base / "bench"):     # containers left empty
        if folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
            folder.rmdir()
    return gone


def human(n: int) -> str:
    x = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if x < 1000 or unit == "GB":
            return f"{x:.0f} {unit}" if unit == "B" else f"{x:.1f} {unit}"
        x /= 1000
    return ""
