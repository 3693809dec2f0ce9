"""The Optuna study of a search: created or resumed from its journal, asked and told in batches.

The study lives in a journal file (`optuna.storages.JournalStorage`) in the search's state
directory, so `--resume` continues it: finished trials stay as they are, and the trials an
interruption cut short (still RUNNING in the journal) are closed as failed and enqueued again with
the same values. Trials are asked one batch at a time (`search.population`: one NSGA-II
generation), run, and all told before the next batch is asked, so the values sampled do not depend
on how many trials run at once or in which order they finish.

A trial told FAIL with a `error` user attribute is a failed trial (it counts against the budget);
one without is an interrupted trial (it does not).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

from edgekit.errors import InputError
from edgekit.recipe import Recipe, resolved_yaml
from edgekit.recipe.search import Objective
from edgekit.search.trial import TrialResult

JOURNAL = "journal.log"


def search_fingerprint(recipe: Recipe) -> str:
    """What a resumed search must share with the one it continues: the recipe, but for the budget."""
    text = resolved_yaml(recipe.model_copy(update={"search": recipe.search.model_copy(update={"trials": 1})}))
    return hashlib.sha256(text.encode()).hexdigest()


def open_study(state_dir: Path, recipe: Recipe, objectives: list[Objective], resume: bool):
    """The study of `state_dir` (created, or resumed with `resume`); InputError for a state directory
    that is there without --resume, missing with it, or made by another recipe."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    journal = state_dir / JOURNAL
    if journal.exists() and not resume:
        raise InputError(f"{state_dir}: an interrupted search of this recipe is there. Add --resume to continue "
                         "it, or delete the directory to start again.")
    if resume and not journal.exists():
        raise InputError(f"--resume: there is no interrupted search to continue ({journal} does not exist); "
                         "run without --resume to start one.")
    state_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=optuna.exceptions.ExperimentalWarning)
        storage = JournalStorage(JournalFileBackend(str(journal)))
    fingerprint = search_fingerprint(recipe)
    if resume:
        study = optuna.load_study(study_name="search", storage=storage, sampler=_sampler(recipe, 0))
        if study.user_attrs.get("fingerprint") != fingerprint:
            raise InputError(f"--resume: the search in {state_dir} was made by another version of the recipe "
                             "(only search.trials may change). Run without --resume after deleting it, or restore "
                             "the recipe.")
        study.sampler = _sampler(recipe, len(study.trials))
        _reopen_interrupted(study)
        return study
    study = optuna.create_study(study_name="search", storage=storage, sampler=_sampler(recipe, 0),
                                directions=[o.direction for o in objectives])
    study.set_user_attr("fingerprint", fingerprint)
    study.set_user_attr("objectives", [o.key for o in objectives])
    return study


def _sampler(recipe: Recipe, offset: int):
    """The recipe's sampler, seeded by the search seed (and, on resume, by the trials already made, so
    that the resumed part does not draw the first generation's values again)."""
    import optuna

    search = recipe.search
    seed = (recipe.seed if search.seed is None else search.seed) + offset
    if search.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=search.population, multivariate=True,
                                          constant_liar=True)
    return optuna.samplers.NSGAIISampler(population_size=search.population, seed=seed)


def _reopen_interrupted(study) -> None:
    """Close trials a dead search left RUNNING as interrupted (no `error`), and enqueue their values."""
    from optuna.trial import TrialState

    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(trial.number, state=TrialState.FAIL)
        study.enqueue_trial(trial.params, skip_if_exists=False)


def finished(study) -> list:
    """Trials that count against the budget: complete ones and failed ones (with their error)."""
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False)
            if t.state == TrialState.COMPLETE or (t.state == TrialState.FAIL and "error" in t.user_attrs)]


def ask(study, space: dict) -> tuple:
    """(optuna trial, its values of the search space)."""
    from edgekit.search.space import suggest

    trial = study.ask()
    return trial, suggest(trial, space)


def tell(study, trial, result: TrialResult) -> None:
    """Record a finished trial: its values and the gates' constraints, or its failure and error."""
    from optuna.trial import TrialState

    record = result.as_dict()
    for key in ("params", "figures", "trained", "cached", "test_exit_code", "wall_s", "exit_code", "constraints"):
        trial.set_user_attr(key, json.loads(json.dumps(record[key])))
    if result.state != "complete":
        trial.set_user_attr("error", result.error or "failed")
        study.tell(trial, state=TrialState.FAIL)
        return
    for gate, violation in sorted(result.constraints.items()):
        trial.set_constraint(gate, violation)
    study.tell(trial, [result.values[key] for key in study.user_attrs["objectives"]])
