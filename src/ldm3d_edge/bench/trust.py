"""When a bench's numbers can be trusted, and the ratios that hold up when they cannot (issue 20).

On a shared host the same row moved 3-5x between days (2026-12-01: matmul peaks 110 / 277 / 416 GOP/s instead of
343 / 1,336 / 2,039, ~20 % CPU steal, one INT8 row 3.1-7.4 s over two rounds) while the table looked like any
other day's. These flag such rows and runs, and give the ratio measured within one round beside the ratio of
medians: host noise that hits a round hits both rows of it.
"""

from __future__ import annotations

import statistics

from .variants import BASELINE

RATIO_KEYS = ("text_encoder_s", "unet_step_s", "vae_decode_s", "e2e_s")
# When a number is not to be trusted (issue 20): a row whose rounds spread by more than this around its median,
# a run with more CPU steal than this, or a matmul peak that moved by more than this between before and after.
MAX_SPREAD, MAX_STEAL_PCT, MAX_PEAK_DRIFT = 0.10, 5.0, 0.10


def ratio_reference(rows: dict[str, dict]) -> tuple[str | None, str]:
    """The row every ratio is taken against: the baseline (diffusers PyTorch FP32) when it ran, else the slowest
    row present by UNet step, so a run without PyTorch still compares its rows; and how it was chosen."""
    ran = {k: v for k, v in rows.items() if v.get("rounds_ok")}
    if BASELINE in ran:
        return BASELINE, "baseline"
    if not ran:
        return None, "none"
    return max(ran, key=lambda k: ran[k]["unet_step_s"]["median"]), "slowest row (no baseline row in this run)"


def same_round_ratios(ref_runs: list[dict], runs: list[dict]) -> dict[str, float]:
    """Per timing, the median over rounds of reference / this row measured in the same round: host noise that
    hits one round hits both rows of it, so this ratio moves less than the ratio of medians."""
    out = {}
    for key in RATIO_KEYS:
        pairs = [a[key] / b[key] for a, b in zip(ref_runs, runs) if "error" not in a and "error" not in b]
        if pairs:
            out[key] = statistics.median(pairs)
    return out


def trust_flags(row: dict, runs: list[dict]) -> list[str]:
    """Why a row's numbers should not be quoted, if they should not: rounds that spread by more than
    MAX_SPREAD around the median, or runs taken with more than MAX_STEAL_PCT CPU steal."""
    flags = [f"{key} spread {100 * row[key]['spread']:.0f} % > {100 * MAX_SPREAD:.0f} %"
             for key in ("unet_step_s", "e2e_s") if key in row and row[key]["spread"] > MAX_SPREAD]
    steal = [r["steal_pct"] for r in runs if r.get("steal_pct") is not None]
    if steal and max(steal) > MAX_STEAL_PCT:
        flags.append(f"CPU steal up to {max(steal):.0f} % > {MAX_STEAL_PCT:.0f} %")
    return flags


def run_flags(peaks: dict | None, peaks_after: dict | None, runs: dict[str, list[dict]]) -> list[str]:
    """Why the whole run should not be quoted, if it should not: the matmul peaks moved by more than
    MAX_PEAK_DRIFT between before and after the rows, or any run had more than MAX_STEAL_PCT CPU steal."""
    flags = []
    for k, p in (peaks or {}).items():
        after = (peaks_after or {}).get(k)
        if after and abs(after["gops"] - p["gops"]) > MAX_PEAK_DRIFT * p["gops"]:
            flags.append(f"{k} matmul peak {p['gops']:.0f} -> {after['gops']:.0f} GOP/s during the rows")
    steal = [r["steal_pct"] for rs in runs.values() for r in rs if r.get("steal_pct") is not None]
    if steal and max(steal) > MAX_STEAL_PCT:
        flags.append(f"CPU steal up to {max(steal):.0f} % in a run (> {MAX_STEAL_PCT:.0f} %)")
    return flags
