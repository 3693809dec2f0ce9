"""DESIGN.md: `import edgekit` and `edgekit --help` import no heavy framework or runtime.

Checked in fresh subprocesses (this test process may already hold anything), plus a static check
that no module outside edgekit/backends/ and edgekit/runtimes/ imports a framework at module level.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "edgekit"
HEAVY = ("tensorflow", "tf_keras", "torch", "keras", "tensorflow_model_optimization", "ai_edge_litert", "onnxruntime")

REPORT_HEAVY = """
import json, sys
heavy = HEAVY_NAMES
loaded = sorted({m.split('.')[0] for m in sys.modules} & set(heavy))
print('HEAVY=' + json.dumps(loaded))
""".replace("HEAVY_NAMES", repr(HEAVY))


def run_python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args, "-c", code] if code else [sys.executable, *args],
                          capture_output=True, text=True, cwd=REPO, timeout=60)


def heavy_modules(stdout: str) -> list[str]:
    line = next(line for line in stdout.splitlines() if line.startswith("HEAVY="))
    return json.loads(line.removeprefix("HEAVY="))


def cli_probe(argv: list[str]) -> str:
    """Code that runs `edgekit ARGV` in-process, reports the heavy modules loaded, and exits with its code."""
    return ("import sys\n"
            "from edgekit.cli import main\n"
            "try:\n"
            f"    main({argv!r})\n"
            "except SystemExit as exc:\n"
            "    code = exc.code\n"
            + REPORT_HEAVY
            + "sys.exit(code)\n")


def test_importing_the_light_modules_loads_no_framework():
    code = "import edgekit, edgekit.cli, edgekit.recipe, edgekit.recipe.support, edgekit.gates, edgekit.report\n" + REPORT_HEAVY

    result = run_python(code)

    assert result.returncode == 0, result.stderr
    assert heavy_modules(result.stdout) == []


def test_the_detector_sees_a_heavy_import():
    # the control: the same probe reports a module from the list when one is loaded (json stands in for it)
    code = REPORT_HEAVY.replace(f"heavy = {HEAVY!r}", "heavy = ('json',)")
    assert code != REPORT_HEAVY

    result = run_python(code)

    assert heavy_modules(result.stdout) == ["json"]


def test_cli_help_loads_no_framework_and_exits_0():
    code = cli_probe(["--help"])

    result = run_python(code)

    assert result.returncode == 0, result.stderr
    assert "compress" in result.stdout
    assert heavy_modules(result.stdout) == []


def test_cli_validate_loads_no_framework():
    code = cli_probe(["validate", "recipes/quickstart.yaml"])

    result = run_python(code)

    assert result.returncode == 0, result.stderr
    assert heavy_modules(result.stdout) == []


def test_python_dash_m_edgekit_cli_help_exits_0():
    result = run_python("", "-m", "edgekit.cli", "--help")

    assert result.returncode == 0, result.stderr
    assert "validate" in result.stdout
    assert "Traceback" not in result.stderr


# ---- static check ----------------------------------------------------------------------------

FORBIDDEN = {"tensorflow", "tf_keras", "torch", "tensorflow_model_optimization", "ai_edge_litert", "onnxruntime"}


def module_level_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, top-level package) of every import executed when the module is imported.

    Function bodies are skipped (imports there are lazy); module-level `if`/`try` blocks and class
    bodies are included because they run at import time.
    """
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(child, ast.Import):
                found.extend((child.lineno, alias.name.split(".")[0]) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                found.append((child.lineno, child.module.split(".")[0]))
            visit(child)

    visit(tree)
    return found


def light_modules() -> list[Path]:
    excluded = (PACKAGE / "backends", PACKAGE / "runtimes")
    return sorted(p for p in PACKAGE.rglob("*.py") if not any(ex in p.parents for ex in excluded))


def test_static_check_finds_a_module_level_import():
    # the control: the checker flags module-level and if/try imports, not imports inside functions
    source = (
        "import os\nimport tensorflow as tf\ntry:\n    from torch import nn\nexcept ImportError:\n    pass\n"
        "def lazy():\n    import tf_keras\n"
    )

    found = [name for _, name in module_level_imports(ast.parse(source)) if name in FORBIDDEN]

    assert found == ["tensorflow", "torch"]


def test_no_light_module_imports_a_framework_at_module_level():
    modules = light_modules()
    assert PACKAGE / "cli" / "group.py" in modules and PACKAGE / "recipe" / "models.py" in modules
    assert not any("backends" in p.parts or "runtimes" in p.parts for p in modules)

    offenders = [
        f"{path.relative_to(REPO)}:{line} imports {name}"
        for path in modules
        for line, name in module_level_imports(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        if name in FORBIDDEN
    ]

    assert offenders == []


@pytest.mark.parametrize("package", ["tensorflow", "tf_keras", "torch", "tensorflow_model_optimization"])
def test_no_unindented_framework_import_lines(package):
    # the grep form of the same rule: no `import X` / `from X import` at column 0
    statement = re.compile(rf"^(?:import|from)\s+{package}(?:[\s.,]|$)", re.MULTILINE)
    assert statement.search(f"import {package}.sub as s\n")  # the pattern itself works
    assert not statement.search(f"    import {package}\nimport {package}_extra\n")

    offenders = [str(path.relative_to(REPO)) for path in light_modules()
                 if statement.search(path.read_text(encoding="utf-8"))]

    assert offenders == []
