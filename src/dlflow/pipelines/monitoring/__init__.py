"""Monitoring: the reference profile made at registration, and the drift and quality judgement of a batch."""

from .pipeline import create_judge_pipeline, create_profile_pipeline

__all__ = ["create_judge_pipeline", "create_profile_pipeline"]
