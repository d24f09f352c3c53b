"""Small helpers for wiring pipelines (no nodes here: a pipeline imports no other pipeline's nodes)."""

from functools import partial, update_wrapper


def bound(func, **kwargs):
    """``func`` with keyword arguments fixed, keeping its name (and so its node's default name) for Kedro."""
    return update_wrapper(partial(func, **kwargs), func)
