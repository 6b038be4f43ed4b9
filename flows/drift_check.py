"""Entry point of the daily drift and volume check (``retrain_prefect.flows.drift_check``)."""

from retrain_prefect.flows.drift_check import drift_check

__all__ = ["drift_check"]

if __name__ == "__main__":
    drift_check()
