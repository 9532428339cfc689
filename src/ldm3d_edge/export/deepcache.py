"""The two UNet graphs DeepCache needs (Ma et al. 2023, "DeepCache: Accelerating Diffusion Models for Free").

A UNet's deep layers change little from one denoising step to the next. DeepCache runs the whole UNet every N-th
step and keeps one feature of its up path; in between, it runs only the shallow layers above a chosen branch and
takes the deep part's contribution from that cached feature.

Branches are numbered as DeepCache's DeepCacheSDHelper numbers them (cache_branch_id): with L layers per up block
(3 in the releases), branch B is layer B % L of down block B // L. The shallow pass runs conv_in, the down blocks
before that block, that block's first B % L (resnet, attention) layers, and then, in the mirror-image up block,
the layers from the one paired with the branch to the end of the up path (DeepCache's is_skip_step: up layers
numbered from the block's end, kept while their number <= B % L), then the output head. The cached feature is
the hidden state entering the first of those up layers, before its concatenation with the skip connection.
Branch 0 keeps only conv_in and the last up layer.

Both graphs are written from the UNet's own modules, in diffusers' order of operations; the test proves the split
exact: the full graph's output equals the plain UNet's, and the shallow graph given the full graph's feature
equals the full output (<= 1e-5, FP32)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Branch:
    """Where the UNet is split: down block `block`, its first `layer` layers kept; in up block
    len(up_blocks) - 1 - block, the layers from `up_layer` on run in the shallow pass."""

    branch: int
    block: int
    layer: int
    up_block: int
    up_layer: int


def branch_of(unet, branch: int) -> Branch:
    """The split of `unet` at DeepCache branch `branch`; ValueError naming the allowed range otherwise."""
    n_up_layers = len(unet.up_blocks[-1].resnets)   # layers_per_block + 1 in every diffusers UNet
    n = len(unet.down_blocks) * n_up_layers
    if isinstance(branch, bool) or not isinstance(branch, int) or not 0 <= branch < n:
        raise ValueError(f"DeepCache branch must be an integer from 0 to {n - 1} for this UNet "
                         f"({len(unet.down_blocks)} blocks x {n_up_layers} layers), got {branch!r}")
    block, layer = branch // n_up_layers, branch % n_up_layers
    up_block = len(unet.up_blocks) - 1 - block
    return Branch(branch, block, layer, up_block, len(unet.up_blocks[up_block].resnets) - 1 - layer)


def _pairs(block):
    """(resnet, attention or None) per layer of a down or up block."""
    attentions = getattr(block, "attentions", None) or [None] * len(block.resnets)
    return list(zip(block.resnets, attentions))


def _layer(resnet, attn, h, emb, hidden):
    h = resnet(h, emb)
    return h if attn is None else attn(h, encoder_hidden_states=hidden, return_dict=False)[0]


def _embedding(unet, sample, timestep, class_labels):
    """The time (+ class) embedding, as UNet2DConditionModel.forward computes it."""
    emb = unet.time_embedding(unet.get_time_embed(sample=sample, timestep=timestep), None)
    class_emb = unet.get_class_embed(sample=sample, class_labels=class_labels)
    if class_emb is not None:
        import torch

        emb = torch.cat([emb, class_emb], dim=-1) if unet.config.class_embeddings_concat else emb + class_emb
    return unet.time_embed_act(emb) if unet.time_embed_act is not None else emb


def run_unet(unet, split: Branch, sample, timestep, hidden, class_labels=None, feature=None):
    """The full pass (feature None): (output, feature at the split); the shallow pass (feature given): output."""
    import torch

    shallow = feature is not None
    if unet.config.center_input_sample:
        sample = 2 * sample - 1.0
    emb = _embedding(unet, sample, timestep, class_labels)
    h = unet.conv_in(sample)
    skips = [h]
    for bi, block in enumerate(unet.down_blocks):
        if shallow and bi > split.block:
            break
        for li, (resnet, attn) in enumerate(_pairs(block)):
            if shallow and bi == split.block and li >= split.layer:
                break
            h = _layer(resnet, attn, h, emb, hidden)
            skips.append(h)
        if block.downsamplers is not None and not (shallow and bi == split.block):
            for down in block.downsamplers:
                h = down(h)
            skips.append(h)
    if not shallow:
        h = unet.mid_block(h, emb, encoder_hidden_states=hidden) if unet.mid_block.has_cross_attention \
            else unet.mid_block(h, emb)
    cached = None
    for ui, block in enumerate(unet.up_blocks):
        if shallow and ui < split.up_block:
            continue
        for li, (resnet, attn) in enumerate(_pairs(block)):
            if ui == split.up_block and li == split.up_layer:
                if shallow:
                    h = feature
                else:
                    cached = h
            elif shallow and ui == split.up_block and li < split.up_layer:
                continue
            h = _layer(resnet, attn, torch.cat([h, skips.pop()], dim=1), emb, hidden)
        if block.upsamplers is not None:
            for up in block.upsamplers:
                h = up(h)
    if unet.conv_norm_out is not None:
        h = unet.conv_act(unet.conv_norm_out(h))
    out = unet.conv_out(h)
    return out if shallow else (out, cached)


def check_sizes(unet, latent_h: int, latent_w: int) -> None:
    """The graphs pass no upsample size, so every upsampler doubles: the latent must divide by 2**upsamplers."""
    f = 2 ** unet.num_upsamplers
    if latent_h % f or latent_w % f:
        raise ValueError(f"DeepCache graphs need a latent size divisible by {f}; got {latent_h}x{latent_w}")


def cache_modules(unet, branch: int):
    """(full module, shallow module, split): torch modules for graphs.Graph, with the plain UNet's inputs
    (the upscaler's class labels when it has them) and, for the shallow one, the feature last."""
    import torch

    split = branch_of(unet, branch)
    conditioned = unet.config.num_class_embeds is not None or unet.config.class_embed_type is not None

    class Full(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = unet

        def forward(self, sample, timestep, encoder_hidden_states, *class_labels):
            return run_unet(self.m, split, sample, timestep, encoder_hidden_states,
                            class_labels[0] if conditioned else None)

    class Shallow(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = unet

        def forward(self, sample, timestep, encoder_hidden_states, *rest):
            labels, feature = (rest[0], rest[1]) if conditioned else (None, rest[0])
            return run_unet(self.m, split, sample, timestep, encoder_hidden_states, labels, feature=feature)

    return Full(), Shallow(), split
