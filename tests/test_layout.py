"""The house rules a newcomer relies on, checked so that they stay true: no import circle
in `flashsale/`, no module over 400 lines, and the README's code layout names every module
there is and nothing that is not."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "flashsale"
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


IMPORT = re.compile(
    r"^(\s*)(?:from\s+(flashsale[\w.]*)\s+import\s+(\([^)]*\)|[^\n]*)|import\s+(flashsale[\w.]*))"
)


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """What a module imports of flashsale when it runs (function-local imports count: they
    are how a circle hides; imports only for type checkers do not)."""
    found: set[str] = set()
    checking: int | None = None  # the indent of an `if TYPE_CHECKING:` block being read
    for line in path.read_text(encoding="utf-8").splitlines():
        indent = len(line) - len(line.lstrip())
        if checking is not None and line.strip() and indent <= checking:
            checking = None
        if line.strip() == "if TYPE_CHECKING:":
            checking = indent
        if checking is not None or not (m := IMPORT.match(line)):
            continue
        if m[4]:
            found.add(m[4])
            continue
        names = re.findall(r"\w+", m[3].split("#")[0])
        submodules = {f"{m[2]}.{n}" for n in names} & modules.keys()
        found |= submodules
        if len(submodules) < len(names):  # it takes names from the module itself
            found.add(m[2])
    return found & modules.keys()


def test_no_import_circle() -> None:
    modules = _modules()
    graph = {name: _imports(path, modules) for name, path in modules.items()}
    circles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the path being walked, 2: done
    path: list[str] = []

    def walk(name: str) -> None:
        state[name] = 1
        path.append(name)
        for other in sorted(graph[name]):
            if state.get(other) == 1:
                circles.append([*path[path.index(other) :], other])
            elif other not in state:
                walk(other)
        path.pop()
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            walk(name)
    assert graph["flashsale.engine"], "the import reader found nothing"
    assert not circles, [" -> ".join(c) for c in circles]


def test_no_module_is_over_400_lines() -> None:
    sizes = {
        p.relative_to(ROOT): len(p.read_text(encoding="utf-8").splitlines())
        for p in PACKAGE.rglob("*.py")
    }
    assert len(sizes) > 50
    assert not {p: n for p, n in sizes.items() if n > MAX_LINES}


def _layout() -> set[str]:
    """The paths the README's code layout names, rebuilt from its indentation."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Code layout", 1)[1].split("```text\n", 1)[1].split("\n```", 1)[0]
    named: set[str] = set()
    parents: list[str] = []
    for line in block.splitlines():
        depth = (len(line) - len(line.lstrip())) // 2
        if depth > len(parents):
            continue  # a description's second line
        words = re.split(r"\s{2,}", line.strip())[0].split()
        del parents[depth:]
        for word in words:
            named.add("/".join([*parents, word.rstrip("/")]))
        if words[-1].endswith("/"):
            parents.append(words[-1].rstrip("/"))
    return named


def test_the_readme_layout_matches_the_tree() -> None:
    named = _layout()
    assert "flashsale/gateway/fastpath/hotcalls.py" in named
    missing_in_tree = sorted(n for n in named if "*" not in n and not (ROOT / n).exists())
    assert not missing_in_tree, missing_in_tree
    # Every module is named, or lies in a folder the layout names without listing its files.
    listed = {n.rsplit("/", 1)[0] for n in named if n.endswith(".py")}
    unnamed = [
        str(rel)
        for rel in (p.relative_to(ROOT) for p in PACKAGE.rglob("*.py"))
        if rel.name not in ("__init__.py", "__main__.py")
        and str(rel) not in named
        and not (str(rel.parent) in named and str(rel.parent) not in listed)
    ]
    assert not unnamed, unnamed
