"""Compare synced tables with the simulator's ground truth, table by table.

Written independently of the sync's own row builders: it reads the simulator's full API
records and checks the columns analysts rely on, so a flattening bug shows up here.
"""

from __future__ import annotations

from datetime import date, datetime

import pyarrow as pa


def _gid(ref) -> str | None:
    return ref["gid"] if ref else None


def _ts(value) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _day(value) -> date | None:
    return date.fromisoformat(value) if value else None


def _rows(table: pa.Table, key: str = "gid") -> dict:
    rows = table.to_pylist()
    by_key = {row[key]: row for row in rows}
    assert len(by_key) == len(rows), f"duplicate {key} values"
    return by_key


EXPECTED = {
    "workspaces": lambda r: {"name": r["name"], "is_organization": r["is_organization"]},
    "users": lambda r: {"name": r["name"], "email": r["email"]},
    "workspace_memberships": lambda r: {
        "user_gid": _gid(r["user"]), "workspace_gid": _gid(r["workspace"]),
        "is_active": r["is_active"], "is_admin": r["is_admin"], "is_guest": r["is_guest"],
    },
    "teams": lambda r: {"name": r["name"], "workspace_gid": _gid(r["organization"])},
    "team_memberships": lambda r: {
        "team_gid": _gid(r["team"]), "user_gid": _gid(r["user"]),
        "is_admin": r["is_admin"], "is_guest": r["is_guest"],
    },
    "projects": lambda r: {
        "name": r["name"], "archived": r["archived"], "team_gid": _gid(r["team"]),
        "owner_gid": _gid(r["owner"]), "workspace_gid": _gid(r["workspace"]),
        "privacy_setting": r["privacy_setting"], "created_at": _ts(r["created_at"]),
    },
    "project_memberships": lambda r: {
        "project_gid": _gid(r["parent"]), "member_gid": _gid(r["member"]),
        "access_level": r["access_level"],
    },
    "sections": lambda r: {"name": r["name"], "project_gid": _gid(r["project"])},
    "tags": lambda r: {"name": r["name"], "workspace_gid": _gid(r["workspace"])},
    "tasks": lambda r: {
        "name": r["name"], "parent_gid": _gid(r["parent"]), "assignee_gid": _gid(r["assignee"]),
        "created_by_gid": _gid(r["created_by"]), "completed": r["completed"],
        "completed_at": _ts(r["completed_at"]), "completed_by_gid": _gid(r["completed_by"]),
        "resource_subtype": r["resource_subtype"], "approval_status": r.get("approval_status"),
        "created_at": _ts(r["created_at"]), "modified_at": _ts(r["modified_at"]),
        "due_on": _day(r["due_on"]), "num_subtasks": r["num_subtasks"],
        "permalink_url": r["permalink_url"],
    },
    "stories": lambda r: {
        "task_gid": _gid(r["target"]), "created_at": _ts(r["created_at"]),
        "created_by_gid": _gid(r["created_by"]), "type": r["type"],
        "resource_subtype": r["resource_subtype"],
        "old_section_gid": _gid(r.get("old_section")), "new_section_gid": _gid(r.get("new_section")),
        "assignee_gid": _gid(r.get("assignee")),
        "old_approval_status": r.get("old_approval_status"),
        "new_approval_status": r.get("new_approval_status"),
    },
}


# Ground-truth collections compared by tests of their own (test_custom_fields), not here.
COMPARED_ELSEWHERE = frozenset({"custom_fields", "custom_field_settings"})


def assert_matches_truth(tables: dict[str, pa.Table], truth: dict[str, list[dict]], excluded=frozenset()):
    """Every live object is in its table with the right values; nothing else is.

    ``excluded`` holds gids the simulator served malformed: they belong in the quarantine. A
    collection the truth holds and nothing compares fails here: a new table is never left unchecked.
    """
    unchecked = set(truth) - set(EXPECTED) - COMPARED_ELSEWHERE
    assert not unchecked, f"ground truth no table is compared with: {sorted(unchecked)} (add them to EXPECTED)"
    for table, expect in EXPECTED.items():
        want = {r["gid"]: expect(r) for r in truth[table] if r["gid"] not in excluded}
        got = _rows(tables[table])
        assert set(got) == set(want), (
            f"{table}: missing {sorted(set(want) - set(got))[:5]}, extra {sorted(set(got) - set(want))[:5]}"
        )
        for gid, values in want.items():
            actual = {k: got[gid][k] for k in values}
            assert actual == values, f"{table} {gid}: {actual} != {values}"

    live = [t for t in truth["tasks"] if t["gid"] not in excluded]
    memberships = {
        (t["gid"], _gid(m["project"]), _gid(m.get("section"))) for t in live for m in t["memberships"]
    }
    got = {(r["task_gid"], r["project_gid"], r["section_gid"]) for r in tables["task_memberships"].to_pylist()}
    assert got == memberships
    task_tags = {(t["gid"], tag["gid"]) for t in live for tag in t["tags"]}
    assert {(r["task_gid"], r["tag_gid"]) for r in tables["task_tags"].to_pylist()} == task_tags
