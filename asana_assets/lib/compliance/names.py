"""Names and links for what the monitors judge, so a finding reads without a gid lookup.

People are named ``Name <email>`` (the name or the email alone when only one is known, ``user
<gid>`` when the sync has neither), projects, teams and workspaces by their names. Links point
at the Asana object: a task's permalink, a project's permalink (else its list view), a user's
profile. Built once per run from the tables; every method maps a whole column at once.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import pyarrow.compute as pc

from asana_assets.lib.compliance.tickets import group_lists, lookup

APP_URL = "https://app.asana.com/0"


def _table(t: Mapping[str, pd.DataFrame], name: str, columns: list[str]) -> pd.DataFrame:
    """A table's columns, unique by gid; a table not given (or a column it lacks) is empty."""
    frame = t.get(name)
    if frame is None:
        frame = pd.DataFrame(columns=columns)
    return frame.reindex(columns=columns).astype(object).drop_duplicates("gid").set_index("gid")


def profile_url(user_gids: pd.Series) -> pd.Series:
    """A user's profile in Asana."""
    return (APP_URL + "/profile/" + user_gids.astype(object)).where(user_gids.notna(), None)


def project_url(project_gids: pd.Series) -> pd.Series:
    """A project's list view in Asana."""
    return (APP_URL + "/" + project_gids.astype(object) + "/list").where(project_gids.notna(), None)


def quoted(names: pd.Series, gids: pd.Series) -> pd.Series:
    """``"name"``, or the gid when the name is unknown or empty."""
    names = names.astype(object).where(names.astype(object).fillna("").astype(str).str.strip() != "")
    return ('"' + names + '"').fillna(gids.astype(object))


class Directory:
    """The run's people, workspaces, teams and projects by gid.

    ``former`` names people this run's ``users`` table no longer has (an earlier evidence pack's
    ``users.csv``): a user removed from every workspace leaves the users list, yet is the one an
    offboarding finding must name."""

    def __init__(self, t: Mapping[str, pd.DataFrame], former: pd.DataFrame | None = None) -> None:
        users = _table(t, "users", ["gid", "name", "email"])
        self.current = users.index
        if former is not None and len(former):
            earlier = _table({"users": former}, "users", ["gid", "name", "email"])
            users = pd.concat([users, earlier[~earlier.index.isin(users.index)]])
        name = users["name"].where(users["name"].fillna("").astype(str).str.strip() != "")
        email = users["email"].where(users["email"].fillna("").astype(str).str.strip() != "")
        self.emails = email
        self.user_names = name
        self.labels = (name + " <" + email + ">").fillna(name).fillna(email).astype("str")  # Arrow-backed text
        self.workspaces = _table(t, "workspaces", ["gid", "name"])["name"]
        teams = _table(t, "teams", ["gid", "name", "permalink_url"])
        self.teams, self.team_links = teams["name"], teams["permalink_url"]
        projects = _table(t, "projects", ["gid", "name", "permalink_url"])
        self.projects, self.project_links = projects["name"], projects["permalink_url"]

    def person(self, gids: pd.Series) -> pd.Series:
        """``Name <email>`` per user gid; ``user <gid>`` for a user the sync does not have; null for none."""
        gids = gids.astype("str")
        return lookup(gids, self.labels).fillna("user " + gids).where(gids.notna())

    def workspace(self, gids: pd.Series) -> pd.Series:
        """``workspace "Acme"``; the gid alone when the workspace is unknown."""
        return "workspace " + quoted(lookup(gids, self.workspaces), gids)

    def team(self, gids: pd.Series) -> pd.Series:
        return "team " + quoted(lookup(gids, self.teams), gids)

    def project(self, gids: pd.Series) -> pd.Series:
        return "project " + quoted(lookup(gids, self.projects), gids)

    def project_name(self, gids: pd.Series) -> pd.Series:
        """The project's name (null when unknown)."""
        return lookup(gids.astype(object), self.projects).astype(object).where(gids.notna(), None)

    def project_link(self, gids: pd.Series) -> pd.Series:
        """A project's permalink, else its list view."""
        return lookup(gids.astype(object), self.project_links).fillna(project_url(gids))

    def team_link(self, gids: pd.Series) -> pd.Series:
        return lookup(gids.astype(object), self.team_links)

    def people(self, users: pd.DataFrame, memberships: pd.DataFrame, referenced: list[pd.Series]) -> pd.DataFrame:
        """One row per user the sync has or a table refers to: name, email, profile link, whether
        this sync's users table has the user (else the name is an earlier pack's), and the
        workspaces (by name, ``; ``-separated) the user is a member of, active in, admin of and a
        guest in. A gid nobody can name keeps a row, with no name."""
        gids = pd.concat([users["gid"], memberships["user_gid"], *referenced]).dropna().astype(str)
        gids = pd.Series(gids.drop_duplicates().sort_values(ignore_index=True), dtype=object)
        m = memberships.assign(workspace=lookup(memberships["workspace_gid"], self.workspaces).fillna(
            memberships["workspace_gid"]))
        m = m.sort_values(["user_gid", "workspace"])
        out = pd.DataFrame({"gid": gids, "name": lookup(gids, self.user_names),
                            "email": lookup(gids, self.emails), "profile_url": profile_url(gids),
                            "in_users_table": gids.isin(self.current)})
        for column, mask in (("workspaces", None), ("active_in", "is_active"), ("admin_in", "is_admin"),
                             ("guest_in", "is_guest")):
            grouped = group_lists(m if mask is None else m[m[mask].eq(True)], ["user_gid"], "workspace")
            listed = pd.Series(pc.binary_join(grouped["workspace"], "; ").to_pandas().array,
                               index=grouped["user_gid"].to_pandas().array)
            out[column] = lookup(gids, listed)
        return out.astype(object).where(out.notna(), None)

    def resource(self, kinds: pd.Series, gids: pd.Series) -> pd.Series:
        """``workspace "Acme"``, ``team "Security"`` or ``project "Payroll"`` by each row's kind."""
        out = pd.Series(kinds.astype(object) + " " + gids.astype(object), index=gids.index, dtype=object)
        for kind, name in (("workspace", self.workspace), ("team", self.team), ("project", self.project)):
            mask = kinds.eq(kind)
            out[mask] = name(gids[mask])
        return out


def roles(**people: pd.Series) -> pd.Series:
    """``role: person; role: person`` from columns of person labels, nulls left out (null when all are)."""
    joined = None
    for role, who in people.items():
        piece = role + ": " + who.astype("str")
        joined = piece if joined is None else (joined + "; " + piece).fillna(joined).fillna(piece)
    return joined
