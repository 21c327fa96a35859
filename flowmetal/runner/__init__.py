"""Runs jobs: the job store (jobs.py), driving one job (run.py), the config file (config.py) and
the readable history (history.py). Import the submodules directly; this package imports nothing
so that `fm` starts fast."""
