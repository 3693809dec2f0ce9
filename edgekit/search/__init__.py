"""`edgekit search`: the recipe's `search:` space sampled by Optuna, trials run by Ray, gates as constraints.

Modules: `space` (paths and values, checked and sampled), `trial` (one trial: a normal run),
`measures` (objectives and gate constraints on the validation split), `execution` (Ray),
`study` (the Optuna study and its journal), `pareto` (the front and the shipped trial), `watch`
(progress), `outputs` (the run directory and search/), `driver` (all of it in order).
"""
