"""A faithful local fake of Asana's REST API, over a generated or hand-built organisation.

from asana_assets.simulator import DEMO_TOKEN, Simulator, generate_world

with Simulator(generate_world(seed=1, tasks=300)) as sim:
    ...  # point a client at sim.base_url with DEMO_TOKEN; mutate sim.world between syncs
"""

from .config import DEMO_TOKEN, SimulatorConfig
from .generator import generate_world, plant_membership_changes
from .runner import Simulator
from .server import AsanaApi
from .world import UnknownObject, World

__all__ = [
    "DEMO_TOKEN",
    "AsanaApi",
    "Simulator",
    "SimulatorConfig",
    "UnknownObject",
    "World",
    "generate_world",
    "plant_membership_changes",
]
