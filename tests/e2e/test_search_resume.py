"""`edgekit search` end to end, continued: an interrupted search resumed, a resume refused after the
recipe changed, and trials that share a student training it once (recipes/digits_search.yaml, each
search with a stage cache of its own). The searches that must find the same front on one worker,
two and a two-node Ray cluster are in test_search.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, read_report, run_edgekit

pytestmark = pytest.mark.slow

RECIPE = ROOT / "recipes" / "digits_search.yaml"
# What these tests check does not depend on how well the students learn: shorter training
SHORT = ("--set", "stages.0.distill.epochs=8", "--set", "stages.1.prune.epochs=2")


def _finished_trials(journal: Path) -> dict:
    """{trial number: completion time} of the trials the journal holds as finished."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(study_name="search", storage=JournalStorage(JournalFileBackend(str(journal))))
    return {t.number: t.datetime_complete for t in study.trials
            if t.state == optuna.trial.TrialState.COMPLETE or "error" in t.user_attrs}


def test_resume_after_an_interrupt_completes_the_budget_without_redoing_trials(tmp_path):
    out, cache = tmp_path / "run", tmp_path / "cache"
    args = [sys.executable, "-m", "edgekit.cli", "search", str(RECIPE), "--workers", "1", "--trials", "8",
            "--set", "search.population=4", *SHORT, "--output", str(out), "--cache-dir", str(cache)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEKIT_")}
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline, lines = time.monotonic() + 600, []
    while time.monotonic() < deadline:  # wait for the third finished trial, then Ctrl-C
        line = process.stderr.readline()
        lines.append(line)
        if line.startswith("trial ") and "(3/8)" in line:
            break
        assert line or process.poll() is None, "".join(lines)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=120)
    assert process.returncode == 130, "".join(lines)
    state = tmp_path / ".run.search"
    assert not out.exists() and (state / "journal.log").exists()
    before = _finished_trials(state / "journal.log")
    assert 3 <= len(before) < 8

    start = time.monotonic()
    result = run_edgekit("search", str(RECIPE), "--workers", "1", "--trials", "8", "--set", "search.population=4",
                         *SHORT, "--output", str(out), "--cache-dir", str(cache), "--resume", "--json", timeout=900)
    resumed_wall = time.monotonic() - start

    assert result.returncode in (0, 1), result.stderr[-3000:]
    report = read_report(out)
    after = _finished_trials(out / "search" / "journal.log")
    assert len(after) == 8 and report["search"]["completed"] + report["search"]["failed"] == 8
    assert report["search"]["resumed_trials"] == len(before)
    assert {n: after[n] for n in before} == before, "a trial finished before the interrupt ran again"
    assert report["search"]["wall_s"] < resumed_wall  # the resumed part's own time, reported as such
    assert not state.exists()


def test_resume_is_refused_when_the_recipe_changed(tmp_path):
    out = tmp_path / "run"
    state = tmp_path / ".run.search"
    first = run_edgekit("search", str(RECIPE), "--trials", "1", "--output", str(out), "--set", "search.population=2",
                        *SHORT, "-q")
    assert first.returncode in (0, 1), first.stderr[-2000:]
    (state).mkdir()
    (state / "journal.log").write_bytes((out / "search" / "journal.log").read_bytes())

    changed = run_edgekit("search", str(RECIPE), "--trials", "2", "--output", str(out), "--resume",
                          "--set", "search.population=2", *SHORT, "--set", "gates.min_accuracy=0.5")
    again = run_edgekit("search", str(RECIPE), "--trials", "2", "--output", str(out), "--set", "search.population=2",
                        *SHORT)

    assert changed.returncode == 2 and "another version of the recipe" in changed.stderr
    assert again.returncode == 2 and "--resume" in again.stderr and "interrupted search" in again.stderr


def test_trials_that_share_a_student_train_it_once(tmp_path):
    recipe = tmp_path / "shared.yaml"
    text = RECIPE.read_text().replace("    stages.0.distill.student.width: [0.25, 0.35, 0.5]\n", "")
    recipe.write_text(text.replace("path: sample_models/", f"path: {ROOT}/sample_models/"))
    out = tmp_path / "run"

    result = run_edgekit("search", str(recipe), "--workers", "2", "--trials", "6", "--set", "search.population=6",
                         *SHORT, "--output", str(out), "-q", timeout=900)

    assert result.returncode in (0, 1), result.stderr[-3000:]
    search = read_report(out)["search"]
    assert search["completed"] == 6
    trained = [p["trial"] for p in search["points"] if "distill" in p["trained"]]
    from_cache = [p["trial"] for p in search["points"] if "distill" in p["cached"]]
    assert len(trained) == 1 and len(from_cache) == 5, search["points"]
    assert search["cache"]["cached_steps"] >= 5
