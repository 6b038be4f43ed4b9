"""Commands that deploy retrain to a Prefect server, run from this folder:

    python -m deployments.serve         serve every deployment from one process
    python -m deployments.automations   create or update the automations
    python -m deployments.prefect_yaml  write prefect.yaml from the declared deployments

and the build step ``deployments.steps.retrain_settings`` that ``prefect deploy`` runs. The
declarations live in ``retrain_prefect.deployments``.
"""
