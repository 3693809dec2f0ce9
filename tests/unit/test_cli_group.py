"""edgekit.cli.group: the lazy group's table agrees with the commands, and `--help` imports none of them."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import click
import pytest

from edgekit.cli.group import COMMANDS, main

REPO = Path(__file__).resolve().parents[2]
CLI = REPO / "edgekit" / "cli"


def _cli_modules_after(argv: list[str]) -> subprocess.CompletedProcess:
    """Run `edgekit ARGV` in a fresh interpreter; its last stdout line lists the edgekit.cli modules loaded."""
    code = (
        "import sys\n"
        "from edgekit.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('edgekit.cli.')))\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_lazy_command_loads_under_its_own_name(name):
    command = main.load(name)

    assert isinstance(command, click.Command)
    assert command.name == name


@pytest.mark.parametrize("name", sorted(COMMANDS))
@pytest.mark.parametrize("limit", [20, 45, 60, 74, 200])
def test_the_summary_in_the_table_gives_the_same_help_line_as_the_command(name, limit):
    stand_in = click.Command(name, help=COMMANDS[name].summary)

    assert stand_in.get_short_help_str(limit) == main.load(name).get_short_help_str(limit)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_summary_is_the_first_paragraph_of_the_docstring(name):
    # word for word, so the help line stays right at every terminal width
    first_paragraph = main.load(name).help.partition("\n\n")[0]

    assert COMMANDS[name].summary.split() == first_paragraph.split()


def test_help_lists_every_command_and_imports_no_command_module():
    proc = _cli_modules_after(["--help"])

    assert proc.returncode == 0, proc.stderr
    for name in COMMANDS:
        assert f"  {name} " in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "['edgekit.cli.group']"


def test_running_a_command_imports_only_its_own_module():
    proc = _cli_modules_after(["init", "--help"])

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "['edgekit.cli.console', 'edgekit.cli.group', 'edgekit.cli.init']"


def test_an_unknown_command_is_a_usage_error():
    from click.testing import CliRunner

    result = CliRunner().invoke(main, ["nosuchcmd"])

    assert result.exit_code == 2
    assert "No such command 'nosuchcmd'" in result.output


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_cli_module_imports_the_group_or_the_package_back():
    offenders = [path.name for path in CLI.glob("*.py")
                 if path.name not in ("__init__.py", "__main__.py")
                 and _imported_modules(path) & {"edgekit.cli", "edgekit.cli.group"}]

    assert offenders == []


def test_the_console_imports_no_command():
    assert not {m for m in _imported_modules(CLI / "console.py") if m.startswith("edgekit.cli")}
