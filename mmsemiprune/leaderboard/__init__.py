"""Leaderboard: sweep specs, run bookkeeping, evaluation and table / plot writers (``tools/leaderboard.py``)."""
from .methods import METHODS, build_run_config, prune_cfg_for
from .runs import RunPaths, Scheduler, load_results, pending_runs, run_one, run_status
from .spec import METHOD_ORDER, RunSpec, expand_sweep, load_sweep
from .tables import aggregate, mean_std, plot, write_all

__all__ = ['METHODS', 'METHOD_ORDER', 'RunSpec', 'RunPaths', 'Scheduler', 'aggregate', 'build_run_config',
           'expand_sweep', 'load_results', 'load_sweep', 'mean_std', 'pending_runs', 'plot', 'prune_cfg_for',
           'run_one', 'run_status', 'write_all']
