"""The model registry: versions, the production pointer, artifacts and the audit log."""

from retrain.registry.registry import Registry
from retrain.registry.tables import AuditEvent, ModelVersion, RegisteredModel

__all__ = ["Registry", "ModelVersion", "RegisteredModel", "AuditEvent"]
