"""The folder layout holds: imports run downwards only, pure rules stay pure, modules stay small.

Direction, bottom to top: domain <- config <- storage <- usecases <- handlers <- bot; the
emulator stands alone; testkit serves tests and bench. Every import counts, including those
inside functions and under TYPE_CHECKING: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = ("domain", "config", "storage", "usecases", "handlers", "bot", "emulator")
FOLDERS = (*PRODUCTION, "locales", "testkit", "tests", "bench")
# The project folders each production folder may import, besides itself.
ALLOWED: dict[str, frozenset[str]] = {
    "domain": frozenset(),
    "emulator": frozenset(),
    "config": frozenset({"domain"}),
    "storage": frozenset({"domain"}),
    "usecases": frozenset({"domain", "config", "storage"}),
    "handlers": frozenset({"domain", "config", "storage", "usecases"}),
    "bot": frozenset({"domain", "config", "storage", "usecases", "handlers", "emulator"}),
}
# Libraries that tie code to I/O (Telegram, a database, HTTP): the pure rules never need them.
IMPURE = frozenset({"telegram", "sqlalchemy", "sqlmodel", "aiohttp", "httpx", "aiosqlite"})
# The only production module that wires handlers into the Application.
HANDLER_WIRING = "bot/app.py"
MAX_LINES = 600
# Production modules allowed over MAX_LINES, by path.
OVER_MAX_LINES: frozenset[str] = frozenset()


def _modules(folder: str) -> Iterator[Path]:
    base = ROOT / folder
    if not base.is_dir():
        return
    for path in sorted(base.rglob("*.py")):
        # Alembic's revisions are generated and import only alembic and sqlalchemy.
        if "migrations" not in path.relative_to(ROOT).parts:
            yield path


def _name_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def imports_of(path: Path) -> frozenset[str]:
    """Every module name `path` imports, relative imports resolved to absolute ones."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _name_of(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.add(module)
            # `from package import module` imports a module, not only a name.
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return frozenset(found)


def project_folders_imported(path: Path) -> set[str]:
    """The project's top-level folders that `path` imports."""
    return {name.split(".")[0] for name in imports_of(path)} & set(FOLDERS)


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_every_folder_has_modules_to_check() -> None:
    """A guard against the checks below passing on nothing (a renamed folder, say)."""
    for folder in ("domain", "config", "storage", "handlers", "bot", "emulator", "testkit"):
        assert list(_modules(folder)), folder


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_production_folders_import_only_downwards(folder: str) -> None:
    wrong = {
        _relative(path): sorted(project_folders_imported(path) - ALLOWED[folder] - {folder})
        for path in _modules(folder)
    }
    assert {path: folders for path, folders in wrong.items() if folders} == {}


def test_only_the_composition_root_imports_handlers() -> None:
    importers = {
        _relative(path)
        for folder in PRODUCTION
        if folder != "handlers"
        for path in _modules(folder)
        if "handlers" in project_folders_imported(path)
    }
    assert importers <= {HANDLER_WIRING}


@pytest.mark.parametrize("folder", ["bench", "testkit"])
def test_bench_and_testkit_never_import_tests(folder: str) -> None:
    importers = [
        _relative(path) for path in _modules(folder) if "tests" in project_folders_imported(path)
    ]
    assert importers == []


def test_domain_imports_no_io_library() -> None:
    wrong = {
        _relative(path): sorted({name.split(".")[0] for name in imports_of(path)} & IMPURE)
        for path in _modules("domain")
    }
    assert {path: names for path, names in wrong.items() if names} == {}


def test_no_import_cycle_between_folders() -> None:
    graph: dict[str, set[str]] = {folder: set() for folder in FOLDERS}
    for folder in FOLDERS:
        for path in _modules(folder):
            graph[folder] |= project_folders_imported(path) - {folder}

    def reaches(start: str, goal: str) -> bool:
        seen, pending = set(), [start]
        while pending:
            current = pending.pop()
            if current == goal:
                return True
            if current not in seen:
                seen.add(current)
                pending.extend(graph[current])
        return False

    cycles = sorted(
        (folder, other)
        for folder in FOLDERS
        for other in graph[folder]
        if folder < other and reaches(other, folder)
    )
    assert cycles == []


def _domain_names_of(module: str) -> frozenset[str]:
    """The names the project module `module` imports from domain/ (empty if not a module)."""
    path = ROOT.joinpath(*module.split(".")).with_suffix(".py")
    if not path.is_file():
        path = ROOT.joinpath(*module.split("."), "__init__.py")
    if not path.is_file():
        return frozenset()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return frozenset(
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "domain"
        for alias in node.names
    )


def test_domain_rules_are_imported_from_domain_not_through_another_folder() -> None:
    """One home per rule: `Status` comes from domain.lifecycle, never re-exported by
    storage.models (or any other module that happens to import it)."""
    through = {}
    for folder in FOLDERS:
        for path in _modules(folder):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
                    continue
                if node.module.split(".")[0] not in set(PRODUCTION) - {"domain"}:
                    continue
                names = {alias.name for alias in node.names} & _domain_names_of(node.module)
                if names:
                    through[f"{_relative(path)}:{node.lineno}"] = sorted(names)
    assert through == {}


def _readme_folders() -> tuple[set[str], set[str]]:
    """The top-level folders and the sub-folders (`storage/dtsen`) the README's Development
    section lists, one a line."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## Development", 1)[1].split("```", 2)[1]
    top: set[str] = set()
    sub: set[str] = set()
    parent = ""
    for line in block.splitlines():
        word = line.split(maxsplit=1)[0] if line.strip() else ""
        if not word.endswith("/"):
            continue
        if line.startswith(" "):
            sub.add(f"{parent}/{word.rstrip('/')}")
        else:
            parent = word.rstrip("/")
            top.add(parent)
    return top, sub


def test_readme_lists_every_top_level_folder_and_only_real_ones() -> None:
    """The Development section has one line per folder, so `ls` and the README agree."""
    listed, sub = _readme_folders()
    folders = {
        path.name
        for path in ROOT.iterdir()
        if path.is_dir()
        and any(path.iterdir())
        and (not path.name.startswith(".") or path.name == ".ci")
        # What installing and packaging leave behind is not the project's.
        and not path.name.endswith(".egg-info")
        and path.name not in {"__pycache__", "build", "dist", "htmlcov"}
    }
    assert listed == folders
    assert {folder for folder in sub if not (ROOT / folder).is_dir()} == set()


def test_production_modules_stay_small() -> None:
    """Over MAX_LINES a module holds several things; split it by what they are."""
    sizes = {
        _relative(path): len(path.read_text(encoding="utf-8").splitlines())
        for folder in PRODUCTION
        for path in _modules(folder)
    }
    too_long = {path: lines for path, lines in sizes.items() if lines > MAX_LINES}
    assert {path: lines for path, lines in too_long.items() if path not in OVER_MAX_LINES} == {}


def test_the_allow_list_holds_only_long_modules() -> None:
    """An entry whose module was split (or removed) leaves the list too."""
    still_long = {
        path
        for path in OVER_MAX_LINES
        if (ROOT / path).is_file()
        and len((ROOT / path).read_text(encoding="utf-8").splitlines()) > MAX_LINES
    }
    assert still_long == OVER_MAX_LINES
