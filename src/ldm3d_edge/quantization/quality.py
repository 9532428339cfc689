"""What a variant (INT8, BF16, ...) costs in quality: the same prompts, seeds and initial latents through a
reference and a test artifact folder, compared per sample and on average.

    ldm3d quality REF TEST --prompts FILE --seeds N

Per sample: RGB PSNR (dB, peak 1) and SSIM (scikit-image, channel-wise), depth AbsRel (|test - ref| / ref over
pixels with ref depth >= 0.1, as in the embedded model's evaluation), depth RMSE, delta < 1.25 (share of those
pixels with max(test/ref, ref/test) < 1.25), and, for prompts that name a colour, prompt adherence of both.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..metrics import abs_rel, psnr
from ..runtime.errors import InvalidArgumentError
from ..runtime.result import atomic_write

DEFAULT_PROMPTS_FILE = Path(__file__).with_name("quality_prompts.txt")
MIN_DEPTH = 0.1
SHEET_SAMPLES = 4


def depth_errors(test: np.ndarray, ref: np.ndarray) -> dict:
    m = ref >= MIN_DEPTH
    t, r = test[m].astype(np.float64), ref[m].astype(np.float64)
    ratio = np.maximum(t / r, r / np.maximum(t, 1e-6))
    return {"depth_absrel": abs_rel(test, ref, MIN_DEPTH),
            "depth_rmse": float(np.sqrt(np.mean((test.astype(np.float64) - ref) ** 2))),
            "depth_delta1": float(np.mean(ratio < 1.25))}


def rgb_errors(test: np.ndarray, ref: np.ndarray) -> dict:
    from skimage.metrics import structural_similarity

    return {"rgb_psnr_db": psnr(test, ref),
            "rgb_ssim": float(structural_similarity(test, ref, channel_axis=-1, data_range=1.0))}


def prompted_colours(prompt: str) -> str | set[str] | None:
    """The colour adherence is judged against: the first named colour, or any named one for '360 view' prompts."""
    from ..metrics import COLOURS

    words = [w for w in re.findall(r"[a-z]+", prompt.lower()) if w in COLOURS]
    if not words:
        return None
    return set(words) if prompt.lower().startswith("360 view") else words[0]


def heat(diff: np.ndarray, vmax: float) -> np.ndarray:
    """|difference| -> RGB uint8 with matplotlib's inferno colour map (0 black, vmax bright yellow)."""
    from matplotlib import colormaps

    return (colormaps["inferno"](np.clip(diff / max(vmax, 1e-6), 0, 1))[..., :3] * 255).astype(np.uint8)


def side_by_side(pairs: list[tuple], out: Path) -> None:
    """Per sample two rows, RGB then depth: reference | test | |test - ref| heat map (scaled to 0.1)."""
    def grey(depth):
        return np.repeat((np.clip(depth, 0, 1)[..., None] * 255).astype(np.uint8), 3, -1)

    rows = []
    for ref, test in pairs:
        rows.append(np.concatenate([ref.rgb, test.rgb, heat(np.abs(test.rgb_float - ref.rgb_float).mean(-1), 0.1)], 1))
        rows.append(np.concatenate([grey(ref.depth), grey(test.depth), heat(np.abs(test.depth - ref.depth), 0.1)], 1))
    atomic_write(out, lambda p: Image.fromarray(np.concatenate(rows, 0)).save(p, format="PNG"))


