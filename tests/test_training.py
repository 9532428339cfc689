"""The trainers run, are seedable, resume from their checkpoint, and save a standard LDM3D pipeline folder."""

import json

import numpy as np
import pytest

from training import dataset

torch = pytest.importorskip("torch")

SIZE = 32


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    dataset.ensure_splits(out, [("train", dataset.TRAIN_SEED0, 6, False), ("train_pano", dataset.PANO_SEED0, 4, True)],
                          size=SIZE, workers=1)
    return out


def train_vae(data, run, steps, *extra):
    from training.train_vae import main

    assert main(["--data", str(data), "--size", str(SIZE), "--run", str(run), "--steps", str(steps), "--batch", "2",
                 "--crop", "16", "--save-every", "1", "--no-bf16", *extra]) == 0
    return json.loads((run / "final" / "training.json").read_text())


def weights(path):
    from safetensors.numpy import load_file

    return load_file(str(path))


def max_moved(w0, w1):
    """The largest change of any weight between two state dicts (fp16 files compared in fp32)."""
    return max(float(np.abs(w1[k].astype(np.float32) - w0[k].astype(np.float32)).max()) for k in w0)


def test_vae_is_seedable_and_resumes(data, tmp_path):
    train_vae(data, tmp_path / "a", 3)
    train_vae(data, tmp_path / "b", 2)
    info = train_vae(data, tmp_path / "b", 3)       # resumes at step 2 and runs one more
    assert info["steps"] == 3 and info["scaling_factor"] > 0
    a = weights(tmp_path / "a" / "final" / "diffusion_pytorch_model.safetensors")
    b = weights(tmp_path / "b" / "final" / "diffusion_pytorch_model.safetensors")
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a), "an interrupted and resumed run differs from a straight one"


def test_vae_decoder_only_fine_tuning_keeps_the_encoder(data, tmp_path):
    train_vae(data, tmp_path / "base", 2)
    base = tmp_path / "base" / "final"
    info = train_vae(data, tmp_path / "ft", 3, "--init", str(base), "--decoder-only", "--pano-share", "1.0")
    a, b = (weights(p / "diffusion_pytorch_model.safetensors") for p in (base, tmp_path / "ft" / "final"))
    frozen = [k for k in a if k.startswith(("encoder.", "quant_conv."))]
    trained = [k for k in a if k.startswith(("decoder.", "post_quant_conv."))]
    assert frozen and all(np.array_equal(a[k], b[k]) for k in frozen)
    assert any(not np.array_equal(a[k], b[k]) for k in trained)
    assert info["steps"] == 3


def test_ldm_saves_a_standard_ldm3d_folder(data, tmp_path):
    from diffusers import StableDiffusionLDM3DPipeline

    from training.train_ldm import main

    train_vae(data, tmp_path / "vae", 1)
    out = tmp_path / "model"
    assert main(["--data", str(data), "--size", str(SIZE), "--vae", str(tmp_path / "vae" / "final"), "--run",
                 str(tmp_path / "ldm"), "--steps", "4", "--batch", "2", "--save-every", "2", "--out", str(out)]) == 0
    assert json.loads((tmp_path / "ldm" / "training.json").read_text())["steps"] == 4
    pipe = StableDiffusionLDM3DPipeline.from_pretrained(str(out), safety_checker=None)
    assert pipe.vae.config.out_channels == 4
    stored = weights(out / "unet" / "diffusion_pytorch_model.safetensors")
    assert {v.dtype for v in stored.values()} == {np.dtype("float16")}
    from transformers import CLIPTokenizer

    from ldm3d_edge import ASSETS_DIR

    clip = CLIPTokenizer.from_pretrained(str(ASSETS_DIR / "clip-tokenizer"))
    prompt = "a red sphere in front of a blue cube"
    assert pipe.tokenizer(prompt).input_ids == clip(prompt).input_ids


