"""``from scenario.connected_agent import ConnectedAgentAdapter``: langwatch-scenario's module path.

Connected agents are agents registered on the LangWatch platform (``langwatch.connect_agent``).
This library has no platform, so both names are placeholders that raise
:class:`~scenario.compat.peer_only.NotSupportedError` when used (see :mod:`scenario.compat.peer_only`).
"""

from scenario.compat.peer_only import ConnectedAgentAdapter, ConnectedAgentCall  # type: ignore[attr-defined]

__all__ = ["ConnectedAgentAdapter", "ConnectedAgentCall"]
