"""Shard writer: plain deterministic ustar members whose recorded data offsets are exact."""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile

import pytest

from workbench.extract.shards import SampleSpool, shuffle_rank
from workbench.ustar import (
    MEMBER_MODE,
    MEMBER_MTIME,
    RECORD,
    MemberLocation,
    ShardWriter,
    member_headers,
    read_member,
)

SAMPLES = {
    "PMC1_fig1_0": {"jpg": b"\xff\xd8" + b"a" * 1000, "txt": "Caption with ünïcode".encode(), "json": b'{"a": 1}'},
    "PMC2_F2_1": {"jpg": b"\xff\xd8" + b"b" * 511, "txt": b"", "json": b"{}"},
    "PMC3_g-3_0": {"jpg": b"\xff\xd8" + b"c" * 512, "txt": b"x" * 513, "json": b"[]"},
}


def _write(path, samples=SAMPLES):
    with ShardWriter(path) as writer:
        return {key: writer.add_sample(key, members) for key, members in samples.items()}


def test_offsets_point_at_member_data_and_tarfile_agrees(tmp_path):
    shard = tmp_path / "000000.tar"
    locations = _write(shard)
    with tarfile.open(shard) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == [f"{k}.{e}" for k, exts in SAMPLES.items() for e in exts]
        for member in members:
            key, ext = member.name.split(".", 1)
            location = locations[key][ext]
            assert (member.offset_data, member.size) == (location.offset, location.size)
            assert tar.extractfile(member).read() == SAMPLES[key][ext] == read_member(shard, location)
            assert (member.mtime, member.mode, member.uid, member.gid) == (MEMBER_MTIME, MEMBER_MODE, 0, 0)
            assert member.isreg() and member.uname == member.gname == ""
    assert shard.stat().st_size % RECORD == 0


def test_headers_are_byte_identical_to_python_ustar(tmp_path):
    info = tarfile.TarInfo("PMC1_fig1_0.jpg")
    info.size, info.mtime, info.mode = 1234, MEMBER_MTIME, 0o644
    info.uid, info.gid, info.uname, info.gname = 0, 0, "", ""
    assert member_headers("PMC1_fig1_0.jpg", 1234) == info.tobuf(tarfile.USTAR_FORMAT)


def test_output_is_deterministic(tmp_path):
    _write(tmp_path / "a.tar")
    _write(tmp_path / "b.tar")
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


def test_long_names_use_a_pax_header_and_keep_offsets(tmp_path):
    key = "PMC9_" + "x" * 150 + "_0"
    shard = tmp_path / "long.tar"
    locations = _write(shard, {key: {"jpg": b"data", "txt": b"t"}})
    with tarfile.open(shard) as tar:
        names = tar.getnames()
        assert names == [f"{key}.jpg", f"{key}.txt"]
        assert tar.getmember(f"{key}.jpg").offset_data == locations[key]["jpg"].offset
    listing = subprocess.run(["tar", "tf", str(shard)], capture_output=True, text=True, check=True).stdout.split()
    assert listing == names


def test_invalid_keys_are_refused(tmp_path):
    with ShardWriter(tmp_path / "bad.tar") as writer:
        for key in ("", "PMC1.fig", "a/b"):
            with pytest.raises(ValueError, match="invalid sample key"):
                writer.add_sample(key, {"jpg": b"x"})


def test_spool_writes_samples_in_stable_hash_order(tmp_path):
    spool = SampleSpool(tmp_path / "spool.bin")
    for key, members in SAMPLES.items():
        spool.add(key, members)
    with pytest.raises(ValueError, match="duplicate"):
        spool.add("PMC1_fig1_0", {"jpg": b""})
    with ShardWriter(tmp_path / "s.tar") as writer:
        written = dict(spool.write_shuffled(writer))
    spool.close()
    assert not (tmp_path / "spool.bin").exists()
    assert list(written) == sorted(SAMPLES, key=shuffle_rank)
    for key, exts in SAMPLES.items():
        for ext, data in exts.items():
            assert read_member(tmp_path / "s.tar", written[key][ext]) == data


def test_read_member_detects_truncation(tmp_path):
    shard = tmp_path / "t.tar"
    shard.write_bytes(b"short")
    with pytest.raises(ValueError, match="truncated"):
        read_member(shard, MemberLocation(2, 100))


def test_webdataset_groups_members_by_key(tmp_path):
    webdataset = pytest.importorskip("webdataset")
    shard = tmp_path / "000000.tar"
    _write(shard)
    samples = list(webdataset.WebDataset(str(shard), shardshuffle=False))
    assert [s["__key__"] for s in samples] == list(SAMPLES)
    for sample in samples:
        assert hashlib.sha256(sample["jpg"]).digest() == hashlib.sha256(SAMPLES[sample["__key__"]]["jpg"]).digest()
    assert io.BytesIO(samples[0]["txt"]).read().decode() == "Caption with ünïcode"
