"""Notifications that are never lost: written to an outbox, then delivered with retries."""

from retrain.notify.channels import DeliveryError
from retrain.notify.outbox import Outbox
from retrain.notify.service import NotificationService

__all__ = ["NotificationService", "Outbox", "DeliveryError"]
