"""``from scenario.red_team_agent import RedTeamAgent``: the module path langwatch-scenario uses.

The red-team simulator lives in :mod:`scenario.agents.red_team`; this module re-exports it.
"""

from scenario.agents.red_team import RedTeamAgent

__all__ = ["RedTeamAgent"]
