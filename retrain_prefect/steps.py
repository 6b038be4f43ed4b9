"""Deployment steps that run on the worker (``prefect-git.yaml``'s pull step).

``git_clone`` is Prefect's own ``prefect.deployments.steps.git_clone``, with the access token
of a private repository read, when the run starts, from the Prefect Secret block that
``access_token_secret`` names: the deployment stores the block's name, never the token.
"""

from __future__ import annotations

from prefect.deployments.steps import git_clone as prefect_git_clone


def git_clone(repository: str, branch: str | None = None,
              access_token_secret: str | None = None) -> dict[str, str]:
    """Clone ``repository`` (``branch``) into the worker's working folder; returns
    ``{"directory": ...}``, where the flow run then starts."""
    token = None
    if access_token_secret:
        from prefect.blocks.system import Secret  # late: only private repositories
        token = Secret.load(access_token_secret).get()
    return prefect_git_clone(repository=repository, branch=branch or None, access_token=token)
