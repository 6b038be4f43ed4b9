"""Entry points of the A/B-test and rollout flows for the dashboard
(``retrain_prefect.flows.experiments``)."""

from retrain_prefect.flows.experiments import (ab_test_status, control_rollout, end_ab_test,
                                               start_ab_test, start_rollout)

__all__ = ["start_ab_test", "ab_test_status", "end_ab_test", "start_rollout", "control_rollout"]
