"""Entry point of the monthly (and event-triggered) retraining run (``retrain_prefect.flows.pipeline``)."""

from retrain_prefect.flows.pipeline import retraining_pipeline

__all__ = ["retraining_pipeline"]

if __name__ == "__main__":
    retraining_pipeline()
