"""LoRA at export (issue 20): a tiny LoRA made here, fused and exported, equals diffusers' pipeline with the same
LoRA loaded, and the manifest records it."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from ldm3d_edge.runtime import Pipeline
from ldm3d_edge.runtime import constants as C
from ldm3d_edge.runtime.errors import InvalidArgumentError

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")
pytest.importorskip("peft")

PROMPT = "a red sphere in front of a blue cube on a grey floor"
SCALE = 0.8


@pytest.fixture(scope="module")
def lora_file(tiny4, tmp_path_factory):
    """A random LoRA on the tiny UNet's attention projections, saved in diffusers' format."""
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = diffusers.UNet2DConditionModel.from_pretrained(tiny4[0] / "unet")
    torch.manual_seed(0)
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights="gaussian",
                                target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    with torch.no_grad():   # large enough to move the image visibly
        for name, p in unet.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
    out = tmp_path_factory.mktemp("lora")
    diffusers.StableDiffusionPipeline.save_lora_weights(out, unet_lora_layers=get_peft_model_state_dict(unet))
    return out / "pytorch_lora_weights.safetensors"


def test_a_fused_lora_equals_diffusers_with_it_loaded(tiny4, lora_file, tmp_path):
    from ldm3d_edge.export import export_pipeline

    art = tmp_path / "art"
    export_pipeline(tiny4[0], art, fmt="both", progress=False, loras=[f"{lora_file}:{SCALE}"])
    raw = json.loads((art / C.MANIFEST_FILE).read_text())
    assert raw["lora"] == [{"file": lora_file.name, "scale": SCALE,
                            "sha256": hashlib.sha256(lora_file.read_bytes()).hexdigest()}]
    m = Pipeline.load(art, device="openvino:CPU", compile_now=False).manifest
    latents = np.random.default_rng(6).standard_normal((1, 4, m.height // 8, m.width // 8)).astype(np.float32)
    ref = diffusers.StableDiffusionLDM3DPipeline.from_pretrained(
        str(tiny4[0]), safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    ref.set_progress_bar_config(disable=True)
    kw = dict(num_inference_steps=6, guidance_scale=5.0, output_type="np")
    with torch.no_grad():
        base = ref(PROMPT, latents=torch.from_numpy(latents.copy()), **kw)
        ref.load_lora_weights(str(lora_file), adapter_name="test")
        ref.set_adapters(["test"], adapter_weights=[SCALE])
        want = ref(PROMPT, latents=torch.from_numpy(latents.copy()), **kw)
    assert np.abs(want.rgb[0] - base.rgb[0]).max() > 0.01, "the LoRA must change the image for this test"
    for device in ("openvino:CPU", "onnx:CPU"):
        out = Pipeline.load(art, device=device)(PROMPT, num_inference_steps=6, guidance_scale=5.0, latents=latents)
        assert np.abs(out.rgb_float - want.rgb[0]).max() <= 1e-4, device
        assert np.abs(out.depth - want.depth[0][..., 0]).max() <= 1e-4, device


def test_a_missing_lora_file_is_named(tiny4, tmp_path):
    from ldm3d_edge.export import export_pipeline

    with pytest.raises(InvalidArgumentError, match="LoRA file not found: /no/such.safetensors"):
        export_pipeline(tiny4[0], tmp_path / "a", progress=False, loras=["/no/such.safetensors:0.5"])
    assert not (tmp_path / "a").exists()
