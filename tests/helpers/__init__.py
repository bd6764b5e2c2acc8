"""Shared test helpers: adapters (one EchoAgent) and store data, imported as ``tests.helpers``."""
