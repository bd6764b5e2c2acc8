"""`import scenario` is cheap and side-effect free; the replay cache replays."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import scenario
from tests.helpers.agents import EchoAgent


def test_import_has_no_global_side_effects():
    code = (
        "import os, sys, json\n"
        "before = dict(os.environ)\n"
        "import scenario\n"
        "from opentelemetry import trace\n"
        "print(json.dumps({'litellm': 'litellm' in sys.modules, 'env_changed': dict(os.environ) != before,"
        " 'provider': type(trace.get_tracer_provider()).__name__, 'rich': 'rich' in sys.modules,"
        " 'aiohttp': 'aiohttp' in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    facts = json.loads(out)
    assert facts == {"litellm": False, "env_changed": False, "provider": "ProxyTracerProvider", "rich": False, "aiohttp": False}


def test_litellm_import_restores_environment():
    code = (
        "import os\n"
        "os.environ.pop('LITELLM_LOCAL_MODEL_COST_MAP', None)\n"
        "from scenario.llm.client import litellm_module\n"
        "litellm_module()\n"
        "print('LITELLM_LOCAL_MODEL_COST_MAP' in os.environ)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.asyncio
async def test_cache_key_replays_model_calls_without_new_requests(tmp_path, model_config):
    from scenario.testing import MockLLMServer

    scenario.configure(cache_dir=str(tmp_path))
    with MockLLMServer() as server:
        config = model_config.merged(api_base=server.base_url)
        agents = lambda: [EchoAgent(), scenario.UserSimulatorAgent(**_params(config)), scenario.JudgeAgent(criteria=["ok"], **_params(config))]
        first = await scenario.run(name="c", description="cached", agents=agents(), cache_key="v1")
        calls_after_first = server.stats.requests
        second = await scenario.arun(name="c", description="cached", agents=agents(), cache_key="v1")
        assert server.stats.requests == calls_after_first  # all four calls replayed
        third = await scenario.arun(name="c", description="cached", agents=agents(), cache_key="v2")
        assert server.stats.requests == calls_after_first + 4
    assert first.messages == second.messages == third.messages
    assert second.usage.cached_calls == 4 and second.usage.cost_usd == 0
    assert first.usage.cached_calls == 0 and first.usage.cost_usd > 0


@pytest.mark.asyncio
async def test_cache_decorator_replays_user_functions(tmp_path):
    scenario.configure(cache_dir=str(tmp_path))
    calls = []

    @scenario.cache(ignore=["noise"])
    async def expensive(x, noise=None):
        calls.append(x)
        return {"value": x * 2}

    class CachedAgent(scenario.AgentAdapter):
        async def call(self, input):
            result = await expensive(len(input.messages), noise=object())
            return str(result["value"])

    script = [scenario.user("hi"), scenario.agent(), scenario.succeed()]
    for _ in range(2):
        await scenario.arun(name="d", description="d", agents=[CachedAgent()], script=script, cache_key="k")
    assert calls == [1]
    await scenario.arun(name="d", description="d", agents=[CachedAgent()], script=script)  # no key: runs
    assert calls == [1, 1]


def _params(config):
    return {"model": config.model, "api_base": config.api_base, "api_key": config.api_key, "timeout": config.timeout}
