"""Verified model folders: `ldm3d verify` and Pipeline.load catch a flipped byte in any part's weights, a truncated,
a missing file, an edited manifest; an unknown extra file is a warning; a clean folder passes; warm loads only
stat (hashes remembered per file version)."""

import json
import os
import shutil

import pytest

from ldm3d_edge.cli import main
from ldm3d_edge.runtime import ModelFolderError, Pipeline
from ldm3d_edge.runtime.verify import verify_folder

PARTS = ["text_encoder", "unet", "vae_decoder", "vae_encoder"]


@pytest.fixture
def folder(tiny4, tmp_path):
    """A private copy of the tiny model's artifact folder (both formats) to damage."""
    return shutil.copytree(tiny4[1], tmp_path / "model")


def _flip(path, offset=None):
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0x01
    path.write_bytes(bytes(data))


def _verify(capsys, folder):
    code = main(["verify", str(folder)])
    out, err = capsys.readouterr()
    return code, out, err


def _load_error(folder) -> str:
    with pytest.raises(ModelFolderError) as e:
        Pipeline.load(folder, device="openvino:CPU", compile_now=False)
    return str(e.value)


def test_a_clean_folder_passes(folder, capsys):
    code, out, err = _verify(capsys, folder)
    assert code == 0 and "all 17 files match the manifest" in out and "differ" not in err
    Pipeline.load(folder, device="openvino:CPU", compile_now=False)


@pytest.mark.parametrize("part", PARTS)
@pytest.mark.parametrize("name", ["openvino_model.bin", "model.onnx"])
def test_one_flipped_byte_in_any_parts_weights_is_named(folder, capsys, part, name):
    _flip(folder / part / name)
    code, out, err = _verify(capsys, folder)
    assert code == 2 and f"{part}/{name}: sha256 differs" in err and err.count("sha256 differs") == 1, err
    message = _load_error(folder)
    assert f"{part}/{name}: sha256 differs" in message and "Re-export" in message and "download" in message


def test_a_truncated_file_is_named(folder, capsys):
    path = folder / "unet" / "openvino_model.bin"
    size = path.stat().st_size
    os.truncate(path, size - 1000)
    code, _, err = _verify(capsys, folder)
    assert code == 2 and f"unet/openvino_model.bin: {size - 1000} bytes, the manifest says {size}" in err
    assert "unet/openvino_model.bin" in _load_error(folder)


def test_a_missing_file_is_named(folder, capsys):
    (folder / "vae_decoder" / "openvino_model.xml").unlink()
    code, _, err = _verify(capsys, folder)
    assert code == 2 and "vae_decoder/openvino_model.xml: missing" in err
    assert "vae_decoder/openvino_model.xml is missing" in _load_error(folder)


def test_an_unknown_extra_file_is_only_a_warning(folder, capsys, caplog):
    (folder / "unet" / "notes.txt").write_text("mine")
    code, out, err = _verify(capsys, folder)
    assert code == 0 and "warning:" in out and "unet/notes.txt: not in the manifest" in out and "differ" not in err
    Pipeline.load(folder, device="openvino:CPU", compile_now=False)
    assert "unet/notes.txt not in the manifest" in caplog.text


@pytest.mark.parametrize("field", ["files", "sizes"])
def test_an_edited_manifest_is_named(folder, capsys, field):
    path = folder / "manifest.json"
    raw = json.loads(path.read_text())
    rel = "text_encoder/openvino_model.bin"
    raw[field][rel] = "0" * 64 if field == "files" else raw[field][rel] + 1
    path.write_text(json.dumps(raw))
    code, _, err = _verify(capsys, folder)
    assert code == 2 and rel in err, err
    assert rel in _load_error(folder)


def test_hashes_are_remembered_per_file_version(folder):
    """The first load hashes every file, a second only stats; a rewritten file (new mtime) is hashed again, so
    damage done in place after a warm start is still caught."""
    first = verify_folder(folder)
    assert first.ok and first.hashed == first.files and first.remembered == 0
    second = verify_folder(folder)
    assert second.ok and second.hashed == 0 and second.remembered == second.files
    _flip(folder / "unet" / "openvino_model.bin")
    third = verify_folder(folder)
    assert not third.ok and third.hashed == 1 and [p.path for p in third.problems] == ["unet/openvino_model.bin"]
    # the remembered (wrong) hash of the damaged version keeps failing until the file is restored
    assert not verify_folder(folder).ok
    _flip(folder / "unet" / "openvino_model.bin")
    assert verify_folder(folder).ok


def test_a_manifest_without_sizes_is_still_hashed(folder):
    """Folders exported before sizes were recorded: the hashes still catch damage."""
    path = folder / "manifest.json"
    raw = json.loads(path.read_text())
    del raw["sizes"]
    path.write_text(json.dumps(raw))
    assert verify_folder(folder, remember=False).ok
    _flip(folder / "vae_encoder" / "openvino_model.bin")
    assert [p.path for p in verify_folder(folder, remember=False).problems] == ["vae_encoder/openvino_model.bin"]


def test_verify_false_and_no_verify_skip_the_check(folder, tmp_path):
    _flip(folder / "text_encoder" / "openvino_model.xml", offset=0)   # '<' -> '=': the IR itself will not parse
    Pipeline.load(folder, device="onnx:CPU", compile_now=False, verify=False)
    assert main(["generate", "x", "--model", str(folder), "--device", "onnx:CPU", "--steps", "1", "--out",
                 str(tmp_path / "out"), "--no-verify"]) == 0
    assert main(["generate", "x", "--model", str(folder), "--device", "onnx:CPU", "--steps", "1", "--out",
                 str(tmp_path / "out")]) == 2


def test_the_shipped_embedded_ir_verifies():
    from ldm3d_edge.embedded import shipped_dir

    report = verify_folder(shipped_dir(), remember=False)
    # 12 model files + calibration prompts + the caption grammar (prompt_completion.json)
    assert report.ok and not report.problems and report.files == 14, report.problems
