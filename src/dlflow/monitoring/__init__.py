"""Monitoring's statistics, framework-free (no Kedro, no MLflow): pure functions of arrays and a reference profile.

* ``signals``: per-record input signals (image brightness, contrast, edges, dark share; sentence length, OOV rate);
* ``observations``: what a model observed of its records, and a bounded sample of a whole batch;
* ``profile``: the reference profile a model is registered with;
* ``checks``: the two-sample tests, the policy's correction and decision, live quality;
* ``report``: the HTML drift report and the history plot.
"""
