"""ARCHITECTURE.md, checked: the import-linter contracts hold, nothing dispatches on a format or a
framework by comparing names outside the registries, and no module outgrows 400 lines."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "edgekit"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

# `fmt == "onnx"`, `suffix == ".tflite"`, `framework != "torch"`, `"keras" == backend.framework`, ...
DISPATCH = re.compile(
    r"""\b(fmt|format|suffix|framework|runtime)\b\s*(==|!=)"""
    r"""|(==|!=)\s*["']\.?(tflite|onnx|litert|onnxruntime|torch)["']"""
    r"""|["']\.?(tflite|onnx|keras|torch)["']\s*(==|!=)"""
    r"""|isinstance\([^)]*\b(Format|Backend|Runtime|KerasBackend|TorchBackend)\b"""
)


def _lint(config: Path | None = None) -> subprocess.CompletedProcess:
    args = [str(LINT_IMPORTS)] + (["--config", str(config)] if config else [])
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def lint_imports():
    if not LINT_IMPORTS.exists():
        pytest.fail(f"lint-imports is not installed beside {sys.executable}: `make install` installs it (dev extra)")
    return _lint


def test_the_import_contracts_hold(lint_imports):
    result = lint_imports()

    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"Contracts: [3-9] kept, 0 broken", result.stdout), result.stdout


def test_a_broken_layer_contract_is_caught(lint_imports, tmp_path):
    # the control: the same tool, told that the core sits above the CLI, reports the contract broken
    config = tmp_path / "inverted.toml"
    config.write_text(
        '[tool.importlinter]\nroot_package = "edgekit"\n\n'
        '[[tool.importlinter.contracts]]\nname = "inverted"\ntype = "layers"\n'
        'layers = ["edgekit.errors", "edgekit.cli"]\n'
    )

    result = lint_imports(config)

    assert result.returncode != 0
    assert "inverted BROKEN" in " ".join(result.stdout.split())


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_the_dispatch_detector_sees_a_ladder():
    ladder = 'if fmt == "onnx":\n    pass\nelif framework == "torch":\n    pass\nisinstance(x, Backend)\n'
    assert len(DISPATCH.findall(ladder)) == 3
    assert not DISPATCH.search('if self.source == "keras":  # the keras dataset cache\n')


def test_no_format_or_framework_dispatch_by_name():
    offenders = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in _sources()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if DISPATCH.search(line) and not line.lstrip().startswith("#")
    ]

    assert offenders == [], "look the format/framework up in its registry instead:\n" + "\n".join(offenders)


def test_no_module_over_400_lines():
    sizes = {str(p.relative_to(REPO)): len(p.read_text(encoding="utf-8").splitlines()) for p in _sources()}

    assert {name: n for name, n in sizes.items() if n > 400} == {}
    assert sizes and max(sizes.values()) > 50  # the scan saw the real modules


def test_architecture_md_names_every_package():
    text = (REPO / "ARCHITECTURE.md").read_text(encoding="utf-8")
    packages = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))

    assert packages and [name for name in packages if f"{name}/" not in text] == []
