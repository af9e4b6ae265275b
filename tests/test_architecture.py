"""The architecture's promises, checked on the source: dependencies point one way, no module
imports itself around a cycle (imports inside functions included), benchmarks are told apart
by their specs and not by their names, and data is found with importlib.resources."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"agents": "poise.agents", "graphs": "poise.graphs", "benchmarks": "poise.benchmarks",
           "eval": "poise.eval", "poise": "poise"}  # fmt: skip
# A registry imports its plugins to let them register; those edges are the one allowed cycle.
PLUGIN_LOADERS = {"_load_builtin", "_load_builtin_judges"}


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join((package, *parts))] = path
    return out


MODULES = _modules()


def _imports(module: str, path: Path) -> Iterator[tuple[str, bool]]:
    """(imported poise module, inside a plugin loader) for every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    loaders: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name in PLUGIN_LOADERS:
            loaders.update(id(child) for child in ast.walk(node))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}".rstrip(".")
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            target = _resolve(name)
            if target and target != module:
                yield target, id(node) in loaders


def _resolve(name: str) -> str | None:
    """The most specific known module that ``name`` refers to."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _graph(with_loaders: bool) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for target, in_loader in _imports(module, path):
            if with_loaders or not in_loader:
                # Importing a package runs its __init__; a submodule import also imports
                # its parent packages, which is how hidden cycles form.
                graph[module].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _without_package_inits(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Edges into a package's ``__init__`` from its own submodules are not cycles of code:
    Python imports the parent package first, whatever the submodule names."""
    return {
        module: {t for t in targets if not (module.startswith(t + ".") and t in MODULES)}
        for module, targets in graph.items()
    }


def test_no_import_cycles_counting_imports_inside_functions() -> None:
    cycles = _cycles(_without_package_inits(_graph(with_loaders=False)))
    assert not cycles, cycles


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        ("poise.benchmarks", ("poise.agents", "poise.graphs", "poise.eval")),
        ("poise.agents", ("poise.graphs", "poise.eval")),
        ("poise.graphs", ("poise.eval",)),
    ],
)
def test_dependencies_point_one_way(layer: str, forbidden: tuple[str, ...]) -> None:
    graph = _graph(with_loaders=True)
    wrong = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        if module == layer or module.startswith(layer + ".")
        for target in targets
        if any(target == f or target.startswith(f + ".") for f in forbidden)
    )
    assert not wrong, wrong


# `benchmark == "mossbench"`, `.startswith("mssbench")`, `in ("mssbench-chat", ...)`.
NAME_TEST = re.compile(
    r"""(?:==|!=|startswith\(|endswith\(|\bin\s*[(\[{])\s*["'](?:mossbench|mssbench)"""
    r"""|["'](?:mossbench|mssbench)[\w-]*["']\s*(?:==|!=|\bin\b)"""
)


def test_benchmarks_are_told_apart_by_their_specs_not_their_names() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for module, path in MODULES.items()
        if not module.startswith("poise.benchmarks")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if NAME_TEST.search(line)
    ]
    assert not offenders, offenders


# Where a module locates something by its own path rather than as package data, and why.
FILE_PATH_ALLOWED = {
    "poise.eval.run.provenance": "finds the git checkout the code runs from, not data",
}


def test_data_is_found_with_importlib_resources() -> None:
    offenders = [
        module
        for module, path in MODULES.items()
        if "__file__" in path.read_text(encoding="utf-8") and module not in FILE_PATH_ALLOWED
    ]
    assert not offenders, offenders


@pytest.mark.parametrize(
    ("module", "extra"), [("torch", "hf"), ("transformers", "hf"), ("datasets", "hub")]
)
def test_a_missing_extra_is_one_line_naming_it(
    module: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from poise.errors import PoiseError
    from poise.extras import require

    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(PoiseError) as caught:
        require(module, extra, "this path")
    message = str(caught.value)
    assert "\n" not in message
    assert f"[{extra}]" in message and f"pip install 'poise-safety[{extra}]'" in message


def test_core_imports_without_the_extras() -> None:
    """The CLI, a replay run's modules and the judges import none of the heavy extras."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules.update({m: None for m in "
        "('torch', 'transformers', 'datasets', 'huggingface_hub')}); "
        "import poise.eval.cli, poise.eval.run.runner, poise.eval.judges.builtin, "
        "poise.graphs.builtin, poise.benchmarks.mossbench, poise.benchmarks.mssbench, "
        "poise.agents.models.builtin"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
