"""Workflow states: what a project section means, from its name.

Asana has no status field; teams encode their workflow in section names. A section's *stage*
comes from the first default rule whose words appear in its name, unless configuration
overrides it for that section or for that name in that project. The canonical *state* follows
from the stage.

Names are compared word by word after folding case, accents and compatibility forms ("DÉPLOYÉ",
"Déployé" and "deploye" are one word) and splitting punctuation, emoji and camel case
("in-progress", "In_Progress" and "InProgress" are "in progress"). A rule's words do not count
where a negation precedes them ("Not approved", "Non-approved", "not yet done", "isn't done"):
the name is then read on without them, so "Not approved" and "Not done" fall to the default.
Fused negations ("Unapproved", "Undone", "Incomplete") are other words and match nothing.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

import pandas as pd

STAGES = ("BACKLOG", "TODO", "IN_PROGRESS", "IN_REVIEW", "APPROVED", "BLOCKED", "DONE")
STATE_OF_STAGE = {
    "BACKLOG": "OPEN",
    "TODO": "OPEN",
    "APPROVED": "OPEN",
    "IN_PROGRESS": "IN_PROGRESS",
    "IN_REVIEW": "IN_PROGRESS",
    "BLOCKED": "ON_HOLD",
    "DONE": "CLOSED",
}
DEFAULT_STAGE = "TODO"
# Entering a section of these stages means the work has begun (or is over): the implementation
# start of a change is its first entry into one of them, or its first completion.
IMPLEMENTATION_STAGES = ("IN_PROGRESS", "IN_REVIEW", "DONE")

# Checked in order; the first stage with a word that is not negated decides. Waiting, refusal
# and done words come first, so "Waiting for review" and "Approved/Rejected" are BLOCKED and
# "Done, reviewed" is DONE. Closing words (won't do, cancelled) are DONE: a closed ticket's
# section agrees with its completion, and an unapproved change closed there alarms rather than
# passes (override the section where rejected changes are parked). Words are written folded
# (lower case, no accents); a few French, Spanish, Portuguese and German ones are included.
RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("BLOCKED", ("blocked", "on hold", "hold", "waiting", "awaiting", "paused", "stalled", "rejected", "declined",
                 "denied", "disapproved", "refused", "changes requested",
                 "bloque", "bloquee", "bloqueado", "blockiert", "en attente", "en espera", "rejete", "rechazado",
                 "rejeitado", "abgelehnt")),
    ("DONE", ("done", "complete", "completed", "closed", "released", "deployed", "shipped", "resolved", "finished",
              "live", "archive", "archived", "implemented", "fixed", "merged", "delivered", "launched",
              "won't do", "wont do", "will not do", "won't fix", "wont fix", "cancelled", "canceled", "abandoned",
              "obsolete", "duplicate",
              "termine", "terminee", "fait", "deploye", "ferme", "hecho", "terminado", "completado", "cerrado",
              "desplegado", "concluido", "feito", "fechado", "erledigt", "fertig", "abgeschlossen", "geschlossen")),
    ("APPROVED", ("approved", "approuve", "aprobado", "aprovado", "genehmigt", "freigegeben")),
    ("IN_REVIEW", ("review", "in review", "reviewing", "under review", "qa", "testing", "test", "verification",
                   "verifying", "validation", "uat", "en revision", "em revisao", "in prufung")),
    ("IN_PROGRESS", ("in progress", "doing", "wip", "ongoing", "implementation", "implementing", "development",
                     "active", "started", "working", "building", "deploying", "releasing", "rolling out",
                     "en cours", "en progreso", "en curso", "en proceso", "em andamento", "em progresso",
                     "in bearbeitung", "in arbeit")),
    ("TODO", ("to do", "todo", "ready", "planned", "next", "up next", "not started", "open")),
    ("BACKLOG", ("backlog", "new", "triage", "icebox", "inbox", "ideas", "intake")),
)
# A negation is one of these words, or any word ending in n't ("isn't", "hasn't"), up to two
# of the FILLER words before the rule's words ("not yet done", "no longer blocked").
NEGATIONS = frozenset({"not", "no", "non", "un", "never", "cannot", "nicht", "kein", "nao", "pas"})
FILLER = frozenset({"yet", "fully", "been", "be", "being", "longer", "to", "really", "all", "completely", "encore"})
_PHRASES = tuple((stage, tuple(tuple(words.split()) for words in phrases)) for stage, phrases in RULES)
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'", "\u00b4": "'"})


def words(name: str | None) -> list[str]:
    """A section name as folded words: no case, accents, punctuation or emoji."""
    text = _CAMEL.sub(" ", (name or "").translate(_APOSTROPHES)).casefold()
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return _WORD.findall(text)


def _negation(tokens: list[str], at: int) -> str | None:
    """The negation that governs the words starting at ``at``, if any."""
    for back in range(at - 1, max(at - 4, -1), -1):
        token = tokens[back]
        if token in NEGATIONS or token.endswith("n't"):
            return token
        if token not in FILLER:
            return None
    return None


def classify(name: str | None) -> tuple[str, str]:
    """(stage, rule) for a section name; ``rule`` names the words that matched, or default
    (noting any words that a negation discarded)."""
    tokens = words(name)
    negated: list[str] = []
    for stage, phrases in _PHRASES:
        for phrase in phrases:
            size = len(phrase)
            for at in range(len(tokens) - size + 1):
                if tuple(tokens[at:at + size]) != phrase:
                    continue
                negation = _negation(tokens, at)
                if negation is None:
                    return stage, f"rule:{stage.lower()}:{' '.join(phrase)}"
                negated.append(f"{negation} {' '.join(phrase)}")
    return DEFAULT_STAGE, "default" + (f" (negated: {', '.join(dict.fromkeys(negated))})" if negated else "")


def workflow_states(
    sections: pd.DataFrame,
    section_overrides: Mapping[str, str] | None = None,
    project_overrides: Mapping[str, Mapping[str, str]] | None = None,
) -> pd.DataFrame:
    """One row per section with its stage, state and the rule or override that decided it.

    ``section_overrides`` maps a section gid to a stage; ``project_overrides`` maps a project
    gid to {section name: stage} (names compared case-insensitively).
    """
    section_overrides = {k: _stage(v) for k, v in (section_overrides or {}).items()}
    by_project = {
        (project, name.casefold()): _stage(stage)
        for project, names in (project_overrides or {}).items()
        for name, stage in names.items()
    }
    # One classification per distinct name: the rules run on names, not on rows.
    names = sections["name"].fillna("").drop_duplicates()
    decided = pd.DataFrame([classify(n) for n in names], columns=["stage", "rule"], index=names.values)
    out = pd.DataFrame({
        "section_gid": sections["gid"],
        "project_gid": sections["project_gid"],
        "name": sections["name"],
        "position": sections["position"],
    })
    matched = decided.reindex(sections["name"].fillna("").values)
    out["stage"], out["rule"] = matched["stage"].values, matched["rule"].values
    keys = pd.Series(list(zip(out["project_gid"], out["name"].fillna("").str.casefold())), index=out.index)
    project_stage = keys.map(by_project)
    has_project = project_stage.notna()
    out.loc[has_project, "stage"] = project_stage[has_project]
    out.loc[has_project, "rule"] = "override:project"
    section_stage = out["section_gid"].map(section_overrides)
    has_section = section_stage.notna()
    out.loc[has_section, "stage"] = section_stage[has_section]
    out.loc[has_section, "rule"] = "override:section"
    out["state"] = out["stage"].map(STATE_OF_STAGE)
    return out[["section_gid", "project_gid", "name", "position", "stage", "state", "rule"]]


def _stage(value: str) -> str:
    stage = value.strip().upper().replace(" ", "_")
    if stage not in STAGES:
        raise ValueError(f"unknown workflow stage {value!r}: use one of {', '.join(STAGES)}")
    return stage


CHANGE_PROJECT_PATTERN = r"\b(?:change|release|deploy)"


def is_change_project(names: pd.Series, pattern: str = CHANGE_PROJECT_PATTERN) -> pd.Series:
    """Project names matching the change pattern at a word start ("Deployments" yes, "Exchange" no)."""
    return names.fillna("").str.contains(pattern, case=False, regex=True)
