"""Entry point of the hourly rollout check (``retrain_prefect.flows.rollout``)."""

from retrain_prefect.flows.rollout import rollout_advance

__all__ = ["rollout_advance"]

if __name__ == "__main__":
    rollout_advance()
