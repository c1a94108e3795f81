"""Model assets under their Hub ids: what a published adapter names as its base, still loading offline here.

An adapter names its base model (adapter_config.json's `base_model_name_or_path`). For a model asset that is a copy
of a Hub repository (minilm-l6 is sentence-transformers/all-MiniLM-L6-v2), that name is the Hub id, so the adapter
loads anywhere; `register_asset` links the asset's files into the Hugging Face cache as a snapshot of that id, so
that stock clients on this machine (`peft.AutoPeftModel...`, `transformers.pipeline`) load it offline too
(HF_HUB_OFFLINE=1 resolves `refs/main` to the snapshot). A GGUF asset is a quantised conversion, not the repository's
weights, and has no such name.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from .assets import ASSETS, cache_dir


def asset_hub_id(folder: str | Path) -> str | None:
    """The Hub id of the repository a model asset's local `folder` is a copy of; None for any other folder."""
    folder = Path(folder).resolve()
    for asset in ASSETS.values():
        hub_id = asset.extra.get("hub_id")
        if asset.kind == "model" and hub_id and not asset.gguf_file and folder.is_relative_to(
                (cache_dir() / asset.name).resolve()):
            return hub_id
    return None


def register_asset(hub_id: str, folder: str | Path, hub_cache: str | Path | None = None) -> Path | None:
    """Make `hub_id` resolve offline to the files of `folder` (an asset's copy of that repository): a snapshot in
    the Hugging Face cache (`hub_cache`, default huggingface_hub's HF_HUB_CACHE) whose files link to the asset's.

    Returns the snapshot folder, or None when the cache already holds the model (a real download is never touched).
    The snapshot's name is derived from the folder, not a Hub commit: online, the Hub's own revision is fetched
    beside it. Raises OSError when the cache cannot be written.
    """
    from huggingface_hub import constants, try_to_load_from_cache

    hub_cache = Path(hub_cache or constants.HF_HUB_CACHE)
    if isinstance(try_to_load_from_cache(hub_id, "config.json", cache_dir=hub_cache), str):
        return None
    folder = Path(folder).resolve()
    repo = hub_cache / f"models--{hub_id.replace('/', '--')}"
    revision = _revision_of(folder)
    snapshot = repo / "snapshots" / revision
    if not snapshot.is_dir():
        staging = repo / "snapshots" / f".{revision}.{os.getpid()}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        for path in folder.rglob("*"):
            if path.is_file():
                target = staging / path.relative_to(folder)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(path)
        try:
            staging.rename(snapshot)
        except OSError:  # another process registered it meanwhile
            shutil.rmtree(staging, ignore_errors=True)
    # main points here: whatever it pointed to held no config.json (checked above)
    refs = repo / "refs" / "main"
    refs.parent.mkdir(parents=True, exist_ok=True)
    partial = refs.with_name(f".main.{os.getpid()}")
    partial.write_text(revision)
    partial.replace(refs)
    return snapshot


def _revision_of(folder: Path) -> str:
    """A 40-hex-digit snapshot name for a local copy (huggingface_hub expects commit-hash-shaped revisions)."""
    return hashlib.sha1(f"hf_transfer asset {folder}".encode()).hexdigest()
