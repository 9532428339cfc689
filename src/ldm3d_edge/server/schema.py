"""The HTTP API's request and response bodies (pydantic: the OpenAPI schema and the 4xx messages come from here)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..runtime.config import MAX_STEPS

MAX_PROMPT = 10_000
MAX_SIDE = 2048                 # the server's own limit (the runtime's is 4096)
OutputKind = Literal["rgb", "depth", "json", "glb", "mp4", "explore"]
DEFAULT_OUTPUTS: list[OutputKind] = ["rgb", "depth", "json", "glb"]


class GenerateRequest(BaseModel):
    """POST /v1/generate. Unknown fields and wrongly typed values are refused (422, naming the field)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT, description="what to generate")
    negative_prompt: str | None = Field(None, max_length=MAX_PROMPT)
    steps: int = Field(30, ge=1, le=MAX_STEPS, description="denoising steps")
    guidance: float = Field(5.0, ge=0, le=50, description="classifier-free guidance scale")
    seed: int | None = Field(None, ge=0, lt=2**63, description="random seed (default: a fresh one)")
    width: int | None = Field(None, ge=8, le=MAX_SIDE, description="multiple of 8 (default: the model's)")
    height: int | None = Field(None, ge=8, le=MAX_SIDE, description="multiple of 8 (default: the model's)")
    pano: bool = Field(False, description="360-degree equirectangular panorama (2:1, circular padding)")
    outputs: list[OutputKind] = Field(
        default_factory=lambda: list(DEFAULT_OUTPUTS),
        description="files wanted besides the raw float depth the viewer reads: rgb, depth (16-bit PNG), json, glb, "
                    "mp4; explore: a walk into the result (4 keyframes completed by inpainting, at most 20 steps "
                    "each): the fused scene as GLB points, its flight as MP4, a JSON record")

    @field_validator("width", "height")
    @classmethod
    def _multiple_of_8(cls, v: int | None) -> int | None:
        if v is not None and v % 8:
            raise ValueError(f"must be a multiple of 8, got {v}")
        return v

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v


class JobCreated(BaseModel):
    id: str
    status: str
    links: dict[str, str]


class Progress(BaseModel):
    step: int
    steps: int


class JobStatus(BaseModel):
    id: str
    status: Literal["queued", "running", "done", "failed", "cancelled"]
    progress: Progress
    error: str | None = None
    files: dict[str, str] = {}
    links: dict[str, str] = {}
    request: dict
