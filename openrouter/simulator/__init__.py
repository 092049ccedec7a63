"""A faithful local OpenRouter for tests, ``make run`` without a key, and benchmarks.

In-process::

    app = create_app(SimulatorConfig(ttft=0, tps=0))
    sim = app.state.sim                      # SimState: set_fault(), update_config(), stats(), ...
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim/api/v1")

As a server: ``python -m openrouter.simulator --port 8011``. Faults: see ``faults``.
"""

from openrouter.simulator.app import create_app
from openrouter.simulator.state import SimState, SimulatorConfig

__all__ = ["SimState", "SimulatorConfig", "create_app"]
