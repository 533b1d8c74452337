import os
import subprocess
import sys
from pathlib import Path

from mtg_ray.tempdirs import OwnedTempDir, remove_orphans


def test_a_folder_goes_with_its_owner_and_a_dead_owners_with_the_next_run(tmp_path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    orphan = tmp_path / f"mtg-ray-x-{dead}-abc"
    orphan.mkdir()
    (orphan / "weights").write_bytes(b"1" * 100)
    alive = tmp_path / f"mtg-ray-x-{os.getpid()}-def"
    alive.mkdir()
    other = tmp_path / "someone-elses"
    other.mkdir()
    owned = OwnedTempDir("mtg-ray-x-", str(tmp_path))
    assert not orphan.exists() and alive.exists() and other.exists()
    assert Path(owned.path).name.startswith(f"mtg-ray-x-{os.getpid()}-")
    owned.close()
    assert not Path(owned.path).exists()
    assert remove_orphans(str(tmp_path), "mtg-ray-x-") == []  # the live process keeps its own
