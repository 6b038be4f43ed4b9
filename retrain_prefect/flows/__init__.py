"""retrain's Prefect flows."""
