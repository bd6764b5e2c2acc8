"""``from scenario.cache import scenario_cache``: the module path langwatch-scenario uses.

The replay cache lives in :mod:`scenario.llm.replay_cache`; ``scenario_cache`` is its decorator
(``scenario.cache`` at the top level), re-exported under langwatch-scenario's name.
"""

from scenario.llm.replay_cache import cache as scenario_cache

__all__ = ["scenario_cache"]
