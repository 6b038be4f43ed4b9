"""Entry points of retrain's Prefect flows, for ``prefect.yaml`` and ``python flows/<name>.py``.

The flows themselves live in the installed package ``retrain_prefect.flows``; each module here
names one of them, so a deployment's entrypoint reads ``flows/pipeline.py:retraining_pipeline``
as Prefect users expect.
"""
