"""Hyperparameter search with Optuna: the search space, the study's storage, the trials.

Framework-light: ``space`` is pure Python, ``checks`` validates a space against its
family's parameters before any work starts, ``storage`` builds Optuna studies,
``study`` runs one worker's trials with the shared training loop, each trial an
MLflow child run, and ``report`` turns a study into tables and plots. The Kedro
nodes are in ``dlflow.pipelines.tuning``.
"""
