"""The house rules, read from the source: who may import whom."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "scimult_hf"
SUBCOMMAND_CLIS = {"scimult_hf.convert.cli", "scimult_hf.corpus.cli", "scimult_hf.evaluation.cli", "scimult_hf.training.cli", "scimult_hf.hub.cli",
                   "scimult_hf.serving.cli"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Absolute names of every module a file imports (relative imports resolved)."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module
            out.add(name)
            out.update(f"{name}.{alias.name}" for alias in node.names)
    return out


def sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_retrieval_never_imports_evaluation():
    for path in (PACKAGE / "retrieval").rglob("*.py"):
        bad = {m for m in imports(path) if m.startswith("scimult_hf.evaluation")}
        assert not bad, f"{path.name} imports {bad}"


def test_only_the_root_cli_imports_subcommand_clis():
    for path in sources():
        if path == PACKAGE / "cli.py" or module_name(path) in SUBCOMMAND_CLIS:
            continue
        bad = imports(path) & SUBCOMMAND_CLIS
        assert not bad, f"{module_name(path)} imports {bad}"


def test_remote_code_files_import_only_torch_and_transformers():
    for name in ("configuration_scimult.py", "modeling_scimult.py"):
        roots = {m.split(".")[0] for m in imports(PACKAGE / name)}
        assert roots <= {"torch", "transformers", "scimult_hf", "os", "collections", "dataclasses"}, roots
        local = {m for m in imports(PACKAGE / name) if m.startswith("scimult_hf")}
        assert local <= {"scimult_hf.configuration_scimult", "scimult_hf.configuration_scimult.SciMultConfig",
                         "scimult_hf.configuration_scimult.SciMultInputError"}, local


def lazy_attachments(path: Path) -> dict[str, str]:
    """``{public name: submodule}`` of a package ``__init__`` that uses ``lazy_loader.attach(submod_attrs=...)``:
    importing the name from the package imports that submodule."""
    out = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "attach":
            for keyword in node.keywords:
                if keyword.arg == "submod_attrs" and isinstance(keyword.value, ast.Dict):
                    for key, names in zip(keyword.value.keys, keyword.value.values):
                        for name in getattr(names, "elts", []):
                            out[name.value] = key.value
    return out


def module_graph() -> dict[str, set[str]]:
    """Every module of the package -> the package modules it imports, at the top or inside functions; a name taken
    from a lazily attaching package counts as an import of the submodule that holds it."""
    modules = {module_name(p): p for p in sources()}
    lazy = {name: lazy_attachments(path) for name, path in modules.items() if path.name == "__init__.py"}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in imports(path):
            if imported in modules:
                targets.add(imported)
            package, _, attr = imported.rpartition(".")
            if attr in lazy.get(package, {}):
                targets.add(f"{package}.{lazy[package][attr]}")
        graph[name] = {t for t in targets if t != name and not name.startswith(t + ".")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` (its modules in order), or None."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_cycle_finder_finds_a_planted_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_imports_itself_round_a_circle():
    """Every module, top-level ones included, imports inside functions included: no circle (A -> B -> ... -> A).
    A package's ``__init__`` importing its own submodules is not a circle."""
    graph = module_graph()
    assert "scimult_hf.convert.checkpoint" in graph["scimult_hf.convert.partial"]  # the walk sees real edges
    assert "scimult_hf.models.upcycle" in graph["scimult_hf.resolve"]  # function-level imports included
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle)
