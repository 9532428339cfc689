"""After compiling, OpenVINO's read-only mappings of the weights file (or cached blob) leave this process's
memory: the compiled model holds its own copy, so they were resident twice. Nothing is lost: a page touched
again comes back from the file; writable mappings are never touched."""

from __future__ import annotations

import mmap
import sys

import numpy as np
import pytest

from ldm3d_edge.runtime.backends.openvino_backend import drop_mapped_pages

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/smaps and madvise: Linux")


def resident_kb(folder) -> int:
    """Resident kB of this process's mappings of files under `folder` (from /proc/self/smaps)."""
    total, inside = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):   # a mapping's header line
                inside = len(head) >= 6 and head[5].startswith(str(folder.resolve()))
            elif inside and head[0] == "Rss:":
                total += int(head[1])
    return total


def test_read_only_pages_go_and_come_back_intact_writable_ones_stay(tmp_path):
    data = np.random.default_rng(0).integers(0, 255, 8 << 20, dtype=np.uint8)
    (tmp_path / "w.bin").write_bytes(data.tobytes())
    with open(tmp_path / "w.bin", "rb") as f:
        ro = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    with open(tmp_path / "w.bin", "r+b") as f:
        cow = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)     # private and writable
    view = np.frombuffer(ro, np.uint8)
    assert int(view.sum(dtype=np.int64)) == int(data.sum(dtype=np.int64))        # every page touched
    cow[:4] = b"edit"
    cow_view = np.frombuffer(cow, np.uint8)
    cow_view.sum()
    before = resident_kb(tmp_path)
    assert before >= 2 * 8 * 1024 * 0.95

    dropped = drop_mapped_pages([tmp_path])
    assert dropped == 8 << 20                                   # the read-only mapping only
    after = resident_kb(tmp_path)
    assert after <= before - 8 * 1024 * 0.95                    # its 8 MB left memory
    assert np.array_equal(view, data)                           # and read back intact
    assert bytes(cow[:4]) == b"edit" and np.array_equal(cow_view[4:], data[4:])   # the edited copy kept
    del view, cow_view
    ro.close()
    cow.close()


def test_a_loaded_openvino_pipeline_keeps_no_weight_file_pages_and_gives_the_same_output(tiny4, tmp_path,
                                                                                         monkeypatch):
    from ldm3d_edge.runtime import Pipeline
    from ldm3d_edge.runtime.backends import openvino_backend

    art = tiny4[1]

    def generate(cache):
        pipe = Pipeline.load(art, device="openvino:CPU", cache_dir=cache)
        loaded = resident_kb(art) + resident_kb(cache)
        out = pipe("a red cube", num_inference_steps=2, seed=1)
        return loaded, out

    # compiled from the IR, then imported from the compile cache: the weight pages are gone after each load
    for cache in (tmp_path / "c", tmp_path / "c"):
        loaded, out = generate(cache)
        assert loaded == 0 and out.rgb.std() > 0
    monkeypatch.setattr(openvino_backend, "drop_mapped_pages", lambda folders: 0)
    kept, ref = generate(tmp_path / "c")
    assert kept > 0                                          # without the drop they stay (the check can fail)
    assert np.array_equal(out.rgb, ref.rgb) and np.array_equal(out.depth, ref.depth)
