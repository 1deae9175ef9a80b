"""Section names to workflow stages: a table of names as real workspaces write them, each with
the stage written by hand, and the overrides that win over the rules.

The table is grouped by what a name is evidence of, since the rules read names asymmetrically:
a name that says work started, shipped or finished is implementation whatever else it says; a
name is an approval only when nothing in it weakens the approval; a name with no stage word is
UNKNOWN."""

from __future__ import annotations

import pandas as pd
import pytest

from asana_assets.lib.compliance.workflow import IMPLEMENTATION_STAGES, STATE_OF_STAGE, classify, words, workflow_states

# Moving a change into these sections counts as its approval.
APPROVALS = [
    ("Approved", "APPROVED"),
    ("APPROVED ✅", "APPROVED"),  # a check mark beside words only confirms them
    ("Approved ✅", "APPROVED"),
    ("Pre-approved", "APPROVED"),
    ("CAB approved", "APPROVED"),
    ("Approved for release", "APPROVED"),
    ("Aprobado", "APPROVED"),
    ("Aprobada", "APPROVED"),
    ("Aprobados", "APPROVED"),
    ("Aprobadas", "APPROVED"),
    ("Approuvé", "APPROVED"),
    ("Approuvée", "APPROVED"),
    ("Approuvés", "APPROVED"),
    ("Approuvées", "APPROVED"),
    ("Genehmigt", "APPROVED"),
    ("Freigegeben", "APPROVED"),
    ("Aprovado", "APPROVED"),
    ("Aprovada", "APPROVED"),
    ("Approvato", "APPROVED"),
    ("Approvata", "APPROVED"),
    ("Approvati", "APPROVED"),
    ("Approvate", "APPROVED"),
]
# Names that speak of an approval without saying it was given: they wait on one.
NOT_APPROVALS = [
    ("To be approved", "BLOCKED"),
    ("Yet to be approved", "BLOCKED"),
    ("Needs to be approved", "BLOCKED"),
    ("Ready to be approved", "BLOCKED"),
    ("Awaiting approval", "BLOCKED"),
    ("Approval pending", "BLOCKED"),
    ("Pending approval", "BLOCKED"),
    ("Approval requested", "BLOCKED"),
    ("Needs approval", "BLOCKED"),
    ("Ready for approval", "BLOCKED"),
    ("Approval", "BLOCKED"),  # the step, not its result
    ("To approve", "BLOCKED"),
    ("À approuver", "BLOCKED"),
    ("Approved?", "BLOCKED"),
    ("Approved, ready to deploy", "BLOCKED"),
    ("Approved - not done", "BLOCKED"),  # a negation anywhere weakens the approval
    ("Approved/Rejected", "BLOCKED"),
    ("Aprobado - pendiente", "BLOCKED"),
    ("Not approved", "BLOCKED"),
    ("NOT APPROVED", "BLOCKED"),
    ("Unapproved", "BLOCKED"),
    ("Non-approved", "BLOCKED"),
    ("Non approved", "BLOCKED"),
    ("Not yet approved", "BLOCKED"),
    ("Non approuvé", "BLOCKED"),
    ("No aprobado", "BLOCKED"),
    ("Nicht genehmigt", "BLOCKED"),
]
# Names that say work started, is under review, shipped or finished: entering one starts
# the implementation of a change.
IMPLEMENTATION = [
    # whatever else the name says
    ("Deployed - waiting for verification", "DONE"),  # done words come before review words
    ("Done, awaiting sign-off", "DONE"),
    ("Released (on hold for QA)", "DONE"),
    ("Done, reviewed", "DONE"),
    ("Approved - in progress", "IN_PROGRESS"),
    ("Waiting for review", "IN_REVIEW"),
    ("Ready for review", "IN_REVIEW"),
    ("Not approved, in review", "IN_REVIEW"),
    ("Not done yet - in progress", "IN_PROGRESS"),
    # English
    ("In Progress", "IN_PROGRESS"),
    ("in-progress", "IN_PROGRESS"),
    ("In_Progress", "IN_PROGRESS"),
    ("InProgress", "IN_PROGRESS"),
    ("Implementation", "IN_PROGRESS"),
    ("Doing", "IN_PROGRESS"),
    ("Provisioning", "IN_PROGRESS"),
    ("Investigating", "IN_PROGRESS"),
    ("Contracting", "IN_PROGRESS"),
    ("In Review", "IN_REVIEW"),
    ("QA", "IN_REVIEW"),
    ("UAT / Testing", "IN_REVIEW"),
    ("Postmortem", "IN_REVIEW"),
    ("Done", "DONE"),
    ("Done ✅", "DONE"),
    ("✅ DONE", "DONE"),
    ("ＤＯＮＥ", "DONE"),  # full-width letters
    ("Deployed", "DONE"),
    ("Released to prod", "DONE"),
    ("Implemented", "DONE"),
    ("Shipped!", "DONE"),
    ("Shipped", "DONE"),
    ("Live", "DONE"),
    ("Production", "DONE"),
    ("In production", "DONE"),
    ("Rolled out", "DONE"),
    ("Mitigated", "IN_PROGRESS"),  # an incident mitigated is not closed yet
    ("Closed", "DONE"),
    ("Wont do", "DONE"),
    ("Won't do", "DONE"),
    ("Won\u2019t fix", "DONE"),
    ("Cancelled", "DONE"),
    # Spanish
    ("Implementado", "DONE"),
    ("Implementada", "DONE"),
    ("Implementados", "DONE"),
    ("Implementadas", "DONE"),
    ("Completado", "DONE"),
    ("Completada", "DONE"),
    ("Cerrado", "DONE"),
    ("Cerrada", "DONE"),
    ("Desplegado", "DONE"),
    ("Desplegada", "DONE"),
    ("Terminado", "DONE"),
    ("Terminada", "DONE"),
    ("Hecho", "DONE"),
    ("Hecha", "DONE"),
    ("En producción", "DONE"),
    ("En progreso", "IN_PROGRESS"),
    ("En curso", "IN_PROGRESS"),
    # French
    ("Déployé", "DONE"),
    ("DÉPLOYÉ", "DONE"),
    ("Déployée", "DONE"),
    ("Déployés", "DONE"),
    ("Livré", "DONE"),
    ("Livrée", "DONE"),
    ("Livrés", "DONE"),
    ("Terminé", "DONE"),
    ("Terminée", "DONE"),
    ("Terminés", "DONE"),
    ("Fermé", "DONE"),
    ("Fermée", "DONE"),
    ("Fermés", "DONE"),
    ("En cours", "IN_PROGRESS"),
    ("En production", "DONE"),
    ("Mis en production", "DONE"),
    # German
    ("Umgesetzt", "DONE"),
    ("In Umsetzung", "IN_PROGRESS"),
    ("Erledigt", "DONE"),
    ("Fertig", "DONE"),
    ("Abgeschlossen", "DONE"),
    ("In Bearbeitung", "IN_PROGRESS"),
    ("In Produktion", "DONE"),
    ("Ausgerollt", "DONE"),
    # Portuguese
    ("Concluído", "DONE"),
    ("Concluída", "DONE"),
    ("Implantado", "DONE"),
    ("Implantada", "DONE"),
    ("Em produção", "DONE"),
    ("Em andamento", "IN_PROGRESS"),
    # Italian
    ("Completato", "DONE"),
    ("Completata", "DONE"),
    ("Chiuso", "DONE"),
    ("Chiusa", "DONE"),
    ("Rilasciato", "DONE"),
    ("Rilasciata", "DONE"),
    ("In corso", "IN_PROGRESS"),
    ("In produzione", "DONE"),
    ("Fatto", "DONE"),
    ("Fatta", "DONE"),
    ("Implementato", "DONE"),
    ("Implementata", "DONE"),
    # emoji
    ("🚀", "DONE"),
    ("✅", "DONE"),
    ("✔️", "DONE"),
    ("☑️", "DONE"),
    ("🏁", "DONE"),
    ("🚧", "IN_PROGRESS"),
    ("🚧 WIP", "IN_PROGRESS"),
    ("🏗️", "IN_PROGRESS"),
    ("🔨", "IN_PROGRESS"),
    ("👀", "IN_REVIEW"),
    ("🔍", "IN_REVIEW"),
    ("🧪", "IN_REVIEW"),
]
# Names of stages before or beside the work: neither approval nor implementation.
WAITING = [
    ("Backlog", "BACKLOG"),
    ("New", "BACKLOG"),
    ("Triage", "BACKLOG"),
    ("Intake", "BACKLOG"),
    ("New Requests", "BACKLOG"),
    ("📥", "BACKLOG"),
    ("🆕", "BACKLOG"),
    ("💡 Ideas", "BACKLOG"),
    ("To Do", "TODO"),
    ("To-Do", "TODO"),
    ("TODO", "TODO"),
    ("ToDo", "TODO"),
    ("Ready", "TODO"),
    ("Open", "TODO"),
    ("Requested", "TODO"),
    ("Not started", "TODO"),
    ("Not yet started", "TODO"),
    ("📋", "TODO"),
    ("📝 Planned", "TODO"),
    ("Blocked", "BLOCKED"),
    ("On hold", "BLOCKED"),
    ("Waiting", "BLOCKED"),
    ("Waiting on vendor", "BLOCKED"),
    ("Rejected", "BLOCKED"),
    ("Declined", "BLOCKED"),
    ("Denied", "BLOCKED"),
    ("Changes requested", "BLOCKED"),
    ("Rejeté", "BLOCKED"),
    ("En attente", "BLOCKED"),
    ("⏳", "BLOCKED"),
    ("⏸️ Paused", "BLOCKED"),
    ("🛑", "BLOCKED"),
    ("⛔", "BLOCKED"),
    ("🚫", "BLOCKED"),
]
# No stage word that stands: nothing says where the section sits.
UNMAPPED = [
    ("Foo bar", "UNKNOWN"),
    ("Untitled section", "UNKNOWN"),  # Asana's default name
    ("Not done", "UNKNOWN"),
    ("NOT DONE", "UNKNOWN"),
    ("Undone", "UNKNOWN"),
    ("Un-done", "UNKNOWN"),
    ("Isn't done", "UNKNOWN"),
    ("Incomplete", "UNKNOWN"),
    ("Not deployed", "UNKNOWN"),
    ("Never deployed", "UNKNOWN"),
    ("Non-prod", "UNKNOWN"),
    ("No longer blocked", "UNKNOWN"),
    ("Not in progress", "UNKNOWN"),
    ("No review", "UNKNOWN"),
    ("Nicht erledigt", "UNKNOWN"),
    # words inside other words do not match
    ("Reopened", "UNKNOWN"),
    ("Latest", "UNKNOWN"),
    ("Inactive", "UNKNOWN"),
    ("Exchange", "UNKNOWN"),
    ("", "UNKNOWN"),
    (None, "UNKNOWN"),
]
NAMES = APPROVALS + NOT_APPROVALS + IMPLEMENTATION + WAITING + UNMAPPED