def compare(ref_dir, test_dir, prompts: list[str], seeds: int = 2, steps: int = 20, guidance: float = 5.0,
            ref_device: str = "openvino:CPU", test_device: str = "openvino:CPU", ref_precision: str | None = None,
            test_precision: str | None = None, out: str | Path | None = None, progress: bool = True) -> dict:
    """Run every (prompt, seed) through both folders; write quality.json, quality.md, quality.png to `out`."""
    from ..metrics import adherence
    from ..runtime import Pipeline

    if seeds < 1 or not prompts:
        raise InvalidArgumentError("the comparison needs at least one prompt and one seed")
    ref = Pipeline.load(ref_dir, device=ref_device, precision=ref_precision)
    test = Pipeline.load(test_dir, device=test_device, precision=test_precision)
    if (ref.manifest.height, ref.manifest.width) != (test.manifest.height, test.manifest.width):
        raise InvalidArgumentError(f"the two folders were exported at different sizes "
                                   f"({ref.manifest.width}x{ref.manifest.height} vs "
                                   f"{test.manifest.width}x{test.manifest.height})")
    rows: list[dict] = []
    pairs: list[tuple] = []
    t0 = time.perf_counter()
    jobs = [(p, s) for p in prompts for s in range(seeds)]
    for prompt, seed in tqdm(jobs, desc="quality", unit="sample", disable=not progress):
        a = ref(prompt, num_inference_steps=steps, guidance_scale=guidance, seed=seed)
        b = test(prompt, num_inference_steps=steps, guidance_scale=guidance, seed=seed)
        row = {"prompt": prompt, "seed": seed, **rgb_errors(b.rgb_float, a.rgb_float), **depth_errors(b.depth, a.depth),
               "ref_step_s": a.metrics.median_step_s, "test_step_s": b.metrics.median_step_s}
        colour = prompted_colours(prompt)
        if colour is not None:
            ra, rb = adherence(a.rgb_float, a.depth, colour), adherence(b.rgb_float, b.depth, colour)
            row.update(ref_adherent=bool(ra["colour_ok"] and ra["nearer_ok"]),
                       test_adherent=bool(rb["colour_ok"] and rb["nearer_ok"]))
        rows.append(row)
        if len(pairs) < SHEET_SAMPLES:
            pairs.append((a, b))
    keys = ("rgb_psnr_db", "rgb_ssim", "depth_absrel", "depth_rmse", "depth_delta1", "ref_step_s", "test_step_s")
    summary = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    judged = [r for r in rows if "ref_adherent" in r]
    if judged:
        summary["ref_adherence"] = float(np.mean([r["ref_adherent"] for r in judged]))
        summary["test_adherence"] = float(np.mean([r["test_adherent"] for r in judged]))
        summary["adherence_drop_points"] = 100 * (summary["ref_adherence"] - summary["test_adherence"])
    report = {"reference": {"dir": str(ref_dir), "precision": ref.manifest.precision, "device": ref.device,
                            "inference_precision": ref_precision},
              "test": {"dir": str(test_dir), "precision": test.manifest.precision, "device": test.device,
                       "inference_precision": test_precision},
              "samples": len(rows), "seeds": seeds, "steps": steps, "guidance": guidance, "summary": summary,
              "adherence_judged": len(judged), "seconds": time.perf_counter() - t0, "per_sample": rows}
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / "quality.json", lambda p: Path(p).write_text(json.dumps(report, indent=1)))
        atomic_write(out / "quality.md", lambda p: Path(p).write_text(markdown(report)))
        side_by_side(pairs, out / "quality.png")
    return report


def label(side: dict) -> str:
    return side["precision"] + (f" ({side['inference_precision']})" if side.get("inference_precision") else "")


def summary_markdown(report: dict) -> str:
    """The title, the setup and the table of means."""
    s = report["summary"]
    lines = [f"# Quality: {label(report['test'])} vs {label(report['reference'])}", "",
             f"{report['samples']} samples ({report['samples'] // report['seeds']} prompts x {report['seeds']} seeds), "
             f"{report['steps']} steps, guidance {report['guidance']}, identical initial latents.", "",
             "| metric | mean |", "|---|---|",
             f"| RGB PSNR (dB) | {s['rgb_psnr_db']:.2f} |", f"| RGB SSIM | {s['rgb_ssim']:.4f} |",
             f"| depth AbsRel | {s['depth_absrel']:.4f} |", f"| depth RMSE | {s['depth_rmse']:.4f} |",
             f"| depth delta<1.25 | {s['depth_delta1']:.4f} |",
             f"| UNet step, reference (s) | {s['ref_step_s']:.4f} |",
             f"| UNet step, test (s) | {s['test_step_s']:.4f} |"]
    if "ref_adherence" in s:
        lines += [f"| prompt adherence, reference | {100 * s['ref_adherence']:.1f} % |",
                  f"| prompt adherence, test | {100 * s['test_adherence']:.1f} % |",
                  f"| adherence drop (points) | {s['adherence_drop_points']:.1f} |"]
    return "\n".join(lines) + "\n"


def markdown(report: dict) -> str:
    """The summary, then one row per sample."""
    lines = [summary_markdown(report).rstrip("\n")]
    lines += ["", "| prompt | seed | PSNR | SSIM | AbsRel | RMSE | delta1 |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['prompt']} | {r['seed']} | {r['rgb_psnr_db']:.2f} | {r['rgb_ssim']:.4f} | {r['depth_absrel']:.4f} "
              f"| {r['depth_rmse']:.4f} | {r['depth_delta1']:.3f} |" for r in report["per_sample"]]
    return "\n".join(lines) + "\n"
