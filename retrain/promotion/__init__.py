"""Promotion: the rule, approval, the one production switch, rollback; ModelPromoter."""

from retrain.promotion.approval import Approval, Approver, requires_approval
from retrain.promotion.decisions import apply_decision, rollback_model
from retrain.promotion.promoter import ModelPromoter
from retrain.promotion.rule import decide

__all__ = ["decide", "apply_decision", "Approval", "Approver", "requires_approval",
           "ModelPromoter", "rollback_model"]
