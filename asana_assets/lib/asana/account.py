"""Who a token acts for, as far as Asana's answers tell: the API names neither the account kind
nor the plan, so the audit log's answer (see ``lib/connections/coverage.py``) and the
connection's own declaration are the evidence. Kept apart from the probe so a report can word a
run's coverage from what its sync recorded, without asking Asana again."""

from __future__ import annotations

SERVICE_ACCOUNT, PERSON, UNKNOWN = "service account", "person", "unknown"
FIX = "connect with a service account on an Enterprise organisation"


def account_kind(answers: set[int], declared: str | None) -> tuple[str, str]:
    """The account kind and its evidence, strongest first: the audit log read, the connection's
    declaration, the audit log refused (403, whose meaning is the documented one, not observed);
    otherwise unknown."""
    if 200 in answers:
        return SERVICE_ACCOUNT, "it reads the audit log"
    if declared:
        return declared, "declared by the connection"
    if 403 in answers:
        return PERSON, "the audit log refused its token (403: no access), as it refuses all but service accounts"
    answered = ", ".join(str(status) for status in sorted(answers)) or "no workspace to ask"
    return UNKNOWN, f"the audit log answered {answered}, which does not say who the token acts for"
