"""Leaderboard: sweep specs, run bookkeeping, evaluation, statistics and table / plot writers
(``python -m mmsemiprune.leaderboard`` or ``tools/leaderboard.py``)."""
from .methods import METHODS, build_run_config, prune_cfg_for, run_epochs
from .runs import RunPaths, Scheduler, load_results, pending_runs, run_one, run_status, train_seconds
from .spec import METHOD_ORDER, RunSpec, expand_sweep, load_sweep
from .stats import clustered_paired_ci, dominators, holm, mean_ci, mean_std, paired_ci, pareto_front, t_quantile, t_test_p
from .tables import (aggregate, family_of, matched_verdicts, paired_differences, pareto_panels, plot, plot_pareto,
                     read_runs_csv, write_all)

__all__ = ['METHODS', 'METHOD_ORDER', 'RunSpec', 'RunPaths', 'Scheduler', 'aggregate', 'build_run_config',
           'clustered_paired_ci', 'dominators', 'family_of', 'holm', 'matched_verdicts', 'pareto_panels',
           't_test_p', 'expand_sweep', 'load_results', 'load_sweep', 'mean_ci', 'mean_std', 'paired_ci',
           'paired_differences', 'pareto_front', 'pending_runs', 'plot', 'plot_pareto', 'prune_cfg_for',
           'read_runs_csv', 'run_epochs', 'run_one', 'run_status', 't_quantile', 'train_seconds', 'write_all']
