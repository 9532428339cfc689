"""`ldm3d bench` results out: <out>/bench.json (everything, machine info included), bench.md (the tables and how
far the goals are), bench.png (UNet step and end-to-end seconds per variant)."""

from __future__ import annotations

import json
from pathlib import Path

from ..runtime.result import atomic_write

# The project's goals for full-size ldm3d-4c at 512x512 on the CPU (issue 6).
GOALS = {"unet_step_s": 1.2, "fraction_of_peak": 0.85, "e2e_20_steps_s": 30.0, "int8_rss_gb": 2.5,
         "warm_start_s": 5.0}
SPEED_GOALS_S = {"balanced": 12.0, "fast": 6.0}   # issue 20, end to end at 512x512 on 2 cores


def work_share(speed: str, flops: dict) -> float:
    """The FLOPs an image costs under preset `speed` as a share of the release default's (quality): text encoder
    twice, the preset's UNet calls (an unguided step at batch 1 is half a call), one VAE decode."""
    from ..runtime.presets import PRESETS

    def cost(calls: float) -> float:
        return 2 * flops["text_encoder"] + calls * flops["unet"] + flops["vae_decoder"]

    return cost(PRESETS[speed].unet_calls()) / cost(PRESETS["quality"].unet_calls())


def speed_lines(r: dict) -> list[str]:
    """The preset rows: end to end, the work they spend, issue 20's goals."""
    rows = {k: v for k, v in r["variants"].items() if v.get("speed") and v.get("rounds_ok")}
    if not rows:
        return []
    f = (r.get("flops") or {}).get("flops")
    o = r["options"]
    full = o["config"] in ("ldm3d-4c", "ldm3d") and (o["height"], o["width"]) == (512, 512)
    out = ["## Speed presets", "",
           "Rows '<variant>:<preset>' generate with `--speed <preset>` (runtime/presets.py) instead of the run's "
           "steps; their UNet s/step is the median over guided (batch 2) and unguided (batch 1) steps. Work: the "
           "image's FLOPs as a share of the quality preset's (the release default, 49 guided steps). Goals (issue "
           "20, end to end at 512x512 on 2 cores): balanced ≤ 12 s, fast ≤ 6 s"
           + ("." if full else f"; this run is {o['config']} {o['width']}x{o['height']}, so they do not apply."), "",
           "| row | end to end s | work | goal | verdict |", "|---|---|---|---|---|"]
    for k, v in rows.items():
        e2e = v["e2e_s"]["median"]
        goal = SPEED_GOALS_S.get(v["speed"])
        verdict = "–" if goal is None or not full else (_met(e2e <= goal) + f" ({e2e / goal:.1f}x the goal)")
        share = f"{100 * work_share(v['speed'], f):.0f} %" if f else "–"
        out.append(f"| {k} | {_s(v['e2e_s'])} | {share} | {'–' if goal is None else f'≤ {goal:.0f} s'} | "
                   f"{verdict} |")
    return out + [""]


def _g(x: float) -> str:
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def _s(stat: dict | None) -> str:
    """median (min–max) with three significant digits."""
    if not stat:
        return "–"
    return _g(stat["median"]) if stat["n"] < 2 or stat["min"] == stat["max"] else \
        f"{_g(stat['median'])} ({_g(stat['min'])}–{_g(stat['max'])})"


def _x(row: dict, key: str) -> str:
    """ratio of medians (median of the same-round ratios)."""
    if "speedup" not in row:
        return "–"
    same = row.get("speedup_same_round", {}).get(key)
    return f"{row['speedup'][key]:.2f}x" + (f" ({same:.2f}x)" if same is not None else "")


def _trust(row: dict) -> str:
    flags = row.get("flags")
    return "ok" if flags == [] else "–" if flags is None else "**not to be quoted**: " + "; ".join(flags)


def trust_lines(r: dict) -> list[str]:
    """The run's CPU steal and matmul peaks before and after the rows, and whether the run can be quoted."""
    lines = []
    steal = r.get("steal_pct")
    if steal is not None:
        lines.append(f"CPU steal over the whole run: {steal:.1f} % (/proc/stat; rows flagged above 5 %).")
    before, after = r.get("peaks") or {}, r.get("peaks_after") or {}
    if before and after:
        lines.append("Matmul peaks before → after the rows: " + ", ".join(
            f"{k} {p['gops']:.0f} → {after[k]['gops']:.0f} GOP/s" for k, p in before.items() if k in after) + ".")
    flags = r.get("trust")
    if flags:
        lines.append("**This run is not to be quoted**: " + "; ".join(flags) + ". Its ratios measured within "
                     "one round are the better guide; its absolute times are not the product's.")
    elif flags is not None:
        lines.append("No trust flag: steal ≤ 5 % in every run, peaks steady within 10 %.")
    return lines


def _env(env: dict) -> str:
    return f" (env {' '.join(f'{a}={b}' for a, b in env.items())})" if env else ""


def _f(v, fmt: str = ".1f") -> str:
    return "–" if v is None else format(v, fmt)


def _met(ok: bool) -> str:
    return "met" if ok else "not met"


