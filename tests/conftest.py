"""Shared fixtures: a mock model server over real HTTP, and a clean configuration per test."""

from __future__ import annotations

import os

# Before anything imports litellm: use its bundled price list (no network at import).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import pytest

import scenario
from scenario.settings import reset_configuration


@pytest.fixture(scope="session")
def mock_server():
    """One mock model server for the session (tests needing special behaviour start their own)."""
    from scenario.testing import MockLLMServer

    with MockLLMServer() as server:
        yield server


@pytest.fixture
def model_config(mock_server) -> scenario.ModelConfig:
    return scenario.ModelConfig(model="openai/gpt-4o-mini", api_base=mock_server.base_url, api_key="mock", timeout=10)


@pytest.fixture(autouse=True)
def _clean_configuration():
    """Each test starts from default settings with fast retries, and leaves none behind."""
    from scenario.llm.retry import RetryPolicy

    reset_configuration()
    scenario.configure(retry=RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.05))
    yield
    reset_configuration()


@pytest.fixture
def configured(model_config) -> scenario.ModelConfig:
    """The library's own agents talk to the session mock server."""
    scenario.configure(default_model=model_config)
    return model_config
