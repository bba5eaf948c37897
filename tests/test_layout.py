"""The package's layering, read from its source: each module stands above what it imports (CONTRIBUTING.md).

Imports are read with `ast` (function-level imports included), so an import that only runs late still counts.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rdrec_hf"
# What each part of the package may import from the package (the rest of itself always). The root
# `rdrec_hf/__init__.py` is the public facade: it may import every part and no part may import it.
ALLOWED = {
    "_version": set(),
    "paths": set(),
    "integrity": set(),
    "devices": set(),
    "models": set(),  # Hub custom code: torch and transformers only (test below)
    "data": {"models", "paths", "integrity"},
    "teacher": {"data", "models", "paths", "integrity", "_version"},
    "evaluation": {"data", "models", "paths", "integrity", "devices"},
    "checkpoints": {"data", "models", "integrity", "devices"},
    "serving": {"data", "models", "paths", "integrity", "devices", "checkpoints", "evaluation"},
    "training": {"data", "models", "paths", "integrity", "devices", "checkpoints", "evaluation"},
    "scripts": {"data", "models", "paths", "integrity", "devices", "checkpoints", "evaluation", "teacher",
                "serving", "training"},
    "cli": {"data", "models", "paths", "integrity", "devices", "checkpoints", "evaluation", "teacher", "serving",
            "training", "scripts"},
}
MODEL_THIRD_PARTY = {"torch", "transformers", "safetensors", "tqdm"}  # what Hub code may need besides stdlib


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[tuple[str, int]]:
    """``(absolute module name, line)`` of every import in ``path``, relative ones resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            # `from . import x` names a module when x is one
            found += [(f"{target}.{alias.name}" if (PACKAGE.parent / f"{target}.{alias.name}".replace(".", "/")).exists()
                       or (PACKAGE.parent / (f"{target}.{alias.name}".replace(".", "/") + ".py")).exists()
                       else target, node.lineno) for alias in node.names]
    return found


def part_of(name: str) -> str | None:
    """The top-level part of the package a module belongs to (``rdrec_hf.data.p5`` -> ``data``); None for the root."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else None


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_no_module_imports_the_package_root():
    offenders = [f"{path.relative_to(PACKAGE.parent)}:{line}" for path in SOURCES if path != PACKAGE / "__init__.py"
                 for target, line in imports_of(path) if target == "rdrec_hf"]
    assert offenders == []


def test_every_import_runs_down_the_layers_and_the_parts_form_no_circle():
    edges = defaultdict(set)
    offenders = []
    for path in SOURCES:
        source = part_of(module_name(path))
        if source is None:
            continue
        assert source in ALLOWED, f"{source}: a new part of the package; add it to ALLOWED and CONTRIBUTING.md"
        for target, line in imports_of(path):
            if not target.startswith("rdrec_hf."):
                continue
            target_part = part_of(target)
            if target_part != source:
                edges[source].add(target_part)
                if target_part not in ALLOWED[source]:
                    offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target} ({source} -> {target_part})")
    assert offenders == []
    visiting, done = set(), set()

    def visit(part, trail):
        if part in visiting:
            pytest.fail("circle: " + " -> ".join([*trail, part]))
        if part not in done:
            visiting.add(part)
            for target in sorted(edges[part]):
                visit(target, [*trail, part])
            visiting.discard(part)
            done.add(part)

    for part in sorted(edges):
        visit(part, [])


def test_the_model_folder_imports_only_torch_transformers_and_the_standard_library():
    outside = []
    for path in sorted((PACKAGE / "models").rglob("*.py")):
        for target, line in imports_of(path):
            top = target.split(".")[0]
            if top not in sys.stdlib_module_names and top not in MODEL_THIRD_PARTY and not target.startswith("rdrec_hf.models"):
                outside.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}")
    assert outside == []
