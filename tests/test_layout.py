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


def test_imports_are_resolved():
    found = imports(PACKAGE / "cli.py")
    assert SUBCOMMAND_CLIS <= found


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


def test_subpackages_form_no_cycle():
    """Package-level imports (lazy ones inside functions included) go one way: no two rooms import each other."""
    rooms = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    edges: dict[str, set[str]] = {room: set() for room in rooms}
    for path in sources():
        parts = module_name(path).split(".")
        if len(parts) < 2 or parts[1] not in rooms:
            continue
        for name in imports(path):
            target = name.split(".")
            if len(target) > 1 and target[0] == "scimult_hf" and target[1] in rooms and target[1] != parts[1]:
                edges[parts[1]].add(target[1])
    cycles = sorted(f"{a} <-> {b}" for a in edges for b in edges[a] if a < b and a in edges.get(b, ()))
    assert not cycles, f"sub-packages that import each other: {cycles}"
