"""Entry point of a rollback from the dashboard (``retrain_prefect.flows.rollback``)."""

from retrain_prefect.flows.rollback import rollback_model

__all__ = ["rollback_model"]

if __name__ == "__main__":
    rollback_model()
