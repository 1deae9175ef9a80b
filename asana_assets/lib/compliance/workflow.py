"""Workflow states: what a project section means, from its name.

Asana has no status field; teams encode their workflow in section names. A section's *stage*
comes from the rules below, unless configuration overrides it for that section or for that name
in that project. The canonical *state* follows from the stage.

Names are read asymmetrically, so that a doubtful name cannot hide a violation. A name is
evidence of implementation when any of its words says work started, is under review, shipped
or finished, whatever else it says ("Deployed - waiting for verification" and "Done, awaiting
sign-off" are DONE). A name is evidence of an approval only when it says the approval was given
and nothing in it weakens that: a negation, request, wait, need, readiness, future or question
anywhere ("To be approved", "Approved?", "Not approved"), like the bare noun or verb
("Approval", "Approve"), makes it a name that waits on an approval: BLOCKED. A name with no
known stage word is UNKNOWN, never guessed: an override says where it sits.

Names are compared word by word after folding case, accents and compatibility forms ("DÉPLOYÉ",
"Déployé" and "deploye" are one word) and splitting punctuation and camel case ("in-progress",
"In_Progress" and "InProgress" are "in progress"); an emoji is a word of its own ("🚀" is
shipped). Other stage words do not count where a negation precedes them ("Not done", "never
deployed", "isn't done"): the name is read on without them. Fused negations ("Undone",
"Incomplete") are other words and match nothing.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

import pandas as pd

UNKNOWN = "UNKNOWN"  # the stage (and state) of a name no rule reads: never a guess
STAGES = ("BACKLOG", "TODO", "IN_PROGRESS", "IN_REVIEW", "APPROVED", "BLOCKED", "DONE", UNKNOWN)
STATE_OF_STAGE = {
    "BACKLOG": "OPEN",
    "TODO": "OPEN",
    "APPROVED": "OPEN",
    "IN_PROGRESS": "IN_PROGRESS",
    "IN_REVIEW": "IN_PROGRESS",
    "BLOCKED": "ON_HOLD",
    "DONE": "CLOSED",
    UNKNOWN: UNKNOWN,
}
# Entering a section of these stages means the work has begun (or is over): the implementation
# start of a change is its first entry into one of them, or its first completion.
IMPLEMENTATION_STAGES = ("IN_PROGRESS", "IN_REVIEW", "DONE")


def _forms(endings: str, *stems: str) -> tuple[str, ...]:
    """Each stem with each ending: the gender and number forms of a Romance participle."""
    return tuple(stem + ending for stem in stems for ending in endings.split(","))


ES_PT, FR, IT = "o,a,os,as", ",e,s,es", "o,a,i,e"
# Checked in order; the first stage with a word that is not negated decides. Implementation
# words come first, done before review before progress, so "Done, reviewed" and "Released (on
# hold for QA)" are DONE and "Approved - in progress" is IN_PROGRESS. Waiting and refusal words
# come before approval words ("Approved/Rejected" is BLOCKED). Closing words (won't do,
# cancelled) are DONE: a closed ticket's section agrees with its completion, and an unapproved
# change closed there alarms rather than passes (override the section where rejected changes are
# parked). A check mark alone is DONE, but beside words it only confirms them ("Approved ✅").
# Words are written as teams write them and folded like names.
RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("DONE", ("done", "complete", "completed", "closed", "released", "deployed", "shipped", "resolved", "finished",
              "live", "production", "prod", "rolled out", "archive", "archived", "implemented", "fixed", "merged",
              "delivered", "launched", "🚀", "🏁",
              "won't do", "wont do", "will not do", "won't fix", "wont fix", "cancelled", "canceled", "abandoned",
              "obsolete", "duplicate",
              *_forms(ES_PT, "hech", "terminad", "completad", "cerrad", "desplegad", "implementad", "finalizad",
                      "cancelad", "entregad", "publicad", "resuelt", "concluíd", "feit", "fechad", "implantad",
                      "resolvid"),
              "producción", "produção", "entregue", "entregues",
              *_forms(FR, "terminé", "fait", "déployé", "livré", "fermé", "clôturé", "implémenté", "résolu",
                      "annulé"),
              "erledigt", "fertig", "abgeschlossen", "geschlossen", "umgesetzt", "implementiert", "ausgerollt",
              "ausgeliefert", "veröffentlicht", "behoben", "storniert", "produktion",
              *_forms(IT, "completat", "chius", "rilasciat", "fatt", "implementat", "terminat", "conclus",
                      "risolt", "annullat", "consegnat"),
              "produzione")),
    ("IN_REVIEW", ("review", "reviews", "reviewed", "in review", "reviewing", "under review", "qa", "testing", "test",
                   "tests", "verification", "verifying", "validation", "uat", "postmortem", "post-mortem",
                   "👀", "🔍", "🔎", "🧪",
                   "revisión", "pruebas", "revue", "recette", "prüfung", "abnahme", "revisão", "teste",
                   "homologação", "revisione", "collaudo")),
    ("IN_PROGRESS", ("in progress", "doing", "wip", "ongoing", "implementation", "implementing", "development",
                     "in dev", "active", "started", "working", "building", "deploying", "releasing", "rolling out",
                     "provisioning", "investigating", "mitigated", "contracting", "underway", "under way", "🚧", "🏗️", "🔨",
                     "en progreso", "en curso", "en proceso", "en desarrollo", "en ejecución", "en cours",
                     "en développement", "in Bearbeitung", "in Arbeit", "in Umsetzung", "in Entwicklung",
                     "em andamento", "em progresso", "em desenvolvimento", "em execução", "em curso", "in corso",
                     "in lavorazione", "in sviluppo")),
    ("BLOCKED", ("blocked", "on hold", "hold", "wait", "waiting", "await", "awaiting", "pending", "paused", "stalled",
                 "rejected", "declined", "denied", "disapproved", "unapproved", "refused", "changes requested",
                 "approval", "approvals", "approve", "⏳", "⏸️", "🛑", "⛔", "🚫",
                 *_forms(ES_PT, "bloquead", "rechazad", "rejeitad"), "en espera", "esperando", "pendiente",
                 "pendientes", "aprobación", "aprobar", "aguardando", "pendente", "pendentes", "aprovação", "aprovar",
                 *_forms(FR, "bloqué", "rejeté", "refusé"), "en attente", "approbation", "approuver",
                 "blockiert", "wartet", "wartend", "ausstehend", "abgelehnt", "Genehmigung", "genehmigen", "Freigabe",
                 *_forms(IT, "bloccat", "rifiutat", "respint"), "in attesa", "approvazione", "approvare")),
    # Only where nothing weakens them (see UNSETTLED); otherwise these words make the name BLOCKED.
    ("APPROVED", ("approved", *_forms(ES_PT, "aprobad", "aprovad"), *_forms(FR, "approuvé"),
                  "genehmigt", "freigegeben", *_forms(IT, "approvat"))),
    ("BACKLOG", ("backlog", "new", "triage", "icebox", "inbox", "idea", "ideas", "intake", "📥", "🆕", "💡",
                 "nuevo", "nueva", "nouveau", "nouvelle", "neu", "novo", "nova", "nuovo", "nuova")),
    ("TODO", ("to do", "todo", "ready", "planned", "next", "up next", "not started", "not yet started", "open",
              "request", "requests", "requested", "📋", "📝",
              "por hacer", "à faire", "zu erledigen", "offen", "a fazer", "da fare")),
    ("DONE", ("✅", "✔️", "☑️", "✓")),
)
# A negation is one of these words, or any word ending in n't ("isn't", "hasn't"), up to two
# of the FILLER words before the rule's words ("not yet done", "no longer blocked").
NEGATIONS = frozenset({"not", "no", "non", "un", "never", "without", "cannot", "nicht", "kein", "keine", "nie",
                       "nao", "pas", "jamais", "sans", "sin", "sem", "nunca", "senza", "ohne"})
FILLER = frozenset({"yet", "fully", "been", "be", "being", "longer", "to", "really", "all", "completely", "encore"})
# Besides negations and the waiting words above, these keep an approval word from saying the
# approval was given: a future, a need, a request or a readiness ("To be approved", "Needs to
# be approved", "Ready to be approved").
UNSETTLED = frozenset({  # written folded, like NEGATIONS
    "be", "yet", "will", "shall", "must", "should", "need", "needs", "needed", "needing", "require", "requires",
    "required", "request", "requests", "requested", "ready",
    "ser", "falta", "necesita", "requiere", "solicitado", "solicitada", "solicitud", "listo", "lista",
    "etre", "doit", "pret", "prete", "demande", "demandee", "requis",
    "werden", "wird", "muss", "soll", "noch", "bereit", "angefragt", "beantragt",
    "precisa", "pronto", "pronta",
    "essere", "deve", "richiesto", "richiesta",
})
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*|[^\w\s]")  # a word, or one other visible character
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'", "\u00b4": "'"})


def words(name: str | None) -> list[str]:
    """A section name as folded words and emoji: no case, accents or punctuation."""
    text = _CAMEL.sub(" ", (name or "").translate(_APOSTROPHES)).casefold()
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    # Emoji are symbols ("So"); their variation selectors and joiners are marks, dropped.
    return [t for t in _TOKEN.findall(text) if t[0].isalnum() or unicodedata.category(t) == "So"]


_PHRASES = tuple((stage, tuple(tuple(words(phrase)) for phrase in phrases)) for stage, phrases in RULES)


def _negation(tokens: list[str], at: int) -> str | None:
    """The negation that governs the words starting at ``at``, if any."""
    for back in range(at - 1, max(at - 4, -1), -1):
        token = tokens[back]
        if token in NEGATIONS or token.endswith("n't"):
            return token
        if token not in FILLER:
            return None
    return None


def _weakener(name: str, tokens: list[str]) -> str | None:
    """What anywhere in the name keeps an approval word from saying the approval was given."""
    if "?" in name or "¿" in name:
        return "?"
    return next((t for t in tokens if t in NEGATIONS or t in UNSETTLED or t.endswith("n't")), None)


def classify(name: str | None) -> tuple[str, str]:
    """(stage, rule) for a section name; ``rule`` names the words that matched (and what weakened
    an approval word), or is ``unmapped`` (noting any words that a negation discarded)."""
    tokens = words(name)
    negated: list[str] = []
    for stage, phrases in _PHRASES:
        for phrase in phrases:
            size, text = len(phrase), " ".join(phrase)
            for at in range(len(tokens) - size + 1):
                if tuple(tokens[at:at + size]) != phrase:
                    continue
                if stage == "APPROVED":
                    weakener = _weakener(name or "", tokens)
                    if weakener is None:
                        return stage, f"rule:approved:{text}"
                    return "BLOCKED", f"rule:blocked:{text} (weakened: {weakener})"
                negation = _negation(tokens, at)
                if negation is None:
                    return stage, f"rule:{stage.lower()}:{text}"
                negated.append(f"{negation} {text}")
    return "UNKNOWN", "unmapped" + (f" (negated: {', '.join(dict.fromkeys(negated))})" if negated else "")


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
    """An override's stage: a known one, since an override is there to say where a section sits."""
    stage = value.strip().upper().replace(" ", "_")
    known = [s for s in STAGES if s != "UNKNOWN"]
    if stage not in known:
        raise ValueError(f"unknown workflow stage {value!r}: an override names one of {', '.join(known)}")
    return stage


CHANGE_PROJECT_PATTERN = r"\b(?:change|release|deploy)"


def is_change_project(names: pd.Series, pattern: str = CHANGE_PROJECT_PATTERN) -> pd.Series:
    """Project names matching the change pattern at a word start ("Deployments" yes, "Exchange" no)."""
    return names.fillna("").str.contains(pattern, case=False, regex=True)
