"""The compliance resource: what counts as a change, how sections map to stages, the monitors' parameters."""


from __future__ import annotations

import dagster as dg
from pydantic import Field

from asana_assets.lib.compliance.monitors import MonitorParams
from asana_assets.lib.compliance.tickets import CHANGE_TICKET_TYPES, CHANGE_TYPE_PATTERN
from asana_assets.lib.compliance.workflow import CHANGE_PROJECT_PATTERN


class ComplianceResource(dg.ConfigurableResource, MonitorParams):
    """What the compliance layer treats as a change, how sections map to stages, and the
    monitors' parameters (see MonitorParams for those and their defaults)."""

    as_of: str | None = Field(default=None, description="Evaluate as of this ISO time (default: the run's start)")
    change_projects: list[str] | None = Field(
        default=None, description="Change projects by gid or name; unset: names matching change_project_pattern"
    )
    change_project_pattern: str = Field(
        default=CHANGE_PROJECT_PATTERN, description="Regex (case-insensitive) for change project names"
    )
    ticket_type_field: str | None = Field(
        default=None, description="The enum or multi-enum custom field that types tickets, by gid or name; unset: "
                                  "every enum and multi-enum field whose name has the word 'type'")
    change_ticket_types: list[str] = Field(
        default_factory=lambda: list(CHANGE_TICKET_TYPES),
        description="Ticket types (case-insensitive) that make a ticket a change, wherever it sits")
    change_type_pattern: str = Field(
        default=CHANGE_TYPE_PATTERN, description="Regex (case-insensitive): type options it matches make a change "
                                                 "too (default: a word starting 'change'); empty: the list alone")
    section_overrides: dict[str, str] = Field(default_factory=dict, description="Section gid -> workflow stage")
    project_section_overrides: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="Project gid -> {section name -> workflow stage}"
    )
    remediation_enabled: bool = Field(
        default=False, description="Open an Asana task per alarm in remediation_project_gid (needs tasks:write, "
                                   "stories:write); never for the demo"
    )
    remediation_project_gid: str | None = Field(default=None, description="The project findings are filed in")
    remediation_assignee_gid: str | None = Field(default=None, description="Who findings' tasks are assigned to")

    def params(self) -> MonitorParams:
        return MonitorParams(**{name: getattr(self, name) for name in MonitorParams.model_fields})

    def describe(self) -> dict:
        """Every setting, for the evidence pack's manifest."""
        return {name: getattr(self, name) for name in type(self).model_fields}
