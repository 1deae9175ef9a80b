"""Who a token acts for, from the audit log probe: only a read confirms a service account of an
Enterprise organisation; a refusal (403) is a person; a 402 says nothing about the account, so
the kind is unknown unless the connection declares it. Hand-built worlds: the simulator's audit
route answers 402 outside an Enterprise plan, 403 to anyone but a service account there."""

from __future__ import annotations

import asyncio

import pytest

from asana_assets.lib.asana.account import PERSON, SERVICE_ACCOUNT, UNKNOWN
from asana_assets.lib.asana.client import AsanaClient
from asana_assets.lib.connections.coverage import coverage
from asana_assets.simulator import DEMO_TOKEN, Simulator, SimulatorConfig, World

FAST = SimulatorConfig(requests_per_minute=1_000_000)


def probe(plan: str, acting: str, declared: str | None = None, workspaces: int = 1, asked: int | None = None):
    """The coverage of a token acting for the service account ("robot") or a person ("pat"),
    over the first ``asked`` workspaces (all by default)."""
    world = World()
    world.enterprise = plan == "enterprise"
    gids = []
    for index in range(workspaces):
        ws = world.add_workspace(f"Acme {index}", [f"acme{index}.example"])
        ws.plan = plan if index == 0 else "business"
        gids.append(ws.gid)
    pat = world.add_user("Pat", "pat@acme.example")
    world.add_workspace_membership(pat, gids[0])
    robot = world.add_service_account(gids[0], "Compliance bot", "bot@acme.example")
    for gid in gids[1:]:
        world.add_workspace_membership(robot, gid)
    world.default_user = {"pat": pat, "robot": robot}[acting].gid

    async def run():
        async with AsanaClient(sim.base_url, DEMO_TOKEN, requests_per_minute=1_000_000) as client:
            return await coverage(client, gids[:asked], declared)

    with Simulator(world, FAST) as sim:
        return asyncio.run(run())


def test_a_service_account_of_an_enterprise_organisation_is_confirmed():
    seen = probe("enterprise", "robot")
    assert (seen.kind, seen.plan, seen.full) == (SERVICE_ACCOUNT, "Enterprise", True)
    assert seen.basis == "it reads the audit log"


def test_a_person_refused_by_the_audit_log_is_a_person_who_does_not_read_everything():
    seen = probe("enterprise", "pat")
    assert (seen.kind, seen.plan, seen.full) == (PERSON, "unknown", False)
    assert seen.audit_log == {next(iter(seen.audit_log)): 403}


@pytest.mark.parametrize("acting", ["robot", "pat"])
def test_below_enterprise_the_402_does_not_tell_the_kind(acting):
    """The service account below Enterprise was once labelled a person: a 402 tells neither."""
    seen = probe("business", acting)
    assert (seen.kind, seen.plan, seen.full) == (UNKNOWN, "unknown", False)
    assert "402" in seen.basis


def test_a_declared_kind_is_reported_as_declared_and_never_confirms_coverage():
    seen = probe("business", "robot", declared=SERVICE_ACCOUNT)
    assert (seen.kind, seen.basis, seen.full) == (SERVICE_ACCOUNT, "declared by the connection", False)
    # A declaration outweighs a refusal, whose meaning is documented, not observed ...
    assert probe("enterprise", "pat", declared=SERVICE_ACCOUNT).kind == SERVICE_ACCOUNT
    # ... but not a read: the audit log answering is proof.
    read = probe("enterprise", "robot", declared=PERSON)
    assert (read.kind, read.full) == (SERVICE_ACCOUNT, True)


def test_one_workspace_without_the_audit_log_leaves_coverage_unconfirmed():
    """Edge: the service account reads the Enterprise workspace's log, the second is on Business."""
    seen = probe("enterprise", "robot", workspaces=2)
    assert sorted(seen.audit_log.values()) == [200, 402]
    assert (seen.kind, seen.plan, seen.full) == (SERVICE_ACCOUNT, "unknown", False)


def test_no_workspace_confirms_nothing():
    """Edge: with no workspace to ask, nothing is read, so nothing is confirmed."""
    seen = probe("enterprise", "robot", asked=0)
    assert (seen.kind, seen.full, seen.audit_log) == (UNKNOWN, False, {})