def goals(r: dict) -> list[str]:
    rows = {k: v for k, v in r["variants"].items() if v.get("rounds_ok") and v["engine"] != "torch"
            and not v.get("speed")}
    if not rows:
        return []
    o = r["options"]
    best = min(rows, key=lambda k: rows[k]["unet_step_s"]["median"])
    b = rows[best]
    base = r["variants"].get(r["baseline"], {})
    lines = [f"Goals (set for full-size ldm3d-4c at 512x512 on the CPU; this run: {o['config']} "
             f"{o['width']}x{o['height']}, {o['steps']} steps):", ""]
    against_torch = r.get("ratio_reference", r["baseline"]) == r["baseline"]
    speed = f", {b['speedup']['unet_step_s']:.1f}x diffusers FP32" if "speedup" in b and against_torch else ""
    step = b["unet_step_s"]["median"]
    lines.append(f"- best UNet step: {best} {_g(step)} s{speed} (goal ≤ {GOALS['unet_step_s']} s): "
                 f"{_met(step <= GOALS['unet_step_s'])}")
    if "roofline" in b:
        fr = {k: v["roofline"]["unet"]["fraction_of_peak"] for k, v in rows.items() if "roofline" in v}
        low = [f"{k} {100 * f:.0f} %" for k, f in fr.items() if f < GOALS["fraction_of_peak"]]
        lines.append(f"- UNet at ≥ {100 * GOALS['fraction_of_peak']:.0f} % of its precision's peak: "
                     + ("all met" if not low else "below: " + ", ".join(low)))
    e2e = b["e2e_s"]["median"]
    verdict = _met(e2e <= GOALS["e2e_20_steps_s"]) if o["steps"] == 20 else "n/a (not 20 steps)"
    lines.append(f"- end to end, {o['steps']} steps: {best} {_g(e2e)} s (goal ≤ {GOALS['e2e_20_steps_s']:.0f} s "
                 f"for 20 steps): {verdict}")
    int8 = {k: v["peak_rss_gb"] for k, v in rows.items() if "int8" in k}
    if int8:
        k = min(int8, key=lambda n: int8[n])
        lines.append(f"- INT8 pipeline peak RSS: {k} {int8[k]:.2f} GB (goal ≤ {GOALS['int8_rss_gb']} GB): "
                     f"{_met(int8[k] <= GOALS['int8_rss_gb'])}")
    warm = {k: v["start_warm_s"] for k, v in rows.items() if v.get("start_warm_s") is not None}
    if warm:
        k = min(warm, key=lambda n: warm[n])
        lines.append(f"- warm start (process start to first UNet step done): best {k} {warm[k]:.1f} s (goal ≤ "
                     f"{GOALS['warm_start_s']:.0f} s): {_met(warm[k] <= GOALS['warm_start_s'])}")
    if base.get("rounds_ok"):
        lines.append(f"- baseline diffusers PyTorch FP32: UNet step {_g(base['unet_step_s']['median'])} s, "
                     f"end to end {_g(base['e2e_s']['median'])} s")
    return lines


