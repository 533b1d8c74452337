"""The shared-memory sender's bucket files, read back the way an engine worker maps them."""

import os
import subprocess
import sys

import pytest
import torch

from mtg_ray.weight_sync import BucketMeta, unpack
from mtg_ray.weight_sync.sender import PREFIX, ShmSender
from mtg_ray.weight_sync.shm import map_file


def read_back(update: dict) -> list[tuple[str, torch.Tensor]]:
    buf = map_file(update["path"], update["capacity"])  # a second mapping, as in an engine
    return unpack(buf, BucketMeta(update["names"], update["dtype_names"], update["shapes"]))


def test_buckets_round_trip_and_files_are_reused_grown_and_removed(tmp_path) -> None:
    sender = ShmSender(str(tmp_path))
    small = [("a", torch.randn(3, 5)), ("b", torch.arange(7, dtype=torch.int64))]
    update = sender.write(0, small)
    for (name, got), (want_name, want) in zip(read_back(update), small, strict=True):
        assert name == want_name and torch.equal(got, want)

    again = [("a", torch.randn(3, 5)), ("b", torch.arange(7, dtype=torch.int64) * 2)]
    assert sender.write(0, again)["path"] == update["path"]  # rewritten in place
    assert torch.equal(read_back(update)[1][1], again[1][1])

    grown = [("c", torch.randn(64, 64, dtype=torch.float64))]
    bigger = sender.write(0, grown)
    assert bigger["capacity"] > update["capacity"]
    assert torch.equal(read_back(bigger)[0][1], grown[0][1])
    assert os.path.getsize(bigger["path"]) == bigger["capacity"]

    other = sender.write(1, small)
    assert other["path"] != bigger["path"] and torch.equal(read_back(bigger)[0][1], grown[0][1])
    sender.close()
    assert not os.path.exists(sender.folder)


def test_a_short_file_is_refused_not_extended(tmp_path) -> None:
    path = tmp_path / "short"
    path.write_bytes(b"\x07" * 10)
    with pytest.raises(ValueError, match="fewer than the 20"):
        map_file(str(path), 20)
    assert path.read_bytes() == b"\x07" * 10


def test_a_missing_folder_is_named(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="rollout.shm_dir"):
        ShmSender(str(tmp_path / "nowhere"))


def test_folders_of_dead_senders_are_removed_and_live_ones_kept(tmp_path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    orphan = tmp_path / f"{PREFIX}{gone.stdout.strip()}-abc"
    orphan.mkdir()
    (orphan / "bucket-00000").write_bytes(b"old weights")
    live = ShmSender(str(tmp_path))
    unrelated = tmp_path / "something-else"
    unrelated.mkdir()
    ShmSender(str(tmp_path)).close()
    assert not orphan.exists()
    assert os.path.isdir(live.folder) and unrelated.is_dir()
    live.close()
