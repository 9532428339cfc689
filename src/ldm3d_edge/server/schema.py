"""The HTTP API's request and response bodies (pydantic: the OpenAPI schema and the 4xx messages come from here)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from ..runtime.config import MAX_STEPS

MAX_PROMPT = 10_000
# a character that is not a space, tab or line break, anywhere: the same in JSON Schema (ECMA) and pydantic's
# regex engine, unlike \S or str.strip, which disagree on some control characters
NOT_BLANK = r"[^ \t\n\r\f\v]"
MAX_SIDE = 2048                 # the server's own limit (the runtime's is 4096)
# 1000 steps reach timestep 1000 with the release schedulers' leading spacing and offset 1, which the runtime
# refuses: the schema says 999, so a request it admits is never refused for its steps
MAX_SERVER_STEPS = MAX_STEPS - 1


def _integral(v: Any) -> Any:
    """JSON Schema's "integer" includes 419.0: a float with no fraction is that integer (strings stay refused)."""
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _schema(lo: int, hi: int, multiple_of: int | None = None) -> WithJsonSchema:
    """The JSON Schema of an integer in [lo, hi], written out: after a before-validator pydantic still checks the
    bounds but names them ge / le / multiple_of in the schema, which no client generator reads."""
    return WithJsonSchema({"type": "integer", "minimum": lo, "maximum": hi,
                           **({"multipleOf": multiple_of} if multiple_of else {})})


# integers (integral floats taken, strings refused) with their bounds
Steps = Annotated[int, BeforeValidator(_integral), Field(ge=1, le=MAX_SERVER_STEPS), _schema(1, MAX_SERVER_STEPS)]
# 2^53 - 1: the largest integer every JSON client keeps exact (a float near 2^63 compares equal to 2^63 - 1 and
# to 2^63, so a client could not tell whether its seed is in range)
MAX_SEED = 2**53 - 1
Seed = Annotated[int, BeforeValidator(_integral), Field(ge=0, le=MAX_SEED), _schema(0, MAX_SEED)]
Side = Annotated[int, BeforeValidator(_integral), Field(ge=8, le=MAX_SIDE, multiple_of=8), _schema(8, MAX_SIDE, 8)]
OutputKind = Literal["rgb", "depth", "json", "glb", "mp4", "explore"]
DEFAULT_OUTPUTS: list[OutputKind] = ["rgb", "depth", "json", "glb"]


class GenerateRequest(BaseModel):
    """POST /v1/generate. Unknown fields and wrongly typed values are refused (422, naming the field)."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [
        {"prompt": "a red sphere in front of a blue cube on a grey floor", "steps": 10, "seed": 7,
         "outputs": ["rgb", "depth", "json"]},
        {"prompt": "a room with a green cone on a dark floor", "pano": True, "steps": 10, "outputs": ["rgb", "glb"]}]})

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT, pattern=NOT_BLANK,
                        description="what to generate (not only spaces, tabs or line breaks)")
    negative_prompt: str | None = Field(None, max_length=MAX_PROMPT)
    steps: Steps = Field(30, description="denoising steps")
    guidance: float = Field(5.0, ge=0, le=50, description="classifier-free guidance scale")
    seed: Seed | None = Field(None, description="random seed (default: a fresh one)")
    width: Side | None = Field(None, description="default: the model's")
    height: Side | None = Field(None, description="default: the model's")
    pano: bool = Field(False, description="360-degree equirectangular panorama (2:1, circular padding)")
    outputs: list[OutputKind] = Field(
        default_factory=lambda: list(DEFAULT_OUTPUTS),
        description="files wanted besides the raw float depth the viewer reads: rgb, depth (16-bit PNG), json, glb, "
                    "mp4; explore: a walk into the result (4 keyframes completed by inpainting, at most 20 steps "
                    "each): the fused scene as GLB points, its flight as MP4, a JSON record")


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


class GalleryItem(BaseModel):
    name: str
    prompt: str | None
    width: int | None
    height: int | None
    camera: str | None
    rgb: str
    info: str
    explore: str | None = Field(description="the fused scene's GLB of an explore output, or null")


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    model: str | None
    generate: bool
    queue_depth: int
    running: int


class WorkerState(BaseModel):
    state: Literal["loading", "idle", "busy", "restarting", "down"]
    pid: int | None
    restarts: int


class Readiness(BaseModel):
    ready: bool
    workers: list[WorkerState]


class ErrorBody(BaseModel):
    """Every 4xx / 5xx answer: what was wrong, in one line (422s add pydantic's list of problems as detail)."""

    error: str
    detail: list | None = None


_MEANING = {400: "the body cannot be read as UTF-8 JSON", 401: "the X-API-Key header is missing "
            "or wrong (asked of clients off this machine, and of all with --key-for-local)",
            404: "no such job or result file", 413: "the request body is over the server's --max-body-kb",
            422: "the body is not a valid request: the error names the field", 429: "the queue is full: retry "
            "after Retry-After seconds", 503: "no model is loaded (ldm3d view), or the service is shutting down "
            "(Retry-After)", 507: "the results disk has less free space than --min-free-mb"}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses, each with the ErrorBody it answers (401 and 413 can come
    from every route: they are added to all)."""
    return {code: {"model": ErrorBody, "description": _MEANING[code]} for code in sorted({401, 413, *codes})}