def markdown(r: dict) -> str:
    o, mc = r["options"], r["machine"]
    out = [f"# ldm3d bench: {o['config']} {o['width']}x{o['height']}, {o['steps']} steps, {o['device']}", "",
           f"{mc.get('cpu')}, {mc.get('cores')} logical cores, {mc['threads']} threads for every engine "
           f"(torch.set_num_threads, OpenVINO INFERENCE_NUM_THREADS, ONNX Runtime intra-op); ISA: "
           f"{', '.join(mc.get('isa', []))}. torch {mc.get('torch')}, diffusers {mc.get('diffusers')}, OpenVINO "
           f"{mc.get('openvino')}, ONNX Runtime {mc.get('onnxruntime')}.", "",
           f"Each variant ran {o['repeat']} times, each time in a fresh process, variants interleaved round by round; "
           "figures are the median (min–max) over rounds. UNet: one denoising step at CFG batch 2 (median of the "
           "steps of a run). Text encoder: prompt + negative prompt. Start: process start to the first UNet step "
           "done (imports, load, compile, first call); cold = empty compile cache (round 1), warm = filled. "
           "Peak RSS: the variant's own process (VmHWM).", ""]
    ref = r.get("ratio_reference", r["baseline"])
    ref_name = "PyTorch" if ref == r["baseline"] else ref
    out += [f"Ratios: the reference's median over the row's (in brackets: the median of the ratios measured within "
            f"one round), against {ref_name}"
            + ("." if ref == r["baseline"] else f", the slowest row, because no {r['baseline']} row ran.")
            + " A row is not to be quoted when its rounds spread by more than 10 % or a run had more than 5 % CPU "
            "steal.", ""] + trust_lines(r) + ["",
            f"| variant | text enc s | UNet s/step | VAE decode s | end to end s | UNet vs {ref_name} | "
            f"e2e vs {ref_name} | start cold s | start warm s | peak RSS GB | weights MB | trust |",
            "|---" * 12 + "|"]
    for k, v in r["variants"].items():
        if not v.get("rounds_ok"):
            out.append(f"| {k} | failed: {v['errors'][0] if v['errors'] else '?'} ||||||||||| ")
            continue
        cells = [_s(v["text_encoder_s"]), _s(v["unet_step_s"]), _s(v["vae_decode_s"]), _s(v["e2e_s"]),
                 _x(v, "unet_step_s"), _x(v, "e2e_s"), _f(v["start_cold_s"]), _f(v["start_warm_s"]),
                 f"{v['peak_rss_gb']:.2f}", f"{v['model_bytes'] / 1e6:.0f}", _trust(v)]
        out.append(f"| {k} | " + " | ".join(cells) + " |")
    labels = "; ".join(f"**{k}** {v['label']}" + _env(v["env"]) for k, v in r["variants"].items())
    out += ["", "Variants: " + labels, ""]
    if r.get("peaks") and r.get("flops") and "flops" in r["flops"]:
        f = r["flops"]["flops"]
        out += ["## Roofline", "",
                f"FLOPs per call ({r['flops']['method']}): text encoder {f['text_encoder'] / 1e9:.1f} GFLOP, UNet "
                f"{f['unet'] / 1e12:.3f} TFLOP (batch 2), VAE decoder {f['vae_decoder'] / 1e12:.3f} TFLOP. Peaks "
                "(OpenVINO CPU matmul microbenchmark, best of sizes " + ", ".join(
                    f"{k} {p['gops']:.0f} GOP/s at {p['size']}³" for k, p in r["peaks"].items()) + ").", "",
                "| variant | peak used | UNet INT8 share | UNet GFLOP/s | UNet % of peak | VAE GFLOP/s | VAE % of peak "
                "| text enc GFLOP/s |", "|---|---|---|---|---|---|---|---|"]
        for k, v in r["variants"].items():
            rf = v.get("roofline")
            if rf:
                u = rf["unet"]
                bound = f" ({100 * u['fraction_of_float_peak']:.0f} % of {rf['peak_precision']})" \
                    if "fraction_of_float_peak" in u else ""
                share = "?" if bound else f"{100 * rf['unet_int8_share']:.0f} %"
                out.append(f"| {k} | {rf['peak_precision']}{' + INT8' if rf['unet_int8_share'] else ''} | "
                           f"{share} | {u['gflops_per_s']:.0f} | {100 * u['fraction_of_peak']:.0f} %{bound} | "
                           f"{rf['vae_decoder']['gflops_per_s']:.0f} | "
                           f"{100 * rf['vae_decoder']['fraction_of_peak']:.0f} % | "
                           f"{rf['text_encoder']['gflops_per_s']:.0f} |")
        out += ["", "A part with a share s of its FLOPs in INT8 kernels is held to the time-weighted peak "
                "1 / (s / P_INT8 + (1 - s) / P_float); OpenVINO reports s from the compiled model. ONNX Runtime does "
                "not (?): its INT8 UNet is held to the INT8 peak, with its fraction of the float peak in brackets."]
        out.append("")
    out += speed_lines(r)
    g = goals(r)
    if g:
        out += ["## Goals", ""] + g + [""]
    if r.get("prepare_s"):
        out += ["Preparation this run: " + ", ".join(f"{k} {v:.0f} s" for k, v in r["prepare_s"].items()), ""]
    return "\n".join(out)


def chart(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = {k: v for k, v in r["variants"].items() if v.get("rounds_ok")}
    names = list(rows)[::-1]
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.45 * len(names) + 1.8))
    for ax, key, title in ((axes[0], "unet_step_s", "UNet step (CFG batch 2), s"),
                           (axes[1], "e2e_s", f"end to end, {r['options']['steps']} steps, s")):
        vals = [rows[n][key]["median"] for n in names]
        colors = ["#999999" if rows[n]["engine"] == "torch" else "#1f77b4" if rows[n]["engine"] == "openvino"
                  else "#ff7f0e" for n in names]
        ax.barh(names, vals, color=colors)
        for y, (n, val) in enumerate(zip(names, vals)):
            sp = rows[n].get("speedup", {}).get(key)
            ax.text(val, y, f" {_g(val)}" + (f" ({sp:.1f}x)" if sp else ""), va="center", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_xlim(0, max(vals) * 1.35)
    o = r["options"]
    fig.suptitle(f"ldm3d bench: {o['config']} {o['width']}x{o['height']}, {r['machine'].get('cpu')}, "
                 f"{r['machine']['threads']} threads (grey: diffusers, blue: OpenVINO, orange: ONNX Runtime)",
                 fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)


def write_report(r: dict, out: str | Path) -> dict[str, Path]:
    """Write bench.json, bench.md and bench.png into `out`; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "bench.json", "md": out / "bench.md", "png": out / "bench.png"}
    atomic_write(paths["json"], lambda p: Path(p).write_text(json.dumps(r, indent=2)))
    atomic_write(paths["md"], lambda p: Path(p).write_text(markdown(r)))
    if any(v.get("rounds_ok") for v in r["variants"].values()):
        chart(r, paths["png"])
    else:
        paths.pop("png")
    return paths
