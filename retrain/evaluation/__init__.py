"""Evaluation: each candidate against production on the same holdout, and the smoke sample
that proves a deployed artifact predicts what was evaluated."""

from retrain.evaluation.evaluate import evaluate_candidate, guardrail_checks
from retrain.evaluation.smoke import smoke_check, write_smoke_sample

__all__ = ["evaluate_candidate", "guardrail_checks", "smoke_check", "write_smoke_sample"]
