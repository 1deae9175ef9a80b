"""Workflow states: what a project section means, from its name.

Asana has no status field; teams encode their workflow in section names. A section's *stage*
comes from the first default rule whose words appear in its name (case-insensitive, whole
words, anywhere), unless configuration overrides it for that section or for that name in that
project. The canonical *state* follows from the stage.
"""

from __future__ import annotations

import re
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

# Checked in order; the first match decides. Waiting and done words come first so that
# "Waiting for review" is BLOCKED and "Done, reviewed" is DONE.
RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("BLOCKED", ("blocked", "on hold", "hold", "waiting", "paused", "stalled")),
    ("DONE", ("done", "complete", "completed", "closed", "released", "deployed", "shipped",
              "resolved", "finished", "live", "archive", "archived")),
    ("APPROVED", ("approved",)),
    ("IN_REVIEW", ("review", "in review", "qa", "testing", "test", "verification", "uat")),
    ("IN_PROGRESS", ("in progress", "doing", "wip", "ongoing", "implementation",
                     "implementing", "development", "active")),
    ("TODO", ("to do", "todo", "ready", "planned", "next", "up next", "not started", "open")),
    ("BACKLOG", ("backlog", "new", "triage", "icebox", "inbox", "ideas", "intake")),
)
_PATTERNS = tuple(
    (stage, re.compile(r"\b(?:" + "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in words) + r")\b", re.I))
    for stage, words in RULES
)


def classify(name: str | None) -> tuple[str, str]:
    """(stage, rule) for a section name; ``rule`` names the words that matched, or default."""
    for stage, pattern in _PATTERNS:
        match = pattern.search(name or "")
        if match:
            return stage, f"rule:{stage.lower()}:{match.group(0).lower()}"
    return DEFAULT_STAGE, "default"


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
