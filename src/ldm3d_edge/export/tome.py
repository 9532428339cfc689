"""Token merging (Bolya & Hoffman 2023, "Token Merging for Fast Stable Diffusion", the `tomesd` package) folded
into the UNet before tracing: `ldm3d export SRC OUT --tome RATIO`.

In every transformer block at full latent resolution (tomesd's default max_downsample=1: in the SD UNet the
first down block and the last up block, where self-attention over h*w tokens costs the most), the self-attention
runs on fewer tokens: the tokens are split into destinations (the top-left token of each 2x2 cell) and sources
(the rest); the RATIO * N sources most similar to a destination (cosine similarity of the block's input) are
averaged into it; attention runs on the merged set; its output is copied back to every merged token. Cross-
attention and the feed-forward layer see every token (tomesd's defaults: merging them costs quality for little).

Same arithmetic as tomesd with use_rand=False (its choice at odd batch sizes; a traced graph cannot redraw the
random destinations every call), rewritten for ONNX opset 17: tomesd averages with scatter_reduce(mean), which no
opset-17 operator does; here the sum (ScatterElements, add) is divided by the count of tokens merged into each
destination. The test checks this against tomesd itself on the tiny model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# tomesd's defaults: 2x2 destination cells, only blocks with no downsampling
STRIDE = 2
MAX_DOWNSAMPLE = 1
MAX_RATIO = 1 - 1 / STRIDE**2   # at most every source token is merged


@dataclass(frozen=True)
class ToMe:
    ratio: float
    max_downsample: int = MAX_DOWNSAMPLE
    stride: int = STRIDE

    def record(self, blocks: int) -> dict:
        """What the manifest keeps."""
        return {"ratio": self.ratio, "max_downsample": self.max_downsample, "sx": self.stride, "sy": self.stride,
                "use_rand": False, "merge_attn": True, "merge_crossattn": False, "merge_mlp": False,
                "blocks": blocks}


def check_ratio(ratio: float) -> float:
    """ValueError naming the allowed range for a ratio outside (0, 0.75]."""
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= MAX_RATIO:
        raise ValueError(f"token merging ratio must be a number in (0, {MAX_RATIO}] (the share of tokens merged; "
                         f"tomesd suggests <= 0.5), got {ratio!r}")
    return float(ratio)


def _partition(h: int, w: int, stride: int, device):
    """(source, destination) token indices: the top-left token of each full stride x stride cell is a
    destination; every other token, including those past the last full cell, a source. Computed in numpy: they
    are constants of the traced graph (and the FLOP count runs on the meta device, which holds no values)."""
    import numpy as np
    import torch

    hs, ws = h // stride, w // stride
    is_dst = np.zeros((h, w), dtype=bool)
    is_dst[: hs * stride : stride, : ws * stride : stride] = True
    flat = is_dst.ravel()
    return (torch.as_tensor(np.flatnonzero(~flat), device=device),
            torch.as_tensor(np.flatnonzero(flat), device=device))


def merged_attention(attn, hidden, metric, h: int, w: int, ratio: float, stride: int = STRIDE):
    """attn(hidden) on the merged tokens, copied back to all of them. hidden, metric: (B, h*w, C)."""
    import torch

    b, n, c = hidden.shape
    src_idx, dst_idx = _partition(h, w, stride, hidden.device)
    n_src = src_idx.numel()
    r = min(int(n * ratio), n_src)
    if r <= 0:
        return attn(hidden)
    with torch.no_grad():
        m = metric / metric.norm(dim=-1, keepdim=True)
        scores = m[:, src_idx] @ m[:, dst_idx].transpose(1, 2)          # (B, sources, destinations)
        best, best_dst = scores.max(dim=-1)
        # sources by their best similarity, most similar first (TopK over all of them: ONNX has no argsort)
        order = torch.topk(best, n_src, dim=-1).indices
        merged, kept = order[:, :r], order[:, r:]
        into = torch.gather(best_dst, 1, merged)                         # each merged source's destination

    src, dst = hidden[:, src_idx], hidden[:, dst_idx]
    moved = torch.gather(src, 1, merged[..., None].expand(-1, -1, c))
    index = into[..., None]
    total = dst.scatter_add(1, index.expand(-1, -1, c), moved)
    count = torch.ones_like(dst[..., :1]).scatter_add(1, index, torch.ones_like(moved[..., :1]))
    tokens = torch.cat([torch.gather(src, 1, kept[..., None].expand(-1, -1, c)), total / count], dim=1)

    out = attn(tokens)
    n_kept = n_src - r
    kept_out, dst_out = out[:, :n_kept], out[:, n_kept:]
    d = out.shape[-1]
    back = torch.gather(dst_out, 1, into[..., None].expand(-1, -1, d))
    # where each row of [kept, destinations, merged] goes among the h*w tokens
    where = torch.cat([src_idx[kept], dst_idx.expand(b, -1), src_idx[merged]], dim=1)
    rows = torch.cat([kept_out, dst_out, back], dim=1)
    return torch.zeros_like(rows).scatter(1, where[..., None].expand(-1, -1, d), rows)


def apply_tome(unet, ratio: float, latent_hw: tuple[int, int], max_downsample: int = MAX_DOWNSAMPLE) -> dict:
    """Patch `unet` in place (its self-attentions in blocks at most `max_downsample` times below the latent size
    `latent_hw`); returns the manifest record. Which blocks: those whose token count is h*w / d^2 with
    d <= max_downsample, as tomesd decides at run time from the token count."""
    import torch

    spec = ToMe(check_ratio(ratio), max_downsample)
    lh, lw = latent_hw
    blocks = [m for m in unet.modules() if type(m).__name__ == "BasicTransformerBlock"]
    if not blocks:
        raise ValueError("token merging: this UNet has no BasicTransformerBlock (no self-attention to merge)")

    class Merged(torch.nn.Module):
        """The block's attn1, run on merged tokens; the metric is the block's input (tomesd's choice)."""

        def __init__(self, attn):
            super().__init__()
            self.attn = attn
            self.metric = None

        def forward(self, hidden_states, *args, **kwargs):
            n = hidden_states.shape[1]
            down = int(math.ceil(math.sqrt((lh * lw) // n)))
            if down > spec.max_downsample:
                return self.attn(hidden_states, *args, **kwargs)
            h, w = int(math.ceil(lh / down)), int(math.ceil(lw / down))
            return merged_attention(lambda x: self.attn(x, *args, **kwargs), hidden_states, self.metric, h, w,
                                    spec.ratio, spec.stride)

    def keep_input(block, args, kwargs):
        block.attn1.metric = args[0] if args else kwargs["hidden_states"]

    for block in blocks:
        block.attn1 = Merged(block.attn1)
        block.register_forward_pre_hook(keep_input, with_kwargs=True)
    merged = sum(1 for b in blocks if _tokens_merged(b, unet, lh, lw, spec.max_downsample))
    return spec.record(merged)


def _tokens_merged(block, unet, lh: int, lw: int, max_downsample: int) -> bool:
    """Whether `block` sits at a resolution ToMe merges: its depth in the UNet's down/up path."""
    for i, down in enumerate(unet.down_blocks):
        if any(block is m for m in down.modules()):
            return 2**i <= max_downsample
    for i, up in enumerate(unet.up_blocks):
        if any(block is m for m in up.modules()):
            return 2 ** (len(unet.up_blocks) - 1 - i) <= max_downsample
    return 2 ** (len(unet.down_blocks) - 1) <= max_downsample   # the mid block
