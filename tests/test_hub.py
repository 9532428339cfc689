"""`ldm3d export ORG/NAME`: a hub id resolves through huggingface_hub's cache, offline (HF_HUB_OFFLINE=1), with no
network: a pre-populated cache the test builds itself is exported exactly as the local folder it holds, and an
uncached id is one line, exit 2, nothing written."""

import json
import os
import shutil
import subprocess
import sys

import pytest

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _hub_cache(root, repo_id, src, revision="main"):
    """The hub cache layout (models--ORG--NAME/{snapshots/COMMIT, refs/REV}) holding the files of `src`."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(src, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / revision).write_text(COMMIT)
    return root


def _export(args, cache, cwd):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_HOME": str(cache.parent / "hf")}
    return subprocess.run([sys.executable, "-m", "ldm3d_edge.cli", "export", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


def test_a_hub_id_exports_from_the_cache_offline(tiny4, tmp_path):
    cache = _hub_cache(tmp_path / "hub", "test-org/tiny-ldm3d", tiny4[0])
    r = _export(["test-org/tiny-ldm3d", "out", "--format", "openvino"], cache, tmp_path)
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert m["source"]["hub"] == f"test-org/tiny-ldm3d@{COMMIT}"
    # the same model as an export of the folder itself: the IR weights are byte-identical
    local = _export([str(tiny4[0]), "local", "--format", "openvino"], cache, tmp_path)
    assert local.returncode == 0, local.stderr
    ref = json.loads((tmp_path / "local" / "manifest.json").read_text())
    bins = [k for k in ref["files"] if k.endswith(".bin")]
    assert len(bins) == 4 and all(m["files"][k] == ref["files"][k] for k in bins)
    assert m["source"]["fingerprint"] == ref["source"]["fingerprint"]
    # a pinned revision that the cache has under another name is found too
    r = _export(["test-org/tiny-ldm3d", "pinned", "--format", "openvino", "--revision", COMMIT], cache, tmp_path)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("args", [["test-org/not-cached", "out"], ["test-org/tiny-ldm3d", "out", "--revision", "v2"]])
def test_an_uncached_hub_id_offline_is_one_line(tiny4, tmp_path, args):
    cache = _hub_cache(tmp_path / "hub", "test-org/tiny-ldm3d", tiny4[0])
    r = _export(args, cache, tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a local folder and not in the Hugging Face cache" in lines[0], r.stderr
    assert "HF_HUB_OFFLINE is set" in lines[0] and args[0] in lines[0]
    assert not (tmp_path / "out").exists()


def test_a_path_that_is_neither_folder_nor_hub_id(tmp_path):
    r = _export([str(tmp_path / "no" / "such" / "folder"), "out"], tmp_path / "hub", tmp_path)
    assert r.returncode == 2 and "source checkpoint folder not found" in r.stderr and "hub id" in r.stderr
