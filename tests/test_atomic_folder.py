"""atomic_folder with processes racing to write the same folder (two kiosk workers' first-use export, say): no
writer fails, the folder is always one writer's complete output, and nothing is left beside it."""

import subprocess
import sys
import time

WRITER = """
import sys, time
from pathlib import Path
from ldm3d_edge.runtime.result import atomic_folder
out, tag, rounds = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
for i in range(rounds):
    with atomic_folder(out) as tmp:
        for k in range(8):
            (tmp / f"part{k}").mkdir()
            (tmp / f"part{k}" / "weights.bin").write_bytes(f"{tag}-{i}".encode() * 5000)
        (tmp / "manifest.json").write_text(f"{tag}-{i}")
        time.sleep(0.002)
print("ok")
"""


def _complete(out) -> bool:
    """All 8 parts and the manifest, every file from the same write (a folder being deleted or half-written
    would miss some)."""
    try:
        tag = (out / "manifest.json").read_text()
        return all((out / f"part{k}" / "weights.bin").read_bytes() == tag.encode() * 5000 for k in range(8))
    except FileNotFoundError:
        return False


def test_two_processes_racing_to_write_one_folder(tmp_path):
    out = tmp_path / "model"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(out), tag, "40"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for tag in ("a", "b")]
    seen, t0 = 0, time.time()
    while any(w.poll() is None for w in writers) and time.time() - t0 < 120:
        # a reader that opens the folder's files while it is being replaced: it keeps what it opened
        try:
            handles = [open(out / f"part{k}" / "weights.bin", "rb") for k in range(8)]
        except FileNotFoundError:
            continue
        data = {h.read() for h in handles}
        for h in handles:
            h.close()
        seen += 1
        assert all(len(d) > 0 for d in data)
    results = [w.communicate(timeout=120) for w in writers]
    assert [w.returncode for w in writers] == [0, 0], results
    assert _complete(out) and seen > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [".model.lock", "model"]
