"""training.paired_draws pairs each candidate sample with the reference's and pools the draws."""

import json

import pytest

from training import paired_draws


def _samples(folder, persp, pano):
    """persp / pano: lists of (colour_ok, iou) for captions c0, c1, ... with seeds 0, 1, ..."""
    folder.mkdir(parents=True)
    doc = {kind: [{"prompt": f"c{k}", "seed": k, "colour_ok": ok, "iou": iou} for k, (ok, iou) in enumerate(rows)]
           for kind, rows in (("perspective", persp), ("panorama", pano))}
    (folder / "samples.json").write_text(json.dumps(doc))


def test_pooled_paired_differences_and_colour_shares(tmp_path):
    # draw a: candidate +0.1 and +0.3 IoU on two captions; draw b: -0.2 and 0; the reference's own folder for b
    _samples(tmp_path / "a" / "ref", [(True, 0.5), (False, 0.5)], [(True, 0.7)])
    _samples(tmp_path / "a" / "cand", [(True, 0.6), (True, 0.8)], [(False, 0.7)])
    _samples(tmp_path / "elsewhere", [(True, 0.4), (True, 0.4)], [(True, 0.9)])
    _samples(tmp_path / "b" / "cand", [(True, 0.2), (False, 0.4)], [(True, 0.8)])
    res = paired_draws.compare({"a": tmp_path / "a", "b": tmp_path / "b"}, "ref", {"b": tmp_path / "elsewhere"})
    assert list(res) == ["cand"]
    a, pooled = res["cand"]["a"]["perspective"], res["cand"]["pooled"]["perspective"]
    assert a["n"] == 2 and a["colour_ref"] == 0.5 and a["colour"] == 1.0
    assert a["iou_diff"] == pytest.approx(0.2) and a["iou"] == pytest.approx(0.7)
    assert pooled["n"] == 4 and pooled["colour_ref"] == 0.75 and pooled["colour"] == 0.75
    diffs = [0.1, 0.3, -0.2, 0.0]
    mean = sum(diffs) / 4
    se = (sum((d - mean) ** 2 for d in diffs) / 3) ** 0.5 / 2
    assert pooled["iou_diff"] == pytest.approx(mean) and pooled["iou_diff_se"] == pytest.approx(se)
    assert res["cand"]["pooled"]["panorama"]["colour"] == 0.5
    assert res["cand"]["pooled"]["panorama"]["iou_diff"] == pytest.approx(-0.05)


def test_cli_writes_json_and_table_and_refuses_unpaired_evaluations(tmp_path, capsys):
    _samples(tmp_path / "a" / "ref", [(True, 0.5)], [(True, 0.7)])
    _samples(tmp_path / "a" / "cand", [(False, 0.25)], [(True, 0.75)])
    out = tmp_path / "res" / "draws"
    out.parent.mkdir()
    assert paired_draws.main(["--reference", "ref", "--draw", f"a={tmp_path / 'a'}", "--out", str(out)]) == 0
    doc = json.loads(out.with_suffix(".json").read_text())
    assert doc["models"]["cand"]["pooled"]["perspective"]["iou_diff"] == pytest.approx(-0.25)
    table = out.with_suffix(".md").read_text()
    assert "| cand | a (n 1 / 1) | 100 → 0 % | 100 → 100 % | 0.500 → 0.250 |" in table
    # another caption order in the candidate: not pairable, one line and exit 2
    _samples(tmp_path / "b" / "ref", [(True, 0.5), (True, 0.5)], [(True, 0.7)])
    (tmp_path / "b" / "cand").mkdir()
    doc = json.loads((tmp_path / "b" / "ref" / "samples.json").read_text())
    doc["perspective"].reverse()
    (tmp_path / "b" / "cand" / "samples.json").write_text(json.dumps(doc))
    for argv in (["--draw", f"b={tmp_path / 'b'}"], ["--draw", f"a={tmp_path / 'a'}", "--models", "nope"],
                 ["--draw", f"a={tmp_path / 'a'}", "--reference-in", f"z={tmp_path}"],
                 ["--draw", f"a={tmp_path / 'missing'}"]):
        with pytest.raises(SystemExit) as exc:
            paired_draws.main(["--reference", "ref", *argv, "--out", str(out)])
        assert exc.value.code == 2
        assert "error: " in capsys.readouterr().err.strip().splitlines()[-1]
