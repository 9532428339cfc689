"""Speed presets (issue 20): each resolves to the same settings on every call, drops what a folder cannot do with
a note, and the CLI says what it chose and lets options override it."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from ldm3d_edge.cli import main
from ldm3d_edge.runtime.config import DEFAULT_STEPS
from ldm3d_edge.runtime.errors import InvalidArgumentError
from ldm3d_edge.runtime.presets import PRESETS, SPEEDS, speed_settings


def _folder(branch):
    return SimpleNamespace(deepcache_branch=branch, root=Path("/models/m"))


def test_presets_resolve_to_the_same_settings_every_call():
    assert SPEEDS == ("quality", "balanced", "fast")
    for speed in SPEEDS:
        first = speed_settings(speed, _folder(0))
        assert all(speed_settings(speed, _folder(0)) == first for _ in range(3))
    quality, notes = speed_settings("quality", _folder(None))
    assert quality == {"num_inference_steps": DEFAULT_STEPS, "scheduler": None, "guidance_cutoff": None,
                       "cache_interval": 1} and notes == []
    # strictly less work the faster the preset (full-size UNet calls: guided 1, unguided 0.5)
    work = [PRESETS[s].unet_calls() for s in SPEEDS]
    assert work == sorted(work, reverse=True) and len(set(work)) == 3
    assert PRESETS["fast"].unet_calls() == 16.0     # 16 guided steps


def test_a_folder_without_deepcache_graphs_runs_a_caching_preset_without_caching(monkeypatch):
    from ldm3d_edge.runtime import presets

    monkeypatch.setitem(presets.PRESETS, "fast", presets.SpeedPreset("fast", "ddim", 30, None, 3))
    with_graphs, _ = speed_settings("fast", _folder(0))
    without, notes = speed_settings("fast", _folder(None))
    assert with_graphs["cache_interval"] == 3
    assert without == {**with_graphs, "cache_interval": 1}
    assert len(notes) == 1 and "--deepcache-branch 0" in notes[0]
    with pytest.raises(InvalidArgumentError, match="unknown speed preset 'turbo'"):
        speed_settings("turbo", _folder(0))


def test_generate_with_a_preset_says_what_it_chose(embedded, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["generate", "a green cube", "--speed", "fast", "--out", str(out), "--seed", "2",
                 "--name", "fast"]) == 0
    printed = capsys.readouterr().out
    fast = PRESETS["fast"]
    assert f"speed preset fast: {fast.scheduler}, {fast.steps} steps" in printed
    info = json.loads((out / "fast.json").read_text())
    assert info["steps"] == fast.steps and info["scheduler"] == fast.scheduler
    assert info.get("guidance_cutoff") == fast.guidance_cutoff and "cache_interval" not in info
    # an option overrides the preset's choice, and the line says so
    assert main(["generate", "a green cube", "--speed", "fast", "--steps", "6", "--out", str(out), "--seed", "2",
                 "--name", "six"]) == 0
    assert "speed preset fast (options override it)" in capsys.readouterr().out
    assert json.loads((out / "six.json").read_text())["steps"] == 6
