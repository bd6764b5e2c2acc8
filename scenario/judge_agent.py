"""``from scenario.judge_agent import JudgeAgent``: the module path langwatch-scenario uses.

The judge lives in :mod:`scenario.agents.judge`; this module only re-exports it.
"""

from scenario.agents.judge import JudgeAgent

__all__ = ["JudgeAgent"]
