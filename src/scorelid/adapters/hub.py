"""Model names -> local diffusers directories: a local path, or a Hugging Face hub id from the cache.

``resolve_model("org/name", revision=None)`` returns the snapshot folder of the id in the Hugging
Face cache (``HF_HOME`` / ``HF_HUB_CACHE`` as huggingface_hub reads them).  With ``HF_HUB_OFFLINE``
set it never touches the network (``local_files_only``); otherwise ``snapshot_download`` fetches
what is missing.  Only ``model_index.json`` and the pipeline's components are fetched (no
top-level single-file checkpoints).  An existing local path always wins over an id.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from scorelid.errors import ModelLoadError

__all__ = ["is_hub_id", "offline", "resolve_model"]

_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_SKIP = {"safety_checker", "feature_extractor", "image_encoder"}


def is_hub_id(name: str) -> bool:
    """``org/name`` with no other slashes (and not an existing path)."""
    return bool(_ID.match(name)) and not Path(name).exists()


def offline() -> bool:
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "").strip().upper()
    return bool(constants.HF_HUB_OFFLINE) or env in ("1", "ON", "YES", "TRUE")


def resolve_model(name: str | os.PathLike, revision: str | None = None) -> Path:
    """The local diffusers directory for ``name`` (a directory, or a hub id resolved through the cache).

    Raises ``FileNotFoundError`` for a path that does not exist and ``ModelLoadError`` for a hub id
    that is not cached while offline (or cannot be fetched).
    """
    text = os.fspath(name)
    if not is_hub_id(text):
        if revision is not None:
            raise ValueError(f"revision={revision!r} applies to hub ids, not to the local path {text}")
        return Path(text)
    import json

    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import HFValidationError

    local = offline()
    where = "in the Hugging Face cache (HF_HUB_OFFLINE is set)" if local else "on the Hugging Face hub"
    rev = f" at revision {revision!r}" if revision else ""
    try:
        index = hf_hub_download(text, "model_index.json", revision=revision, local_files_only=local)
        listed = json.loads(Path(index).read_text()).items()
        parts = [k for k, v in listed if not k.startswith("_") and k not in _SKIP
                 and isinstance(v, list) and v and v[0] is not None]
        folder = snapshot_download(
            text, revision=revision, local_files_only=local,
            allow_patterns=["model_index.json", *[f"{p}/*" for p in parts]],
        )
    except (HFValidationError, ValueError, OSError) as exc:
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"model {text!r}{rev} is not a local directory and was not found {where}: "
                             f"{why}") from None
    return Path(folder)
