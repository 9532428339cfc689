"""`ldm3d cache` lists the cache folder by kind and size and clears one kind: compiled blobs, exports of other
embedded-model versions, or everything; nothing outside the cache folder is touched."""

from __future__ import annotations

import json

import pytest

from ldm3d_edge.cache import _current_embedded
from ldm3d_edge.cli import main


def _file(path, size):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    base = tmp_path / "cache"
    current = _current_embedded()
    assert current and current.startswith("ldm3d-edge-tiny-")
    _file(base / "embedded" / current / "perspective" / "unet.bin", 3000)
    _file(base / "embedded" / "ldm3d-edge-tiny-000000000000" / "perspective" / "unet.bin", 2000)
    _file(base / "openvino" / "f32" / "1.blob", 500)
    _file(base / "openvino" / "bf16" / "2.blob", 700)
    _file(base / "bench" / "compile-cache" / "ov-fp32" / "3.blob", 100)
    _file(base / "bench" / "ldm3d-4c-random" / "unet.safetensors", 4000)
    _file(base / "notes" / "a.txt", 10)
    _file(tmp_path / "outside.txt", 10)
    monkeypatch.setenv("LDM3D_EDGE_CACHE", str(base))
    return base, current


def _run(capsys, *argv):
    assert main(["cache", "--json", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_lists_every_kind_with_its_size(cache, capsys):
    base, current = cache
    r = _run(capsys)
    got = {(e["kind"], e["path"][len(str(base)) + 1:], e["bytes"], e["stale"]) for e in r["entries"]}
    assert got == {("embedded export", f"embedded/{current}", 3000, False),
                   ("embedded export", "embedded/ldm3d-edge-tiny-000000000000", 2000, True),
                   ("compiled (OpenVINO)", "openvino", 1200, False),
                   ("compiled (OpenVINO)", "bench/compile-cache", 100, False),
                   ("benchmark models", "bench/ldm3d-4c-random", 4000, False),
                   ("other", "notes", 10, False)}
    assert r["total_bytes"] == 10310
    assert main(["cache"]) == 0
    table = capsys.readouterr().out
    assert "10.3 kB" in table and "stale" in table and str(base) in table


def test_clear_removes_one_kind_only(cache, capsys):
    base, current = cache
    r = _run(capsys, "--clear", "stale")
    assert [e["path"] for e in r["entries"]] == [str(base / "embedded" / "ldm3d-edge-tiny-000000000000")]
    assert (base / "embedded" / current).is_dir() and not (base / "embedded" / "ldm3d-edge-tiny-000000000000").exists()

    r = _run(capsys, "--clear", "compiled")
    assert r["total_bytes"] == 1300
    assert not (base / "openvino").exists() and not (base / "bench" / "compile-cache").exists()
    assert (base / "bench" / "ldm3d-4c-random" / "unet.safetensors").is_file()

    r = _run(capsys, "--clear", "all")
    assert r["total_bytes"] == 3000 + 4000 + 10
    assert list(base.iterdir()) == [] and (base.parent / "outside.txt").is_file()
    assert _run(capsys)["entries"] == []


def test_an_unknown_kind_is_refused(cache, capsys):
    with pytest.raises(SystemExit) as e:
        main(["cache", "--clear", "blobs"])
    assert e.value.code == 2 and "invalid choice: 'blobs'" in capsys.readouterr().err
