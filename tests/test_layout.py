"""Project conventions as checks: they only count if something enforces them."""

import ast
from pathlib import Path

from mtg_ray.paths import REPO_ROOT

PACKAGE = REPO_ROOT / "mtg_ray"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


DRIVER_MODULES = ("jobs.py",)  # the only modules of mtg_ray that drive Ray actors


def test_only_drivers_import_ray_or_actors() -> None:
    offenders = {
        str(path.relative_to(REPO_ROOT))
        for path in PACKAGE.rglob("*.py")
        if path.name not in DRIVER_MODULES
        and any(m.split(".")[0] in ("ray", "actors") for m in imported_modules(path))
    }
    assert not offenders, f"Ray belongs in actors/ and drivers, not in: {sorted(offenders)}"


def test_every_subpackage_has_a_mirrored_test_folder() -> None:
    subpackages = [p for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()]
    assert subpackages, "no subpackages found"
    missing = [
        p.name
        for p in subpackages
        if not list((REPO_ROOT / "tests" / "mtg_ray" / p.name).glob("test_*.py"))
    ]
    assert not missing, f"tests/mtg_ray/<name>/test_*.py missing for: {missing}"


def test_python_files_stay_small() -> None:
    roots = [PACKAGE, REPO_ROOT / "actors", REPO_ROOT / "scripts"]
    big = {
        str(p.relative_to(REPO_ROOT)): n
        for root in roots
        for p in root.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 600
    }
    assert not big, f"split these by concept (over 600 lines): {big}"
