"""``python -m deployments.serve``: serve every retrain deployment from this process
(``retrain_prefect.serve``)."""

from retrain_prefect.serve import main

if __name__ == "__main__":
    main()
