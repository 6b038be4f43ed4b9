"""Entry point of the failure email for a Failed or Crashed run (``retrain_prefect.flows.failure_alert``)."""

from retrain_prefect.flows.failure_alert import failure_alert

__all__ = ["failure_alert"]

if __name__ == "__main__":
    failure_alert()
