"""Project conventions as checks: they only count if something enforces them."""

import ast
from collections import defaultdict
from pathlib import Path

from mtg_ray.paths import REPO_ROOT

PACKAGE = REPO_ROOT / "mtg_ray"
# The only package of mtg_ray that may import Ray or the actors: the drivers, in two
# sub-packages, the groups below the jobs that drive them.
DRIVERS = PACKAGE / "pipelines"
GROUPS, JOBS = DRIVERS / "groups", DRIVERS / "jobs"
CODE_ROOTS = [PACKAGE, REPO_ROOT / "actors", REPO_ROOT / "scripts"]


def imported_modules(path: Path) -> set[str]:
    """Absolute module names `path` imports (relative imports resolved within mtg_ray)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = path.relative_to(REPO_ROOT).with_suffix("").parts
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level]
                names.add(".".join(base + ((node.module,) if node.module else ())))
            elif node.module:
                names.add(node.module)
    return names


def unit(module: str) -> str | None:
    """The package-level unit of an mtg_ray module: `mtg_ray.learner.rank` -> `learner`,
    `mtg_ray.config` -> `config`; None outside mtg_ray."""
    parts = module.split(".")
    return parts[1] if parts[0] == "mtg_ray" and len(parts) > 1 else None


def test_only_the_drivers_import_ray_or_actors() -> None:
    offenders = {
        str(path.relative_to(REPO_ROOT))
        for path in PACKAGE.rglob("*.py")
        if DRIVERS not in path.parents
        and any(m.split(".")[0] in ("ray", "actors") for m in imported_modules(path))
    }
    assert not offenders, f"Ray belongs in actors/ and {DRIVERS.name}/, not in: {sorted(offenders)}"


def test_actors_are_thin_and_import_no_driver() -> None:
    for path in (REPO_ROOT / "actors").glob("*.py"):
        assert len(path.read_text().splitlines()) <= 60, f"{path.name}: keep actors thin"
        drivers = {m for m in imported_modules(path) if m.startswith("mtg_ray.pipelines")}
        assert not drivers, f"{path.name} imports the drivers: {drivers}"


def test_the_groups_import_no_job() -> None:
    """Within the drivers the jobs import the groups, never the reverse."""
    assert (GROUPS / "__init__.py").is_file() and (JOBS / "__init__.py").is_file()
    offenders = {
        f"{path.relative_to(REPO_ROOT)}: {m}"
        for path in GROUPS.rglob("*.py")
        for m in imported_modules(path)
        if m.startswith("mtg_ray.pipelines.jobs")
    }
    assert not offenders, f"the groups import a job: {sorted(offenders)}"


def import_graph() -> dict[str, set[str]]:
    """unit -> the other mtg_ray units it imports."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        src = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        if src == "__init__":
            continue
        deps = {unit(m) for m in imported_modules(path)} - {None, src}
        graph.setdefault(src, set()).update(d for d in deps if d is not None)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of units as a path (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done

    def visit(node: str, stack: list[str]) -> list[str] | None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return stack[stack.index(dep) :] + [dep]
            if dep not in state and (found := visit(dep, stack + [dep])):
                return found
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node, [node])):
            return found
    return None


def test_no_import_cycles_between_packages() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    graph = import_graph()
    assert {"pipelines", "config", "learner", "rollout"} <= set(graph)
    assert find_cycle(graph) is None, f"import cycle between packages: {find_cycle(graph)}"


def holds_only_subpackages(package: Path) -> bool:
    """True for a package whose modules all live in its sub-packages (mtg_ray/pipelines/)."""
    return [m.name for m in package.glob("*.py")] == ["__init__.py"] and any(
        (child / "__init__.py").is_file() for child in package.iterdir()
    )


def test_every_subpackage_has_a_mirrored_test_folder() -> None:
    """At any depth: mtg_ray/pipelines/jobs/ -> tests/mtg_ray/pipelines/jobs/test_*.py. A
    package of sub-packages alone is covered by theirs."""
    packages = [p.parent for p in PACKAGE.rglob("__init__.py") if p.parent != PACKAGE]
    assert packages, "no subpackages found"
    missing = [
        str(rel)
        for rel in (p.relative_to(PACKAGE) for p in packages if not holds_only_subpackages(p))
        if not list((REPO_ROOT / "tests" / "mtg_ray" / rel).glob("test_*.py"))
    ]
    assert not missing, f"tests/mtg_ray/<name>/test_*.py missing for: {missing}"


def test_no_two_test_files_share_a_basename() -> None:
    """A test file's name alone says which one it is: an end-to-end test is named for its job
    (tests/jobs/test_study_job.py), apart from the unit tests of the code it drives
    (tests/mtg_ray/evaluate/test_study.py)."""
    paths: defaultdict[str, list[str]] = defaultdict(list)
    for path in (REPO_ROOT / "tests").rglob("test_*.py"):
        paths[path.name].append(str(path.relative_to(REPO_ROOT)))
    shared = {name: sorted(found) for name, found in paths.items() if len(found) > 1}
    assert not shared, f"rename these to say what they test: {shared}"


def test_python_files_stay_small() -> None:
    big = {
        str(p.relative_to(REPO_ROOT)): n
        for root in CODE_ROOTS
        for p in root.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 600
    }
    assert not big, f"split these by concept (over 600 lines): {big}"


def test_functions_stay_short() -> None:
    long = {}
    for root in CODE_ROOTS:
        for path in root.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    n = node.end_lineno - node.lineno + 1
                    if n > 80:
                        long[f"{path.relative_to(REPO_ROOT)}:{node.name}"] = n
    assert not long, f"split these functions (over 80 lines): {long}"


def test_nothing_reads_a_folder_beside_the_checkout() -> None:
    """A user's clone has nothing beside it: the package ships what it reads."""
    roots = [PACKAGE, REPO_ROOT / "configs", REPO_ROOT / "tests", REPO_ROOT / "scripts"]
    texts = [p for root in roots for p in root.rglob("*") if p.suffix in (".py", ".yaml", ".md")]
    texts += [REPO_ROOT / "README.md", REPO_ROOT / "Makefile", REPO_ROOT / ".ci" / "run"]
    beside = ("../" + "shared", "REPO_ROOT" + ".parent", "MTG_RAY_" + "SHARED")
    offenders = sorted(
        str(p.relative_to(REPO_ROOT)) for p in texts if any(b in p.read_text() for b in beside)
    )
    assert not offenders, f"these refer to a folder outside the checkout: {offenders}"


def test_readme_stays_short() -> None:
    """README is read in five minutes; each subject's detail has its page in docs/."""
    assert (REPO_ROOT / "README.md").stat().st_size <= 12 * 1024
