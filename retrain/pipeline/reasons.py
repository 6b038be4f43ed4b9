"""Why a pipeline run was started: the ``reason`` of a run (``retrain run --reason``, the
deployments' parameters, the ``reason:<reason>`` tag on the dashboard)."""

REASONS = ("schedule", "drift", "volume", "performance", "manual")
