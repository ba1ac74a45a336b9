"""The house rules the import graph cannot show: no module reaches into another module's private names.

import-linter (`make lint`) checks the layers; this test checks names. A `_name` is private to the
module that defines it: another module neither imports it (`from x import _y`) nor reaches it
through a module it imported (`x._y`). Dunder names (`__version__`) are public.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OURS = ("config", "reviewapp", "labeling", "activelearning", "tools", "tests", "bench")


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _is_ours(module: str | None, level: int) -> bool:
    return level > 0 or (module or "").split(".")[0] in OURS


def private_reaches(path: Path) -> list[str]:
    """Every place in one file that uses another module's private name."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found, modules = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and _is_ours(node.module, node.level):
            for alias in node.names:
                if _is_private(alias.name):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: imports {alias.name}")
                else:
                    modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if _is_ours(alias.name, 0):
                    modules.add(alias.asname or alias.name.split(".")[0])
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and _is_private(node.attr)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and not node.value.id[0].isupper()  # a class: `Model._meta` is Django's public API
        ):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: uses {node.value.id}.{node.attr}")
    return found


def python_files() -> list[Path]:
    return [
        path
        for top in OURS
        if (ROOT / top).is_dir()
        for path in sorted((ROOT / top).rglob("*.py"))
        if "migrations" not in path.parts
    ]


def test_no_module_uses_another_modules_private_names() -> None:
    offences = [offence for path in python_files() for offence in private_reaches(path)]
    assert not offences, "private names used across modules:\n" + "\n".join(offences)


def test_the_checker_sees_both_ways_of_reaching_in(tmp_path: Path) -> None:
    sample = ROOT / "tests" / "_architecture_sample.py"
    sample.write_text("from labeling.services import _hidden\nfrom labeling import services\nservices._other()\n")
    try:
        assert [line.split(": ", 1)[1] for line in private_reaches(sample)] == [
            "imports _hidden",
            "uses services._other",
        ]
    finally:
        sample.unlink()


def test_the_layer_contracts_hold() -> None:
    """`make lint` runs the same check; here it also gates CI (`make test`)."""
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout
