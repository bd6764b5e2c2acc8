"""langwatch-scenario compatibility that is not a module path: keywords we accept, names we only import.

The peer's module paths themselves (``scenario.types``, ``scenario.config``, ``scenario.agent_adapter``,
...) are thin re-export modules at the top of the package.
"""
