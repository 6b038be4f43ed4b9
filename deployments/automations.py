"""``python -m deployments.automations``: create or update retrain's automations
(``retrain_prefect.automations``)."""

from retrain_prefect.automations import main

if __name__ == "__main__":
    raise SystemExit(main())
