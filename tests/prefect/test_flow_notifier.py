"""The flows take the SMTP password from a Prefect Secret block when one is configured."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_smtp_password_from_a_secret_block(harness, workspace, monkeypatch):
    from prefect.blocks.system import Secret

    from retrain_prefect.common import notifier

    monkeypatch.delenv("RETRAIN_SMTP_PASSWORD", raising=False)
    assert notifier(workspace)._smtp_password is None
    Secret(value="from-the-block").save("retrain-smtp-password", overwrite=True)
    workspace.settings.notifications.smtp_password_block = "retrain-smtp-password"
    service = notifier(workspace)
    assert service._smtp_password == "from-the-block"
    from retrain.notify.channels import smtp_password
    assert smtp_password(workspace.settings.notifications, service._smtp_password) == "from-the-block"
