"""`ldm3d` on good and bad input: bad input is one clear line and exit code 2, with nothing written."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from ldm3d_edge.cli import main


def _err(capsys, argv) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, f"not one line: {err!r}"
    assert "Traceback" not in err
    return err


def _copy(art, tmp_path, name="model"):
    dst = tmp_path / name
    shutil.copytree(art, dst)
    return dst


def test_generate_writes_rgb_depth16_and_sidecar(tiny4, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["generate", "a red sphere", "--model", str(tiny4[1]), "--out", str(out), "--steps", "3",
                 "--seed", "7", "--device", "openvino:CPU", "--scheduler", "euler"]) == 0
    printed = capsys.readouterr().out
    assert "openvino:CPU" in printed and "s/step" in printed
    rgb, depth, side = (out / "a-red-sphere-7_rgb.png", out / "a-red-sphere-7_depth.png", out / "a-red-sphere-7.json")
    for p in (rgb, depth, side):
        assert f"wrote {p}" in printed
    im = Image.open(rgb)
    assert im.mode == "RGB" and im.size == (64, 64) and np.asarray(im).std() > 1
    d = Image.open(depth)
    assert d.mode.startswith("I;16") or d.mode == "I"
    d16 = np.asarray(d)
    assert d16.max() > 255, "depth PNG must use more than 8 bits"
    info = json.loads(side.read_text())
    assert info["prompt"] == "a red sphere" and info["seed"] == 7 and info["steps"] == 3
    assert info["scheduler"] == "euler" and info["device"] == "openvino:CPU"
    assert len(info["timings"]["unet_step_s"]) == 3
    assert not list(out.glob(".*")), "temporary files left behind"


def test_same_seed_same_files(tiny4, tmp_path):
    for name in ("a", "b"):
        assert main(["generate", "x", "--model", str(tiny4[1]), "--out", str(tmp_path), "--steps", "2",
                     "--seed", "3", "--name", name]) == 0
    for suffix in ("_rgb.png", "_depth.png"):
        a = np.asarray(Image.open(tmp_path / f"a{suffix}"))
        b = np.asarray(Image.open(tmp_path / f"b{suffix}"))
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("args,needle", [
    (["--steps", "0"], "steps must be an integer from 1"),
    (["--steps", "-4"], "steps must be an integer from 1"),
    (["--height", "60"], "height must be a multiple of 8"),
    (["--width", "0"], "width must be a multiple of 8"),
    (["--device", "TPU"], "unknown device 'TPU'"),
    (["--device", "openvino:XPU"], "OpenVINO device 'XPU' is not present"),
    (["--scheduler", "heun"], "unknown scheduler 'heun'"),
    (["--guidance", "nan"], "guidance scale must be a finite number"),
    (["--device", "onnx:CPU", "--height", "96"], "serve only their export size 64x64, not 64x96"),
    (["--guidance-cutoff", "2"], "guidance cut-off must be a fraction of the steps from 0 to 1"),
    (["--cache-interval", "3"], "has no DeepCache graphs"),
    (["--cache-interval", "0"], "cache interval must be an integer from 1"),
    (["--speed", "fast", "--steps", "0"], "steps must be an integer from 1"),
])
def test_generate_bad_arguments(tiny4, tmp_path, capsys, args, needle):
    out = tmp_path / "out"
    err = _err(capsys, ["generate", "p", "--model", str(tiny4[1]), "--out", str(out), "--steps", "2", *args]
               if "--steps" not in args else ["generate", "p", "--model", str(tiny4[1]), "--out", str(out), *args])
    assert needle in err
    assert not out.exists() or not any(out.iterdir())


def test_missing_model_folder(tmp_path, capsys):
    err = _err(capsys, ["generate", "p", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert "not found" in err and "nope" in err


def test_missing_embedded_model_is_a_clear_error(capsys, monkeypatch):
    import ldm3d_edge.models

    monkeypatch.setattr(ldm3d_edge.models, "DEFAULT_MODEL", "no-such-model")
    err = _err(capsys, ["generate", "p"])
    assert "no embedded model in" in err and "--model" in err


def test_incomplete_model_folder_names_the_missing_file(tiny4, tmp_path, capsys):
    model = _copy(tiny4[1], tmp_path)
    (model / "unet" / "openvino_model.bin").unlink()
    err = _err(capsys, ["generate", "p", "--model", str(model), "--out", str(tmp_path / "o")])
    assert "unet/openvino_model.bin is missing" in err


def test_folder_without_manifest(tiny4, tmp_path, capsys):
    model = _copy(tiny4[1], tmp_path)
    (model / "manifest.json").unlink()
    assert "manifest.json is missing" in _err(capsys, ["generate", "p", "--model", str(model)])


@pytest.mark.parametrize("text,needle", [("{not json", "corrupt manifest"), ("[]", "expected a JSON object"),
                                         ('{"format_version": 1}', "missing keys")])
def test_corrupt_manifest(tiny4, tmp_path, capsys, text, needle):
    model = _copy(tiny4[1], tmp_path)
    (model / "manifest.json").write_text(text)
    assert needle in _err(capsys, ["generate", "p", "--model", str(model), "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()


def test_export_missing_source(tmp_path, capsys):
    err = _err(capsys, ["export", str(tmp_path / "nothing"), str(tmp_path / "art")])
    assert "not found" in err
    assert not (tmp_path / "art").exists()


def test_export_incomplete_source_names_what_is_missing(tiny4, tmp_path, capsys):
    src = _copy(tiny4[0], tmp_path, "ckpt")
    (src / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    err = _err(capsys, ["export", str(src), str(tmp_path / "art")])
    assert "no weights" in err and "unet" in err
    assert not (tmp_path / "art").exists() and not list(tmp_path.glob(".art*"))


def test_export_bad_size(tiny4, tmp_path, capsys):
    assert "multiple of 8" in _err(capsys, ["export", str(tiny4[0]), str(tmp_path / "a"), "--height", "100"])


def test_export_refuses_to_overwrite(tiny4, tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "keep.txt").write_text("mine")
    assert "not empty" in _err(capsys, ["export", str(tiny4[0]), str(tmp_path / "a")])
    assert (tmp_path / "a" / "keep.txt").read_text() == "mine"


def test_help_explains_commands():
    r = subprocess.run([sys.executable, "-m", "ldm3d_edge.cli", "generate", "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    for flag in ("--model", "--steps", "--guidance", "--seed", "--device", "--scheduler", "--negative-prompt"):
        assert flag in r.stdout


EXTRA_CASES = [
    (["export", "src", "out"], {"torch"}, "'ldm3d export' needs the export extra (torch is missing): "
                                          "pip install 'ldm3d-edge[export]'"),
    (["demo", "--random"], {"diffusers"}, "'ldm3d demo --random' needs the export extra (diffusers is missing)"),
    (["generate", "x", "--device", "onnx:CPU"], {"torch"}, "ONNX artifacts of the embedded model are exported on "
                                                           "first use (once), which needs the export extra (torch is "
                                                           "missing)"),
    (["quantize", "a", "b"], {"nncf"}, "'ldm3d quantize' needs the quantize extra (nncf is missing): "
                                       "pip install 'ldm3d-edge[quantize]'"),
    (["quality", "a", "b"], {"skimage"}, "'ldm3d quality' needs the quantize extra (skimage is missing)"),
    (["bench", "--quick"], {"diffusers"}, "'ldm3d bench' needs the export and quantize extras (diffusers is "
                                          "missing): pip install 'ldm3d-edge[export,quantize]'"),
    (["serve"], {"ldm3d_edge.server.run"}, "'ldm3d serve' and 'ldm3d view' need the serve extra"),
    (["view", "x"], {"ldm3d_edge.server.run"}, "'ldm3d serve' and 'ldm3d view' need the serve extra"),
    (["batch", "p.txt"], {"ldm3d_edge.server.run"}, "need the serve extra (ldm3d_edge.server.run is missing)"),
    (["eval-embedded"], {"torch"}, "'ldm3d eval-embedded' needs the export extra (torch is missing)"),
]


@pytest.mark.parametrize("argv,missing,needle", EXTRA_CASES, ids=[c[0][0] for c in EXTRA_CASES])
def test_a_missing_extra_is_one_line_naming_it(capsys, monkeypatch, tmp_path, argv, missing, needle):
    """Every command that needs an extra goes through the one guard (ldm3d_edge.extras.need_extra): with the
    module missing it is one line naming the extra, exit 2, never a traceback. (The embedded model's first-use
    export is reached with an empty cache folder.)"""
    import importlib

    import ldm3d_edge.extras as extras

    real = importlib.import_module

    def fake(name, *a):
        if name in missing:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real(name, *a)

    monkeypatch.setattr(extras.importlib, "import_module", fake)
    monkeypatch.setenv("LDM3D_EDGE_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.chdir(tmp_path)
    assert needle in _err(capsys, argv)


def test_ray_without_ray_is_one_line(monkeypatch):
    import importlib

    import ldm3d_edge.extras as extras
    from ldm3d_edge.runtime.errors import Ldm3dError
    from ldm3d_edge.server import ray_serve

    real = importlib.import_module
    monkeypatch.setattr(extras.importlib, "import_module",
                        lambda name, *a: (_ for _ in ()).throw(ModuleNotFoundError(name=name)) if name == "ray"
                        else real(name, *a))
    with pytest.raises(Ldm3dError) as e:
        ray_serve.init_ray()
    assert str(e.value) == "--ray needs the ray extra (ray is missing): pip install 'ldm3d-edge[ray]'"
