"""The simulator's audit log as the spec documents it: a stream resumed by its offset, events that
carry only documented details, and role values from the spec's roles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from asana_assets.simulator import DEMO_TOKEN, Simulator, World

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture()
def enterprise():
    """Ada (a service account), Uma and a team, with no audit event yet."""
    world = World(now=NOW)
    world.enterprise = True
    acme = world.add_workspace("Acme", ["acme.example"])
    ada, uma = world.add_user("Ada", "ada@acme.example"), world.add_user("Uma", "uma@acme.example")
    world.enterprise = False  # the invitations before the plan: no events
    for user in (ada, uma):
        world.add_workspace_membership(user, acme, at=NOW)
    world.enterprise = True
    world.default_user = ada.gid
    world.service_accounts.add(ada.gid)
    team = world.add_team(acme, "Web")
    with Simulator(world) as simulator, httpx.Client(
        base_url=simulator.base_url, headers={"Authorization": f"Bearer {DEMO_TOKEN}"}
    ) as client:
        yield world, acme, ada, uma, team, client


def events(client, acme, **params):
    response = client.get(f"/workspaces/{acme.gid}/audit_log_events", params={"limit": "2", **params})
    return response.status_code, response.json()


def test_the_log_is_a_stream_resumed_by_its_offset(enterprise):
    world, acme, ada, uma, team, client = enterprise
    # Nothing matches: no next_page at all.
    assert events(client, acme) == (200, {"data": [], "next_page": None})
    for minute in range(3):
        world.add_team_membership(team, uma, actor=ada, at=NOW + timedelta(minutes=minute))
    status, first = events(client, acme)
    assert status == 200 and len(first["data"]) == 2
    _status, second = events(client, acme, offset=first["next_page"]["offset"])
    assert [e["created_at"] for e in second["data"]] == ["2026-06-01T12:02:00.000Z"]
    # The end of current data: an empty page that still has a next_page, to poll with later.
    _status, end = events(client, acme, offset=second["next_page"]["offset"])
    assert end["data"] == [] and end["next_page"]["offset"]
    world.set_workspace_admin(uma, acme, actor=ada, at=NOW + timedelta(hours=1))
    _status, polled = events(client, acme, offset=end["next_page"]["offset"])
    assert [e["event_type"] for e in polled["data"]] == ["user_workspace_admin_role_changed"]


def test_an_offset_of_other_filters_or_altered_is_refused(enterprise):
    world, acme, ada, uma, team, client = enterprise
    world.add_team_membership(team, uma, actor=ada, at=NOW)
    _status, page = events(client, acme)
    offset = page["next_page"]["offset"]
    assert events(client, acme, offset=offset, event_type="team_member_added")[0] == 400
    assert events(client, acme, offset=offset[:-2])[0] == 400
    assert events(client, acme, offset=offset)[0] == 200  # the same filters: accepted


def test_events_carry_the_documented_details_only(enterprise):
    world, acme, ada, uma, team, client = enterprise
    membership = world.add_team_membership(team, uma, actor=ada, at=NOW)
    world.remove_team_membership(membership, actor=ada, at=NOW + timedelta(minutes=1))
    world.set_workspace_admin(uma, acme, actor=ada, at=NOW + timedelta(minutes=2))
    world.set_workspace_admin(uma, acme, False, actor=ada, at=NOW + timedelta(minutes=3))
    world.deactivate_user(uma, acme, actor=ada, at=NOW + timedelta(minutes=4))
    _status, page = events(client, acme, limit="100")
    found = [(e["event_type"], e["resource"]["resource_type"], e["resource"]["gid"], e["details"])
             for e in page["data"]]
    workspace = {"resource_type": "workspace", "gid": acme.gid, "name": "Acme"}
    assert found == [
        # A membership event names the team, not the member.
        ("team_member_added", "team", team.gid, {}),
        ("team_member_removed", "team", team.gid, {}),
        ("user_workspace_admin_role_changed", "user", uma.gid,
         {"old_value": "member", "new_value": "admin", "group": workspace}),
        ("user_workspace_admin_role_changed", "user", uma.gid,
         {"old_value": "admin", "new_value": "member", "group": workspace}),
        ("user_deprovisioned", "user", uma.gid, {}),
    ]
