"""Temporary folders a run owns: named after the process that made them, removed when it is
done, and removed by the next run on the machine if that process died first (kill -9, a
crashed node), so nothing a run writes to the temp folder or /dev/shm outlives it for long."""

import os
import shutil
import tempfile
import weakref


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_orphans(root: str, prefix: str) -> list[str]:
    """Remove folders `<root>/<prefix><pid>-*` whose process is gone; returns their names."""
    removed = []
    for name in os.listdir(root):
        pid = name.removeprefix(prefix).split("-")[0]
        if name.startswith(prefix) and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
            removed.append(name)
    return removed


class OwnedTempDir:
    """A fresh folder `<root>/<prefix><this pid>-XXXX` (root: the temp folder), made after
    removing dead processes' folders of the same prefix; removed by `close`, or when collected,
    or at interpreter exit."""

    def __init__(self, prefix: str, root: str | None = None) -> None:
        root = root or tempfile.gettempdir()
        remove_orphans(root, prefix)
        self.path = tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=root)
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.path, ignore_errors=True)

    def close(self) -> None:
        self._cleanup()
