"""Which Slack workspace a request, a cohort or a configured admin belongs to (pure).

A tenant is the core's opaque key for "whose cohorts": here, one Slack workspace. With one
bot token the bot serves one workspace, and its tenant is plain `slack`. With OAuth installs
each workspace is its own tenant, `slack:<team id>`, or `slack:<enterprise id>:<team id>` on
Enterprise Grid. The key names the workspace, so it also says whose token speaks there.
"""

from __future__ import annotations

from bot.domain.refs import UserRef
from bot.service.api import Admin

PLATFORM = "slack"
#: The one workspace of a single bot token.
SINGLE = PLATFORM

Key = tuple[str | None, str | None]  # (enterprise id, team id), as installations are kept


def tenant_of(enterprise_id: str | None, team_id: str | None) -> str:
    """The tenant of a workspace of an OAuth deployment."""
    parts = [p for p in (enterprise_id, team_id) if p]
    if not parts:
        raise ValueError("a Slack workspace without a team or enterprise id")
    return ":".join([PLATFORM, *parts])


def key_of(tenant: str | None) -> Key | None:
    """The (enterprise, team) a tenant names; None for the single workspace or a tenant that
    is no Slack workspace."""
    if tenant is None:
        return None
    platform, _, rest = tenant.partition(":")
    if platform != PLATFORM or not rest:
        return None
    parts = rest.split(":")
    if len(parts) == 1:
        return (parts[0], None) if parts[0].startswith("E") else (None, parts[0])
    return (parts[0], parts[1])


def admin(user_id: str, *, oauth: bool) -> Admin:
    """A configured Slack admin, `U…`, `T…:U…` or `E…:T…:U…` (the part after `slack:`).

    With OAuth installs the workspace must be named: the admin rules it and no other. With one
    bot token there is one workspace, and a named one is taken to be it."""
    *workspace, ident = user_id.split(":")
    user = UserRef(PLATFORM, ident)
    if not oauth:
        return Admin(user, SINGLE)
    if not workspace or len(workspace) > 2:
        raise ValueError(f"with OAuth installs, name the admin's workspace: "
                         f"'slack:T…:{ident}' (got 'slack:{user_id}')")
    return Admin(user, tenant_of(*([None] * (2 - len(workspace)) + workspace)))
