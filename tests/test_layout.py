"""The package's shape, as docs/architecture.md states it: import rules, file sizes, one copy of the vocabulary."""

from __future__ import annotations

import ast
import hashlib
import subprocess
from pathlib import Path

import pytest

import ldm3d_edge

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "ldm3d_edge"
MAX_LINES = 400
# what the runtime may never import (the rest of ldm3d_edge may import the runtime, never the reverse)
RUNTIME_FORBIDDEN = ("ldm3d_edge.export", "ldm3d_edge.quantization", "ldm3d_edge.bench", "ldm3d_edge.server",
                     "ldm3d_edge.cli", "ldm3d_edge.generate", "torch", "diffusers", "transformers", "nncf")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    return imports_in(path.read_text(), module_name(path), path.name == "__init__.py")


def imports_in(source: str, name: str, is_package: bool = False) -> set[str]:
    """Every module a file of module `name` imports, at module level or inside functions, relative ones resolved."""
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.add(mod)
            found |= {f"{mod}.{a.name}" for a in node.names}   # `from . import x` imports module x
    return found


def test_imports_resolve_in_the_tree():
    """Sanity of the scanner itself: relative imports resolve to modules that exist."""
    imports = imports_of(PACKAGE / "runtime" / "base.py")
    assert "ldm3d_edge.runtime.backends" in imports and "ldm3d_edge.runtime.constants" in imports


def test_runtime_never_imports_export_quantization_bench_server_or_torch():
    bad = []
    for path in sorted((PACKAGE / "runtime").rglob("*.py")):
        for mod in imports_of(path):
            if any(mod == f or mod.startswith(f + ".") for f in RUNTIME_FORBIDDEN):
                bad.append(f"{path.relative_to(ROOT)} imports {mod}")
    assert not bad, "\n".join(bad)


def test_the_scanner_catches_a_forbidden_import():
    """The rule test can fail: a runtime module importing the server (relatively, inside a function) or torch."""
    source = "def f():\n    from ..server import app\n    import torch.nn\nfrom . import models\n"
    found = imports_in(source, "ldm3d_edge.runtime.pipeline")
    assert {"ldm3d_edge.server", "ldm3d_edge.server.app", "torch.nn", "ldm3d_edge.runtime.models"} <= found


def test_no_python_file_in_src_over_400_lines():
    sizes = {p.relative_to(ROOT).as_posix(): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert len(sizes) > 50
    over = {p: n for p, n in sizes.items() if n > MAX_LINES}
    assert not over, over


def test_the_package_is_imported_from_src():
    assert Path(ldm3d_edge.__file__).resolve().parent == PACKAGE


@pytest.mark.parametrize("name", ["vocab.json", "merges.txt"])
def test_one_copy_of_the_clip_vocabulary_in_the_repo(name):
    """The embedded model's tokenizer files (its diffusers folder's and its shipped IR's) are links to the package's
    one copy, not copies."""
    files = subprocess.run(["git", "ls-files", "-s"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    digest = hashlib.sha256((PACKAGE / "assets" / "clip-tokenizer" / name).read_bytes()).hexdigest()
    copies, links = [], []
    for line in files.splitlines():
        meta, path = line.split("\t", 1)
        p = ROOT / path
        if p.name != name:
            continue
        if meta.startswith("120000"):
            links.append(path)
            assert p.resolve() == (PACKAGE / "assets" / "clip-tokenizer" / name).resolve()
        elif hashlib.sha256(p.read_bytes()).hexdigest() == digest:
            copies.append(path)
    assert copies == [f"src/ldm3d_edge/assets/clip-tokenizer/{name}"]
    assert sorted(links) == [f"src/ldm3d_edge/models/ldm3d-edge-tiny-openvino/tokenizer/{name}",
                             f"src/ldm3d_edge/models/ldm3d-edge-tiny/tokenizer/{name}"]
