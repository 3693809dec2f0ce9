"""edgekit.run.rundir: a run directory is replaced only by a finished run; failures leave the old one intact."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from edgekit.errors import InputError
from edgekit.run.rundir import staged_directory


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under root (relative) with its bytes; None for directories."""
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


def leftovers(parent: Path, name: str) -> list[str]:
    return [p.name for p in parent.iterdir() if p.name.startswith(f".{name}.")]


@pytest.fixture
def previous_run(tmp_path) -> Path:
    target = tmp_path / "runs" / "demo"
    (target / "sub").mkdir(parents=True)
    (target / "model.tflite").write_bytes(b"old model \x00\x01\x02")
    (target / "sub" / "report.json").write_text('{"old": true}')
    return target


def test_success_creates_the_target(tmp_path):
    target = tmp_path / "runs" / "new"

    with staged_directory(target) as work:
        assert work != target.absolute()
        assert work.parent == target.absolute().parent
        (work / "model.tflite").write_bytes(b"new")
        assert not target.exists()  # nothing appears in place until the run finished

    assert (target / "model.tflite").read_bytes() == b"new"
    assert leftovers(target.parent, "new") == []


def test_success_replaces_the_previous_content(previous_run):
    with staged_directory(previous_run) as work:
        (work / "model.tflite").write_bytes(b"new model")
        (work / "report.md").write_text("# new")

    assert snapshot(previous_run) == {"model.tflite": b"new model", "report.md": b"# new"}
    assert leftovers(previous_run.parent, "demo") == []
    assert sorted(p.name for p in previous_run.parent.iterdir()) == ["demo"]


def test_previous_content_is_untouched_while_the_run_is_in_progress(previous_run):
    before = snapshot(previous_run)

    with staged_directory(previous_run) as work:
        (work / "model.tflite").write_bytes(b"new")
        assert snapshot(previous_run) == before


@pytest.mark.parametrize("exception", [RuntimeError("stage failed"), KeyboardInterrupt()])
def test_a_failed_or_interrupted_run_leaves_the_previous_target_identical(previous_run, exception):
    before = snapshot(previous_run)

    with pytest.raises(type(exception)):
        with staged_directory(previous_run) as work:
            (work / "model.tflite").write_bytes(b"half written")
            (work / "partial").mkdir()
            raise exception

    assert snapshot(previous_run) == before
    assert leftovers(previous_run.parent, "demo") == []
    assert sorted(p.name for p in previous_run.parent.iterdir()) == ["demo"]


def test_a_signal_that_something_swallowed_still_keeps_the_previous_run(previous_run, monkeypatch):
    """A SIGINT that a framework's bare `except:` swallowed lets the run finish; it must still not
    replace the previous run (edgekit.interrupts)."""
    from edgekit import interrupts

    before = snapshot(previous_run)
    monkeypatch.setattr(interrupts, "_RECEIVED", [])
    with pytest.raises(KeyboardInterrupt):
        with staged_directory(previous_run) as staging:
            interrupts._RECEIVED.append(2)  # the handler ran; its KeyboardInterrupt went nowhere
            (staging / "report.json").write_text("{}")
    assert snapshot(previous_run) == before
    assert leftovers(previous_run.parent, "demo") == []


def test_a_failed_first_run_leaves_nothing(tmp_path):
    target = tmp_path / "runs" / "first"

    with pytest.raises(ValueError):
        with staged_directory(target) as work:
            (work / "x").write_text("x")
            raise ValueError("boom")

    assert not target.exists()
    assert list(target.parent.iterdir()) == []


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores directory permissions")
def test_a_read_only_parent_is_an_input_error(tmp_path):
    parent = tmp_path / "readonly"
    parent.mkdir()
    parent.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(InputError) as excinfo:
            with staged_directory(parent / "run"):
                pytest.fail("the body must not run")
    finally:
        parent.chmod(stat.S_IRWXU)

    assert excinfo.value.exit_code == 2
    assert "not writable" in str(excinfo.value)


@pytest.mark.parametrize("below", [("run",), ("sub", "run")])
def test_a_parent_that_is_a_file_is_an_input_error(tmp_path, below):
    blocker = tmp_path / "blocker"
    blocker.write_text("I am a file")
    target = blocker.joinpath(*below)

    with pytest.raises(InputError) as excinfo:
        with staged_directory(target):
            pytest.fail("the body must not run")

    assert excinfo.value.exit_code == 2
    assert "cannot create the output directory" in str(excinfo.value)
    assert "--output" in str(excinfo.value)
    assert blocker.read_text() == "I am a file"


def test_a_target_that_is_a_file_is_an_input_error(tmp_path):
    target = tmp_path / "run"
    target.write_text("not a directory")

    with pytest.raises(InputError) as excinfo:
        with staged_directory(target):
            pytest.fail("the body must not run")

    assert excinfo.value.exit_code == 2
    assert "is not a directory" in str(excinfo.value)
    assert target.read_text() == "not a directory"
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_the_run_directory_gets_the_usual_directory_permissions(tmp_path):
    reference = tmp_path / "reference"
    reference.mkdir()
    if stat.S_IMODE(reference.stat().st_mode) == 0o700:
        pytest.skip("the umask (077) already gives new directories mode 0700")
    target = tmp_path / "run"

    with staged_directory(target) as work:
        (work / "model.tflite").write_bytes(b"x")

    assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE(reference.stat().st_mode)


@pytest.mark.parametrize("make_target", [
    lambda tmp: Path("/"),
    lambda tmp: Path.home(),
    lambda tmp: Path.cwd(),
    lambda tmp: tmp / "project",            # holds the recipe
    lambda tmp: tmp / "project" / "models",  # is the teacher's folder
])
def test_output_that_would_replace_inputs_is_refused(tmp_path, make_target):
    from edgekit.run.rundir import check_output_is_safe

    recipe = tmp_path / "project" / "recipe.yaml"
    teacher = tmp_path / "project" / "models" / "teacher.keras"
    teacher.parent.mkdir(parents=True)
    recipe.write_text("version: 1\n")
    teacher.write_bytes(b"x")

    with pytest.raises(InputError, match="output"):
        check_output_is_safe(make_target(tmp_path), [recipe, teacher])


def test_a_dedicated_output_directory_is_fine(tmp_path):
    from edgekit.run.rundir import check_output_is_safe

    recipe = tmp_path / "project" / "recipe.yaml"
    check_output_is_safe(tmp_path / "project" / "runs" / "quickstart", [recipe])
