"""The Prefect layer of retrain: runs the library's steps as flows and subflows, emits events,
publishes artifacts, pauses for approval, and declares the deployments and automations.

``retrain/`` (the library) never imports this package; this package imports the library.
"""
