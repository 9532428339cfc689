"""A source that is not a local folder: a Hugging Face hub id (`Intel/ldm3d-4c`), resolved through huggingface_hub.

As optimum-intel's from_pretrained does: the hub's own cache (HF_HUB_CACHE), HF_HUB_OFFLINE honoured, a revision
(branch, tag or commit) pinned with --revision, and only the files an export reads (configs, tokenizer, scheduler,
one weights file per part: safetensors where the repo has them), not the repo's fp16 variants or ONNX copies.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..runtime import constants as C
from ..runtime.errors import InvalidArgumentError, ModelFolderError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
PARTS = {"unet": "diffusion_pytorch_model", "vae": "diffusion_pytorch_model", "text_encoder": "model"}
SMALL_FILES = ["model_index.json", C.CALIBRATION_PROMPTS_FILE, C.PROMPT_COMPLETION_FILE, f"{C.SCHEDULER_DIR}/*",
               f"{C.LOW_RES_SCHEDULER_DIR}/*", f"{C.TOKENIZER_DIR}/*",
               *(f"{part}/{C.CONFIG_FILE}" for part in PARTS)]


def resolve_source(src: str | Path, revision: str | None = None) -> tuple[Path, str | None]:
    """(local diffusers folder, "repo_id@commit" or None): `src` itself when it is a folder, else the hub id's
    snapshot in the hub cache (downloaded first when the hub can be reached)."""
    path = Path(src)
    if path.is_dir():
        if revision:
            raise InvalidArgumentError(f"--revision applies to hub ids; {src} is a local folder")
        return path, None
    if not HUB_ID.match(str(src)):
        raise ModelFolderError(f"source checkpoint folder not found: {src} (give a local diffusers folder, or a "
                               "Hugging Face hub id such as Intel/ldm3d-4c)")
    folder = _snapshot(str(src), revision)
    return folder, f"{src}@{folder.name}"


def _patterns(weights: dict[str, str]) -> list[str]:
    return SMALL_FILES + [f"{part}/{PARTS[part]}{weights[part]}" for part in PARTS]


def _snapshot(repo_id: str, revision: str | None) -> Path:
    from huggingface_hub import constants, list_repo_files, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    name = f"{repo_id}@{revision}" if revision else repo_id
    offline = bool(constants.HF_HUB_OFFLINE)
    unreachable = None
    try:
        weights = {part: ".safetensors" for part in PARTS}
        if not offline:
            try:
                files = set(list_repo_files(repo_id, revision=revision))
            except (RepositoryNotFoundError, GatedRepoError, RevisionNotFoundError):
                raise
            except (HfHubHTTPError, OSError) as e:   # no network: what the cache holds may still do
                files, unreachable = None, e
            if files is not None:
                weights = {part: ".safetensors" if f"{part}/{stem}.safetensors" in files else ".bin"
                           for part, stem in PARTS.items()}
        local = offline or unreachable is not None
        folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=_patterns(weights),
                                        local_files_only=local))
        if local and not all((folder / part / f"{stem}.safetensors").is_file() for part, stem in PARTS.items()):
            # cached with .bin weights (an older repo): take those
            folder = Path(snapshot_download(repo_id, revision=revision, local_files_only=True,
                                            allow_patterns=_patterns({part: ".bin" for part in PARTS})))
    except LocalEntryNotFoundError:
        why = "HF_HUB_OFFLINE is set" if offline else f"the hub cannot be reached ({unreachable or 'offline'})"
        raise ModelFolderError(f"{name} is not a local folder and not in the Hugging Face cache "
                               f"({constants.HF_HUB_CACHE}), and {why}: download it once where the hub can be "
                               "reached (unset HF_HUB_OFFLINE), or pass a local diffusers folder") from None
    except GatedRepoError:
        raise ModelFolderError(f"{repo_id} is gated on the Hugging Face hub: accept its terms on its page and log in "
                               "(hf auth login)") from None
    except RepositoryNotFoundError:
        raise ModelFolderError(f"no model {repo_id} on the Hugging Face hub (or it is private: log in with "
                               "hf auth login)") from None
    except RevisionNotFoundError:
        raise ModelFolderError(f"{repo_id} has no revision {revision!r} on the Hugging Face hub") from None
    except (HfHubHTTPError, OSError) as e:
        raise ModelFolderError(f"could not fetch {name} from the Hugging Face hub: {e}") from None
    return folder
