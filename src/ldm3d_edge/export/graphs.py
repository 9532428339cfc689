"""The four exported graphs: a thin torch wrapper per part, with named, static-shape example inputs."""

from __future__ import annotations

from dataclasses import dataclass

from ..runtime import constants as C


@dataclass
class Graph:
    component: str
    module: object            # torch.nn.Module
    inputs: dict              # name -> example tensor (its shape is the exported static shape)
    outputs: dict             # name -> static output shape
    batched: bool = False     # every input's and output's first dim is the batch (the UNet's CFG pair)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(self.outputs)


def build_graphs(unet, vae, text_encoder, height: int, width: int, text_length: int = 77,
                 deepcache_branch: int | None = None) -> list[Graph]:
    """The parts' graphs; with deepcache_branch, also the two UNet graphs DeepCache needs (export/deepcache.py)."""
    import torch

    class Wrapped(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

    class TextEncoder(Wrapped):
        def forward(self, input_ids):
            return self.m(input_ids=input_ids, return_dict=False)[0]

    class UNet(Wrapped):
        def forward(self, sample, timestep, encoder_hidden_states):
            return self.m(sample, timestep, encoder_hidden_states=encoder_hidden_states, return_dict=False)[0]

    class UpscaleUNet(Wrapped):  # ldm3d-sr: 8 input channels, the low-res noise level as class label
        def forward(self, sample, timestep, encoder_hidden_states, class_labels):
            return self.m(sample, timestep, encoder_hidden_states=encoder_hidden_states, class_labels=class_labels,
                          return_dict=False)[0]

    class VaeDecoder(Wrapped):  # post_quant_conv + decoder: latents (already / scaling_factor) -> image
        def forward(self, latent_sample):
            return self.m.decode(latent_sample, return_dict=False)[0]

    class VaeEncoder(Wrapped):  # encoder + quant_conv: image -> [mean, logvar] of the latent Gaussian
        def forward(self, sample):
            h = self.m.encoder(sample)
            return self.m.quant_conv(h) if self.m.quant_conv is not None else h

    scale = 2 ** (len(vae.config.block_out_channels) - 1)
    lh, lw = height // scale, width // scale
    latent_ch = unet.config.in_channels
    hidden = text_encoder.config.hidden_size
    g = torch.Generator().manual_seed(0)
    unet_inputs = {C.UNET_SAMPLE: torch.randn(2, latent_ch, lh, lw, generator=g),
                   C.UNET_TIMESTEP: torch.tensor([981.0, 981.0]),
                   C.UNET_ENCODER_HIDDEN_STATES: torch.randn(2, text_length, hidden, generator=g)}
    conditioned = unet.config.num_class_embeds is not None or unet.config.class_embed_type is not None
    if conditioned:
        unet_inputs[C.UNET_CLASS_LABELS] = torch.tensor([20, 20], dtype=torch.int64)
    graphs = [
        Graph(C.TEXT_ENCODER, TextEncoder(text_encoder),
              {C.TEXT_INPUT_IDS: torch.randint(0, 49000, (1, text_length), generator=g, dtype=torch.int64)},
              {C.TEXT_HIDDEN_STATES: (1, text_length, hidden)}),
        Graph(C.UNET, (UpscaleUNet if conditioned else UNet)(unet), unet_inputs,
              {C.UNET_OUT: (2, unet.config.out_channels, lh, lw)}, batched=True),
        Graph(C.VAE_DECODER, VaeDecoder(vae),
              {C.VAE_LATENT: torch.randn(1, vae.config.latent_channels, lh, lw, generator=g)},
              {C.VAE_IMAGE: (1, vae.config.out_channels, height, width)}),
        Graph(C.VAE_ENCODER, VaeEncoder(vae),
              {C.VAE_ENCODER_IMAGE: torch.rand(1, vae.config.in_channels, height, width, generator=g) * 2 - 1},
              {C.VAE_ENCODER_MOMENTS: (1, 2 * vae.config.latent_channels, lh, lw)}),
    ]
    if deepcache_branch is not None:
        graphs += _deepcache_graphs(unet, unet_inputs, deepcache_branch, lh, lw)
    return graphs


def _deepcache_graphs(unet, unet_inputs: dict, branch: int, lh: int, lw: int) -> list[Graph]:
    import torch

    from .deepcache import cache_modules, check_sizes

    check_sizes(unet, lh, lw)
    full, shallow, _ = cache_modules(unet, branch)
    with torch.inference_mode():
        out, feature = full(*unet_inputs.values())
    shallow_inputs = {**unet_inputs, C.UNET_CACHE_FEATURE: torch.randn(feature.shape,
                                                                        generator=torch.Generator().manual_seed(1))}
    return [Graph(C.UNET_CACHE_FULL, full, dict(unet_inputs),
                  {C.UNET_OUT: tuple(out.shape), C.UNET_CACHE_FEATURE: tuple(feature.shape)}, batched=True),
            Graph(C.UNET_CACHE_SHALLOW, shallow, shallow_inputs, {C.UNET_OUT: tuple(out.shape)}, batched=True)]