def test_folded_latent_transform_is_exact():
    """Folding the per-channel shift and gain into the VAE gives latents a * (z - m) and decodes them to the same
    image as before (so the diffusion model trains on unit-variance channels at no cost to the VAE)."""
    from diffusers import AutoencoderKL

    from training.train_ldm import fold_latent_transform, unit_latent_stats

    torch.manual_seed(0)
    vae = AutoencoderKL(in_channels=4, out_channels=4, down_block_types=["DownEncoderBlock2D"] * 2,
                        up_block_types=["UpDecoderBlock2D"] * 2, block_out_channels=[8, 16], norm_num_groups=4,
                        latent_channels=4, scaling_factor=0.3).eval()
    x = torch.rand(3, 4, 16, 16) * 2 - 1
    with torch.no_grad():
        before = vae.encode(x).latent_dist
        m, a = unit_latent_stats([{"mean": before.mean, "std": before.std}])
        decoded = vae.decode(before.mean).sample
        fold_latent_transform(vae, m, a)
        after = vae.encode(x).latent_dist
        z = after.mean * vae.config.scaling_factor
    assert vae.config.scaling_factor == 1.0
    torch.testing.assert_close(after.mean, a.view(1, -1, 1, 1) * (before.mean - m.view(1, -1, 1, 1)),
                               atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(after.std, a.view(1, -1, 1, 1) * before.std, atol=1e-6, rtol=1e-4)
    sampled_var = z.var((0, 2, 3)) + (after.std ** 2).mean((0, 2, 3))
    torch.testing.assert_close(z.mean((0, 2, 3)), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(sampled_var, torch.ones(4), atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        torch.testing.assert_close(vae.decode(z / vae.config.scaling_factor).sample, decoded, atol=1e-5, rtol=1e-5)


def test_ldm_fine_tune_from_a_pipeline_with_short_captions_keeps_the_vae(data, tmp_path):
    """The short-prompt fine-tune's path: --init from a saved pipeline folder, --no-unit-latents on its VAE, caption
    variants, latents encoded by the exported encoder IR; the VAE comes out bit for bit as it went in."""
    from ldm3d_edge.export import export_pipeline
    from training.train_ldm import encode_latents, encode_latents_openvino, main

    train_vae(data, tmp_path / "vae", 1)
    base = tmp_path / "base"
    common = ["--data", str(data), "--size", str(SIZE), "--batch", "2", "--save-every", "2"]
    assert main([*common, "--vae", str(tmp_path / "vae" / "final"), "--run", str(tmp_path / "r0"), "--steps", "1",
                 "--out", str(base)]) == 0
    ir = tmp_path / "ir"
    export_pipeline(base, ir, fmt="openvino", height=SIZE, width=SIZE, progress=False)
    d = dataset.load_split(data / f"train-{SIZE}.npz")
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(str(base / "vae")).float().eval()
    ref_mean, ref_std = encode_latents(vae, d["rgb"], d["depth"], bf16=False)   # on AMX it would take bf16
    mean, std = encode_latents_openvino(ir / "vae_encoder", d["rgb"], d["depth"], batch=4)
    assert mean.shape == ref_mean.shape == (12, 4, SIZE // 8, SIZE // 8)
    assert torch.allclose(mean, ref_mean, atol=1e-4) and torch.allclose(std, ref_std, rtol=1e-3, atol=1e-5)

    out = tmp_path / "ft"
    assert main([*common, "--vae", str(base / "vae"), "--no-unit-latents", "--init", str(base), "--encoder-ir",
                 str(ir / "vae_encoder"), "--short-captions", "1.0", "--run", str(tmp_path / "r1"),
                 "--steps", "2"]) == 0
    # resumed: the cached latents and caption records load back (they once did not: numpy strings in the cache)
    assert main([*common, "--vae", str(base / "vae"), "--no-unit-latents", "--short-captions", "1.0", "--run",
                 str(tmp_path / "r1"), "--steps", "3", "--out", str(out)]) == 0
    assert json.loads((tmp_path / "r1" / "training.json").read_text())["steps"] == 3
    assert weights(out / "vae" / "diffusion_pytorch_model.safetensors").keys() == \
        weights(base / "vae" / "diffusion_pytorch_model.safetensors").keys()
    a, b = (weights(p / "vae" / "diffusion_pytorch_model.safetensors") for p in (base, out))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    a, b = (weights(p / "unet" / "diffusion_pytorch_model.safetensors") for p in (base, out))
    assert any(not np.array_equal(a[k], b[k]) for k in a), "the fine-tune changed nothing"


def test_plain_walls_leaves_out_exactly_the_coloured_walls(tmp_path):
    """--plain-walls: every item (image, then its mirror) whose rendered scene has a coloured wall is left out, and
    only those; checked on scenes rendered with every wall coloured."""
    from training.train_ldm import plain_wall_items

    path = tmp_path / "train-16.npz"
    dataset.render_split(path, list(range(50, 62)), 16, False, 1, wall_colours=1.0)
    scenes = [str(r) for r in dataset.load_split(path)["scene"]]
    walls = [json.loads(r)["wall"] for r in scenes]
    assert {"sky"} < set(walls) and not set(walls) & {"white", "grey"}, walls   # both kinds to tell apart
    keep = plain_wall_items(scenes, 2 * len(scenes))
    assert keep.tolist() == [i for i in range(2 * len(scenes)) if walls[i % len(scenes)] == "sky"]
    assert 0 < len(keep) < 2 * len(scenes)


def test_pano_single_draws_from_exactly_the_single_object_panoramas(tmp_path):
    """--pano-single: the pool it draws from is every item (image, then its mirror) of the given pool whose
    panorama has one object, and only those."""
    from training.train_ldm import single_object_items

    path = tmp_path / "train_pano-16.npz"
    dataset.render_split(path, list(range(70, 82)), 16, True, 1)
    scenes = [str(r) for r in dataset.load_split(path)["scene"]]
    counts = [len(json.loads(r)["objects"]) for r in scenes]
    assert 1 in counts and max(counts) > 1, counts      # both kinds to tell apart
    pool = np.arange(1, 2 * len(scenes), 2)          # a pool that is not every item: odd ones only
    assert single_object_items(scenes, pool).tolist() == [i for i in pool if counts[i % len(scenes)] == 1]


def fine_tune_args(data, tmp_path, *common):
    """A one-step base pipeline (tmp_path/base) and train_ldm's arguments to fine-tune it (--init, its VAE)."""
    from training.train_ldm import main

    train_vae(data, tmp_path / "vae", 1)
    base = tmp_path / "base"
    common = ("--data", str(data), "--size", str(SIZE), *common)
    assert main([*common, "--vae", str(tmp_path / "vae" / "final"), "--run", str(tmp_path / "r0"), "--steps", "1",
                 "--out", str(base)]) == 0
    return base, [*common, "--vae", str(base / "vae"), "--no-unit-latents", "--init", str(base), "--warmup", "1"]


def test_preserve_pins_long_captions_to_the_init_model(data, tmp_path):
    """--preserve 1: an item that keeps its long caption (or is dropped to the empty prompt) learns the --init
    model's own prediction, so with every caption long the first step has nothing to learn (the UNet moves only by
    weight decay, below fp16 rounding), while the true-noise target, or another model's prediction (--teacher), moves
    it by about the learning rate."""
    from training.train_ldm import main

    base, tune = fine_tune_args(data, tmp_path, "--batch", "2", "--save-every", "1")
    tune += ["--lr", "1e-2", "--steps", "1"]
    assert main([*tune, "--preserve", "1", "--run", str(tmp_path / "kept"), "--out", str(tmp_path / "kept-out")]) == 0
    assert main([*tune, "--run", str(tmp_path / "true"), "--out", str(tmp_path / "true-out")]) == 0
    w0, kept, true = (weights(p / "unet" / "diffusion_pytorch_model.safetensors")
                      for p in (base, tmp_path / "kept-out", tmp_path / "true-out"))

    def moved(w):
        return max_moved(w0, w)

    assert moved(kept) < 1e-3 < 5e-3 < moved(true), (moved(kept), moved(true))
    # --teacher: another model's predictions are pinned instead of --init's, so the same step has something to learn
    assert main([*tune, "--preserve", "1", "--teacher", str(tmp_path / "true-out"), "--run", str(tmp_path / "other"),
                 "--out", str(tmp_path / "other-out")]) == 0
    assert moved(weights(tmp_path / "other-out" / "unet" / "diffusion_pytorch_model.safetensors")) > 5e-3


def test_counterfactual_captions_are_pinned_to_the_teacher_reading_the_same_caption(data, tmp_path):
    """--counterfactual: eligible items (long caption, not dropped) get a recoloured caption at about the share, the
    others never; the student and the teacher read the same counterfactual caption, so with --init as the teacher
    and every item pinned the first step has nothing to learn (Adam would move every weight with any gradient by
    the learning rate)."""
    from training.train_ldm import counterfactuals, main

    split = dataset.load_split(data / f"train-{SIZE}.npz")
    scenes, caps = [str(r) for r in split["scene"]], [str(c) for c in split["caption"]]
    idx = list(range(len(scenes))) * 20
    eligible = [j % 3 != 0 for j in range(len(idx))]
    swap = counterfactuals(scenes, caps, idx, eligible, 0.5, np.random.default_rng(0))
    assert all(eligible[j] and c != caps[idx[j]] for j, c in swap.items())
    assert 0.35 < len(swap) / sum(eligible) < 0.65, len(swap) / sum(eligible)
    assert not counterfactuals(scenes, caps, idx, eligible, 0.0, np.random.default_rng(0))

    base, tune = fine_tune_args(data, tmp_path, "--batch", "4", "--save-every", "1")
    tune += ["--lr", "1e-2", "--steps", "1", "--preserve", "1", "--counterfactual", "1"]
    assert main([*tune, "--run", str(tmp_path / "cf"), "--out", str(tmp_path / "cf-out")]) == 0
    w0, w1 = (weights(p / "unet" / "diffusion_pytorch_model.safetensors") for p in (base, tmp_path / "cf-out"))
    assert max_moved(w0, w1) < 1e-3
    for bad in (["--counterfactual", "1.5"], ["--counterfactual-pano", "-1"], ["--counterfactual-weight", "0"]):
        with pytest.raises(SystemExit) as e:
            main([*tune, *bad, "--run", str(tmp_path / "bad")])
        assert e.value.code == 2


def test_counterfactual_extra_adds_pinned_items_beside_the_long_captions(data, tmp_path):
    """--counterfactual-extra: the recoloured captions are read beside the image's own, on the same noisy latents,
    and pinned to the teacher reading the same caption: with --init as the teacher the first step has nothing to
    learn; with another teacher the step differs from the same run without them (so they are in the loss)."""
    from training.train_ldm import main

    base, tune = fine_tune_args(data, tmp_path, "--batch", "4", "--save-every", "1")
    tune += ["--lr", "1e-2", "--steps", "1"]
    # another teacher: one true-noise step from --init
    assert main([*tune, "--run", str(tmp_path / "t"), "--out", str(tmp_path / "t-out")]) == 0
    tune += ["--preserve", "1"]
    extra = ["--counterfactual", "1", "--counterfactual-extra"]
    assert main([*tune, *extra, "--run", str(tmp_path / "x"), "--out", str(tmp_path / "x-out")]) == 0
    w0, w1 = (weights(p / "unet" / "diffusion_pytorch_model.safetensors") for p in (base, tmp_path / "x-out"))
    assert max_moved(w0, w1) < 1e-3
    other = ["--teacher", str(tmp_path / "t-out")]
    for name, args in (("plain", []), ("extra", extra)):
        assert main([*tune, *other, *args, "--run", str(tmp_path / name), "--out", str(tmp_path / f"{name}-out")]) == 0
    plain, added = (weights(tmp_path / f"{n}-out" / "unet" / "diffusion_pytorch_model.safetensors")
                    for n in ("plain", "extra"))
    assert max_moved(plain, added) > 1e-3
    with pytest.raises(SystemExit) as e:
        main([*tune, "--counterfactual-extra", "--run", str(tmp_path / "bad")])
    assert e.value.code == 2


def test_pin_below_leaves_the_low_noise_steps_to_the_teacher(data, tmp_path):
    """--pin-below T: below timestep T every item learns the teacher's prediction instead of the true noise, so with
    T = 1000 and --init as the teacher the first step has nothing to learn, while with T = 0 (off) the same step
    learns the true noise and moves the UNet by about the learning rate."""
    from training.train_ldm import main

    base, tune = fine_tune_args(data, tmp_path, "--batch", "4", "--save-every", "1")
    tune += ["--lr", "1e-2", "--steps", "1"]
    moved = {}
    for t in (1000, 0):
        assert main([*tune, "--pin-below", str(t), "--run", str(tmp_path / f"p{t}"),
                     "--out", str(tmp_path / f"p{t}-out")]) == 0
        w0, w1 = (weights(p / "unet" / "diffusion_pytorch_model.safetensors") for p in (base, tmp_path / f"p{t}-out"))
        moved[t] = max_moved(w0, w1)
    assert moved[1000] < 1e-3 < 5e-3 < moved[0], moved
    with pytest.raises(SystemExit) as e:
        main([*tune, "--pin-below", "1001", "--run", str(tmp_path / "bad")])
    assert e.value.code == 2


def test_anchor_text_keeps_the_long_captions_embeddings(data, tmp_path):
    """--freeze-unet --anchor-text W: the text encoder's output for the long captions is pulled back to the --init
    one's, so over a few large steps it drifts several times less than without the anchor; the UNet is untouched."""
    from transformers import CLIPTextModel, CLIPTokenizer

    from ldm3d_edge import ASSETS_DIR
    from training.train_ldm import main

    base, tune = fine_tune_args(data, tmp_path, "--batch", "4", "--save-every", "10")
    tune += ["--lr", "3e-3", "--steps", "6", "--freeze-unet", "--ema", "0"]
    assert main([*tune, "--anchor-text", "100", "--run", str(tmp_path / "a"), "--out", str(tmp_path / "a-out")]) == 0
    assert main([*tune, "--run", str(tmp_path / "f"), "--out", str(tmp_path / "f-out")]) == 0
    captions = [str(c) for c in dataset.load_split(data / f"train-{SIZE}.npz")["caption"]] + [""]
    tok = CLIPTokenizer.from_pretrained(str(ASSETS_DIR / "clip-tokenizer"))
    ids = tok(captions, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids

    def hidden(folder):
        with torch.no_grad():
            return CLIPTextModel.from_pretrained(str(folder / "text_encoder")).float().eval()(ids)[0]

    h0 = hidden(base)
    anchored, free = ((hidden(tmp_path / f"{k}-out") - h0).square().mean().item() for k in ("a", "f"))
    assert 0 < anchored < free / 3, (anchored, free)
    u0, u1 = (weights(p / "unet" / "diffusion_pytorch_model.safetensors") for p in (base, tmp_path / "a-out"))
    assert all(np.array_equal(u0[k], u1[k]) for k in u0)
    # its optimiser holds no UNet state: resuming it without --freeze-unet is refused in one line
    unfrozen = [x for x in tune if x != "--freeze-unet"]
    with pytest.raises(SystemExit, match="trained with --freeze-unet: resume it the same way"):
        main([*unfrozen, "--run", str(tmp_path / "a"), "--steps", "7"])


def test_freeze_text_trains_the_unet_alone(data, tmp_path):
    """--freeze-text: the text encoder comes out bit for bit the --init one while the UNet learns; a run trained so
    cannot be resumed without it, and it cannot be combined with --freeze-unet."""
    from training.train_ldm import main

    base, tune = fine_tune_args(data, tmp_path, "--batch", "2", "--save-every", "10")
    tune += ["--lr", "1e-2", "--steps", "2", "--freeze-text", "--run", str(tmp_path / "u")]
    assert main([*tune, "--out", str(tmp_path / "u-out")]) == 0
    t0, t1 = (weights(p / "text_encoder" / "model.safetensors") for p in (base, tmp_path / "u-out"))
    assert all(np.array_equal(t0[k], t1[k]) for k in t0)
    u0, u1 = (weights(p / "unet" / "diffusion_pytorch_model.safetensors") for p in (base, tmp_path / "u-out"))
    assert max_moved(u0, u1) > 5e-3
    with pytest.raises(SystemExit, match="trained with --freeze-text: resume it the same way"):
        main([x for x in tune if x != "--freeze-text"] + ["--steps", "3"])
    with pytest.raises(SystemExit) as e:
        main([*tune, "--freeze-unet"])
    assert e.value.code == 2


def test_unet_only_trains_just_the_matching_weights(data, tmp_path):
    """--unet-only REGEX: only the UNet weights whose names match move (here the cross-attention's keys and values);
    every other UNet weight and the text encoder come out bit for bit the --init ones; a run cannot be resumed with
    another pattern, and a pattern that is not one, or matches nothing, is refused."""
    import re

    from training.train_ldm import main

    base, tune = fine_tune_args(data, tmp_path, "--batch", "2", "--save-every", "10")
    tune += ["--lr", "1e-2", "--steps", "2", "--freeze-text", "--run", str(tmp_path / "kv")]
    assert main([*tune, "--unet-only", r"attn2\.to_[kv]", "--out", str(tmp_path / "kv-out")]) == 0
    t0, t1 = (weights(p / "text_encoder" / "model.safetensors") for p in (base, tmp_path / "kv-out"))
    assert all(np.array_equal(t0[k], t1[k]) for k in t0)
    u0, u1 = (weights(p / "unet" / "diffusion_pytorch_model.safetensors") for p in (base, tmp_path / "kv-out"))
    moved = {k for k in u0 if not np.array_equal(u0[k], u1[k])}
    assert moved and all(re.search(r"attn2\.to_[kv]", k) for k in moved), sorted(moved)[:5]
    assert len(moved) == sum(bool(re.search(r"attn2\.to_[kv]", k)) for k in u0)
    with pytest.raises(SystemExit, match="trained with --unet-only 'attn2"):
        main([*tune, "--unet-only", "attn2", "--steps", "3"])
    with pytest.raises(SystemExit, match="matches none of the UNet's weights"):
        main([*tune, "--unet-only", "no-such-weight", "--run", str(tmp_path / "none")])
    for bad in (["--unet-only", "("], ["--unet-only", "attn2", "--freeze-unet"]):
        with pytest.raises(SystemExit) as e:
            main([x for x in tune if x != "--freeze-text"] + bad)
        assert e.value.code == 2


def test_wise_ft_mixes_the_weights_and_leaves_the_fine_tunes_evaluation_behind(tmp_path):
    from safetensors.numpy import save_file

    from training.wise_ft import PARTS, interpolate

    for name, value in (("base", 0.0), ("tuned", 1.0)):
        for part, file in PARTS.items():
            (tmp_path / name / part).mkdir(parents=True)
            save_file({"w": np.full((2, 3), value, np.float16)}, str(tmp_path / name / part / file))
    (tmp_path / "tuned" / "eval").mkdir()
    (tmp_path / "tuned" / "eval" / "eval.json").write_text("{}")
    out = interpolate(tmp_path / "base", tmp_path / "tuned", tmp_path / "mix", 0.75)
    for part, file in PARTS.items():
        w = weights(out / part / file)["w"]
        assert w.dtype == np.float16 and np.all(w == np.float16(0.75))
    assert not (out / "eval").exists()
    # a part of its own weight: the base's UNet beside the fine-tune's text encoder
    out = interpolate(tmp_path / "base", tmp_path / "tuned", tmp_path / "parts", 0.75, {"unet": 0.0})
    assert np.all(weights(out / "unet" / PARTS["unet"])["w"] == 0)
    assert np.all(weights(out / "text_encoder" / PARTS["text_encoder"])["w"] == np.float16(0.75))
    # only the weights a pattern names: the rest stay the base's
    out = interpolate(tmp_path / "base", tmp_path / "tuned", tmp_path / "only", 1.0, only="^x")
    assert np.all(weights(out / "unet" / PARTS["unet"])["w"] == 0)
    out = interpolate(tmp_path / "base", tmp_path / "tuned", tmp_path / "only", 1.0, only="^w$")
    assert np.all(weights(out / "unet" / PARTS["unet"])["w"] == 1)


def test_text_pull_is_zero_for_the_same_caption_and_not_for_a_recoloured_one(data, tmp_path):
    """training.text_pull: the pull of a caption on the noise prediction is exactly 0 where the recoloured caption
    is the caption itself, and above 0 for a recoloured one; the command writes the table and the JSON."""
    from training.text_pull import TIMESTEPS, main, probe_set, text_pull

    base, _ = fine_tune_args(data, tmp_path)
    latents = tmp_path / "r0" / "latents.pt"
    probe = probe_set(latents, 4)
    assert all(c != r for p in probe.values() for c, r in zip(p["captions"], p["recoloured"]))
    pull = text_pull(base, probe)
    assert all(len(v) == len(TIMESTEPS) and min(v) > 0 for v in pull.values()), pull
    same = {k: dict(p, recoloured=p["captions"]) for k, p in probe.items()}
    assert all(v == [0.0] * len(TIMESTEPS) for v in text_pull(base, same).values())
    assert main([str(base), "--latents", str(latents), "--n", "2", "--out", str(tmp_path / "pull")]) == 0
    doc = json.loads((tmp_path / "pull.json").read_text())
    assert doc["models"]["base"]["perspective"][0] > 0 and "| base |" in (tmp_path / "pull.md").read_text()