@pytest.mark.parametrize(("name", "stage"), NAMES)
def test_a_section_name_gives_its_stage(name, stage):
    assert classify(name)[0] == stage


def test_the_table_is_large_and_covers_every_stage():
    assert len(NAMES) >= 200
    assert {stage for _, stage in NAMES} == set(STATE_OF_STAGE)


def test_implementation_stages_are_the_ones_that_start_the_work():
    assert set(IMPLEMENTATION_STAGES) == {"IN_PROGRESS", "IN_REVIEW", "DONE"}
    assert all(classify(name)[0] in IMPLEMENTATION_STAGES for name, _ in IMPLEMENTATION)
    others = NOT_APPROVALS + WAITING + UNMAPPED
    assert not [name for name, _ in others if classify(name)[0] in IMPLEMENTATION_STAGES + ("APPROVED",)]


def test_unknown_is_its_own_state():
    assert STATE_OF_STAGE["UNKNOWN"] == "UNKNOWN"


def test_words_keep_emoji_and_drop_their_modifiers():
    assert words("✔️ Done, 👨\u200d💻 in-progress!") == ["✔", "done", "👨", "💻", "in", "progress"]


@pytest.mark.parametrize(("name", "rule"), [
    ("In Progress", "rule:in_progress:in progress"),
    ("Déployé", "rule:done:deploye"),
    ("Approved ✅", "rule:approved:approved"),
    ("✅", "rule:done:✅"),
    ("Requested", "rule:todo:requested"),
    ("To be approved", "rule:blocked:approved (weakened: be)"),
    ("Approved?", "rule:blocked:approved (weakened: ?)"),
    ("Not approved", "rule:blocked:approved (weakened: not)"),
    ("Non-approved", "rule:blocked:approved (weakened: non)"),
    ("Foo bar", "unmapped"),
    ("Isn't done", "unmapped (negated: isn't done)"),
    ("Never deployed", "unmapped (negated: never deployed)"),
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
    assert states["stage"].to_dict() == {"s1": "BLOCKED", "s2": "APPROVED", "s3": "UNKNOWN", "s4": "BLOCKED"}
    assert states["rule"].to_dict() == {
        "s1": "rule:blocked:approved (weakened: not)", "s2": "override:project", "s3": "unmapped",
        "s4": "override:section",
    }
    assert states["state"].to_dict() == {"s1": "ON_HOLD", "s2": "OPEN", "s3": "UNKNOWN", "s4": "ON_HOLD"}


@pytest.mark.parametrize("stage", ["FINISHED", "unknown", "UNKNOWN"])
def test_an_override_must_name_a_known_stage(stage):
    sections = pd.DataFrame({"gid": ["s1"], "project_gid": ["p1"], "name": ["Done"], "position": [0]})
    with pytest.raises(ValueError, match="unknown workflow stage"):
        workflow_states(sections, section_overrides={"s1": stage})
    with pytest.raises(ValueError, match="unknown workflow stage"):
        workflow_states(sections, project_overrides={"p1": {"Done": stage}})
