"""Section names to workflow stages: a table of names as real workspaces write them, each with
the stage written by hand, and the overrides that win over the rules."""

from __future__ import annotations

import pandas as pd
import pytest

from asana_assets.lib.compliance.workflow import STATE_OF_STAGE, classify, workflow_states

# (section name, stage). Negated stage words never give their stage; "default" is TODO.
NAMES = [
    # plain English workflows
    ("Backlog", "BACKLOG"),
    ("New", "BACKLOG"),
    ("Triage", "BACKLOG"),
    ("To Do", "TODO"),
    ("To-Do", "TODO"),
    ("TODO", "TODO"),
    ("ToDo", "TODO"),
    ("Ready", "TODO"),
    ("Not started", "TODO"),
    ("Not yet started", "TODO"),  # "started" negated, and no other word matches
    ("Requested", "TODO"),  # no rule: the default
    ("Approved", "APPROVED"),
    ("APPROVED ✅", "APPROVED"),
    ("Pre-approved", "APPROVED"),
    ("Approved - not done", "APPROVED"),  # "done" negated, "approved" stands
    ("In Progress", "IN_PROGRESS"),
    ("in-progress", "IN_PROGRESS"),
    ("In_Progress", "IN_PROGRESS"),
    ("InProgress", "IN_PROGRESS"),
    ("🚧 WIP", "IN_PROGRESS"),
    ("Implementation", "IN_PROGRESS"),
    ("Doing", "IN_PROGRESS"),
    ("Not done yet - in progress", "IN_PROGRESS"),
    ("In Review", "IN_REVIEW"),
    ("QA", "IN_REVIEW"),
    ("UAT / Testing", "IN_REVIEW"),
    ("Ready for review", "IN_REVIEW"),
    ("Done", "DONE"),
    ("Done ✅", "DONE"),
    ("✅ DONE", "DONE"),
    ("ＤＯＮＥ", "DONE"),  # full-width letters
    ("Deployed", "DONE"),
    ("Released to prod", "DONE"),
    ("Implemented", "DONE"),
    ("Shipped!", "DONE"),
    ("Closed", "DONE"),
    ("Wont do", "DONE"),
    ("Won't do", "DONE"),
    ("Won\u2019t fix", "DONE"),
    ("Cancelled", "DONE"),
    ("Done, reviewed", "DONE"),  # done words come before review words
    ("Blocked", "BLOCKED"),
    ("On hold", "BLOCKED"),
    ("Waiting for review", "BLOCKED"),
    ("Waiting on vendor", "BLOCKED"),
    ("Awaiting approval", "BLOCKED"),
    ("Rejected", "BLOCKED"),
    ("Declined", "BLOCKED"),
    ("Denied", "BLOCKED"),
    ("Changes requested", "BLOCKED"),
    ("Approved/Rejected", "BLOCKED"),  # refusal words come before approval words
    # negations: the stage word does not count
    ("Not approved", "TODO"),
    ("NOT APPROVED", "TODO"),
    ("Unapproved", "TODO"),
    ("Non-approved", "TODO"),
    ("Non approved", "TODO"),
    ("Not yet approved", "TODO"),
    ("Not done", "TODO"),
    ("NOT DONE", "TODO"),
    ("Undone", "TODO"),
    ("Un-done", "TODO"),
    ("Isn't done", "TODO"),
    ("Incomplete", "TODO"),
    ("Not deployed", "TODO"),
    ("No longer blocked", "TODO"),
    ("Not in progress", "TODO"),
    ("No review", "TODO"),
    ("Not approved, in review", "IN_REVIEW"),  # the next stage word still counts
    # other languages, accents and casing
    ("Déployé", "DONE"),
    ("DÉPLOYÉ", "DONE"),
    ("Terminé", "DONE"),
    ("Erledigt", "DONE"),
    ("Nicht erledigt", "TODO"),
    ("Hecho", "DONE"),
    ("En cours", "IN_PROGRESS"),
    ("In Bearbeitung", "IN_PROGRESS"),
    ("Approuvé", "APPROVED"),
    ("Non approuvé", "TODO"),
    ("No aprobado", "TODO"),
    ("Genehmigt", "APPROVED"),
    ("Rejeté", "BLOCKED"),
    ("En attente", "BLOCKED"),
    # words inside other words do not match
    ("Reopened", "TODO"),
    ("Latest", "TODO"),
    ("Inactive", "TODO"),
    ("Exchange", "TODO"),
    ("", "TODO"),
    (None, "TODO"),
]


@pytest.mark.parametrize(("name", "stage"), NAMES)
def test_a_section_name_gives_its_stage(name, stage):
    assert classify(name)[0] == stage


def test_the_table_is_large_and_covers_every_stage():
    assert len(NAMES) >= 40
    assert {stage for _, stage in NAMES} == set(STATE_OF_STAGE)


@pytest.mark.parametrize(("name", "rule"), [
    ("In Progress", "rule:in_progress:in progress"),
    ("Déployé", "rule:done:deploye"),
    ("Requested", "default"),
    ("Not approved", "default (negated: not approved)"),
    ("Non-approved", "default (negated: non approved)"),
    ("Isn't done", "default (negated: isn't done)"),
])
def test_the_rule_says_what_decided(name, rule):
    assert classify(name)[1] == rule


def test_overrides_win_over_the_rules_and_over_negation():
    sections = pd.DataFrame({
        "gid": ["s1", "s2", "s3", "s4"],
        "project_gid": ["p1", "p1", "p2", "p2"],
        "name": ["Not approved", "CAB ok", "CAB ok", "Done"],
        "position": [0, 1, 0, 1],
    })
    states = workflow_states(
        sections, section_overrides={"s4": "blocked"}, project_overrides={"p1": {"cab OK": "APPROVED"}},
    ).set_index("section_gid")
    assert states["stage"].to_dict() == {"s1": "TODO", "s2": "APPROVED", "s3": "TODO", "s4": "BLOCKED"}
    assert states["rule"].to_dict() == {
        "s1": "default (negated: not approved)", "s2": "override:project", "s3": "default", "s4": "override:section",
    }
    assert states["state"].to_dict() == {"s1": "OPEN", "s2": "OPEN", "s3": "OPEN", "s4": "ON_HOLD"}


def test_an_unknown_override_stage_is_refused():
    sections = pd.DataFrame({"gid": ["s1"], "project_gid": ["p1"], "name": ["Done"], "position": [0]})
    with pytest.raises(ValueError, match="unknown workflow stage"):
        workflow_states(sections, section_overrides={"s1": "FINISHED"})
