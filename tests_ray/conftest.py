"""The Ray backend's tests: one local Ray cluster for the whole session, in its own environment.

``make test`` builds ``.venv-ray`` (the package, Ray, pytest) and runs this folder as a second
pytest invocation: Ray is an optional extra and ~600 MiB of processes, so the default suite never
imports it. Ray writes to the home directory (``~/.ray``) and ``/tmp/ray`` on first start; both
are pointed at a temporary directory here, removed at the end.
"""

from __future__ import annotations

import os
import shutil
import tempfile

# Before Ray or litellm is imported: no price-list download, Ray's files in a scratch home.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
_SCRATCH = tempfile.mkdtemp(prefix="sray", dir="/tmp")  # short: Ray's socket paths must stay < 108 bytes
os.environ["HOME"] = os.path.join(_SCRATCH, "home")
os.makedirs(os.environ["HOME"], exist_ok=True)
os.environ.pop("RAY_ADDRESS", None)
# The cluster lives on loopback: by default Ray registers every process under the machine's network
# address, and tests send traffic to 127.0.0.1 only. This switch (Ray's own, meant for laptops)
# makes a local cluster use 127.0.0.1; subprocess drivers inherit it through os.environ.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

import pytest  # noqa: E402  (the environment above must be set first)

import scenario  # noqa: E402
from scenario.settings import reset_configuration  # noqa: E402


@pytest.fixture(scope="session")
def ray_cluster():
    """A 2-CPU local cluster for the session; yields its address for driver subprocesses."""
    import ray

    ray.init(num_cpus=2, _temp_dir=os.path.join(_SCRATCH, "t"), include_dashboard=False, logging_level="warning",
             # The test modules' agents are pickled by reference: the workers import them from here.
             runtime_env={"working_dir": os.path.dirname(os.path.abspath(__file__)),
                          "env_vars": {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}})
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        shutil.rmtree(_SCRATCH, ignore_errors=True)


@pytest.fixture(scope="session")
def mock_server():
    from scenario.testing import MockLLMServer

    with MockLLMServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _clean_configuration():
    from scenario.llm.retry import RetryPolicy

    reset_configuration()
    scenario.configure(retry=RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.05))
    yield
    reset_configuration()
    scenario.configure(rate_limits={})


@pytest.fixture
def configured(mock_server) -> scenario.ModelConfig:
    config = scenario.ModelConfig(model="openai/gpt-4o-mini", api_base=mock_server.base_url, api_key="mock", timeout=10)
    scenario.configure(default_model=config)
    return config
