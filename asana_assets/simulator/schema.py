"""How records are rendered: per-type field tables, compact and full field sets, opt_fields.

A *spec* is a hashable tree of requested fields, ``((name, child_spec | None), ...)``, parsed
once per distinct ``opt_fields`` string. A *plan* is a spec compiled against one resource type's
field table (getters resolved, unknown fields dropped) and is cached per (type, spec). Plain
attributes are read with one multi-attribute ``attrgetter`` call, so rendering a page costs little
more than building its dicts; only references and conditional fields take the generic path.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from functools import cache, lru_cache
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple

# Field kinds: how a getter's value becomes JSON.
VALUE, REF, REFS, EMBED, EMBEDS, VIA, JSON = range(7)
MISSING = object()  # a conditional field the record does not carry: the key is left out

Spec = tuple[tuple[str, "Spec | None"], ...]


class Plan(NamedTuple):
    keys: tuple[str, ...]  # plain attributes, all read by ``attrs``
    attrs: Callable[[Any], tuple[Any, ...]]
    computed: tuple[tuple[str, Callable[[Any], Any]], ...]  # derived values, never MISSING
    # references and conditionals: (name, getter, kind, child plan, scope)
    complex: tuple[tuple[str, Callable[[Any], Any], int, Any, Callable[[Any], str] | None], ...]


class Field(NamedTuple):
    get: Callable[[Any], Any]
    kind: int = VALUE
    target: str | None = None  # resource type behind REF/REFS/VIA/EMBED(S)
    via: str | None = None  # VIA: attribute of the linked membership that names the target
    attr: str | None = None  # set when the value is this attribute, as is
    conditional: bool = False  # the getter may answer MISSING
    scope: Callable[[Any], str] | None = None  # REFS/EMBEDS: the project an item belongs to (see render)


def _attrs(*names: str) -> dict[str, Field]:
    return {name: Field(attrgetter(name), attr=name) for name in names}


def _ref(attr: str, target: str, kind: int = REF) -> Field:
    return Field(attrgetter(attr), kind, target)


def _const(value: Any) -> Field:
    # Lists are built per call so callers never share (and mutate) one object.
    return Field((lambda _o: []) if value == [] else (lambda _o: value))


def _optional(attr: str) -> Field:
    get = attrgetter(attr)
    return Field(lambda o: MISSING if (v := get(o)) is None else v, conditional=True)


def _html(attr: str) -> Field:
    get = attrgetter(attr)
    return Field(lambda o: f"<body>{html.escape(get(o), quote=False)}</body>")


def _story_field(attr: str, subtypes: frozenset[str], kind: int = VALUE, target: str | None = None) -> Field:
    """A story field that exists only for some subtypes, read from the story's old/new slot."""
    get = attrgetter(attr)

    def conditional(story: Any) -> Any:
        value = get(story) if story.resource_subtype in subtypes else None
        return MISSING if value is None else value

    return Field(conditional, kind, target, conditional=True)


BASE = _attrs("gid", "resource_type")
_ENUMS = frozenset({"enum", "multi_enum"})
# The story subtype that records a change of each custom field type.
_FIELD_CHANGES = {
    subtype: f"{subtype}_custom_field_changed"
    for subtype in ("text", "number", "enum", "multi_enum", "date", "people", "reference")
}


# A value's key, field type, serialisation and target per custom field type; a change story
# carries the same keys as old_ and new_ (a reference field's changes record no values).
_TYPED_VALUES = (
    ("text_value", "text", VALUE, None),
    ("number_value", "number", VALUE, None),
    ("enum_value", "enum", JSON, None),
    ("multi_enum_values", "multi_enum", JSON, None),
    ("date_value", "date", JSON, None),
    ("people_value", "people", REFS, "user"),
)
_REFERENCE_VALUE = ("reference_value", "reference", REFS, "task")


def _story_dates(side: str) -> Field:
    """A date field change's old or new value: the spec's StoryResponseDates ``{start_on, due_at,
    due_on}``; one story in four carries the task value's ``{date, date_time}`` form instead, since
    a reader must take either (the world stores the value's form)."""
    get = _story_field(side, frozenset({_FIELD_CHANGES["date"]})).get

    def dates(story: Any) -> Any:
        value = get(story)
        if value is MISSING or int(story.gid) % 4 == 0:
            return value
        return {"start_on": None, "due_at": value.get("date_time"), "due_on": value["date"]}

    return Field(dates, JSON, conditional=True)


def _membership_part(index: int, target: str) -> Field:
    """A task membership's project or section; a membership without one leaves the key out."""
    return Field(lambda m: MISSING if m[index] is None else m[index], REF, target, conditional=True)


def _memberships(task: Any) -> list[tuple[str | None, str | None, str | None]]:
    """(project, section, project whose readers see it): the task's projects, then its memberships
    without a project."""
    return [*((p, s, p) for p, s in task.memberships), *((None, s, p) for s, p in task.unplaced)]


def _typed_value(subtype: str) -> Callable[[Any], Any]:
    """A task value's ``<type>_value`` key: present only for a field of that type."""
    return lambda v: v.value if v.definition.resource_subtype == subtype else MISSING

_APPROVALS = frozenset({"marked_approved", "marked_rejected", "marked_changes_requested", "marked_incomplete"})
_PROJECT_STORIES = frozenset({"added_to_project", "removed_from_project"})

TABLES: dict[str, dict[str, Field]] = {
    "workspace": BASE | _attrs("name", "is_organization") | {"email_domains": Field(lambda w: list(w.email_domains))},
    "user": BASE
    | _attrs("name", "email")
    | {"photo": _const(None), "workspaces": Field(attrgetter("workspace_memberships"), VIA, "workspace", "workspace")},
    "workspace_membership": BASE
    | _attrs("is_active", "is_admin", "is_guest", "is_view_only", "created_at")
    | {
        "user": _ref("user", "user"),
        "workspace": _ref("workspace", "workspace"),
        "user_task_list": Field(lambda m: m, EMBED, "user_task_list"),
        "vacation_dates": _const(None),
    },
    "user_task_list": {
        "gid": Field(attrgetter("user_task_list")),
        "resource_type": _const("user_task_list"),
        "name": _const("My Tasks"),
        "owner": _ref("user", "user"),
        "workspace": _ref("workspace", "workspace"),
    },
    "team": BASE
    | _attrs("name", "description", "visibility")
    | {
        "html_description": _html("description"),
        "organization": _ref("organization", "workspace"),
        "permalink_url": Field(lambda t: f"https://app.asana.com/0/team/{t.gid}"),
    },
    "team_membership": BASE
    | _attrs("is_admin", "is_guest", "is_limited_access")
    | {"user": _ref("user", "user"), "team": _ref("team", "team")},
    "project": BASE
    | _attrs(
        "name",
        "notes",
        "archived",
        "color",
        "created_at",
        "modified_at",
        "privacy_setting",
        "default_access_level",
        "default_view",
        "completed",
        "completed_at",
        "due_on",
        "start_on",
    )
    | {
        "html_notes": _html("notes"),
        "public": Field(lambda p: p.privacy_setting == "public_to_workspace"),
        "owner": _ref("owner", "user"),
        "team": _ref("team", "team"),
        "workspace": _ref("workspace", "workspace"),
        "completed_by": _ref("completed_by", "user"),
        "followers": _ref("followers", "user", REFS),
        "members": Field(attrgetter("memberships"), VIA, "user", "user"),
        "custom_fields": _const([]),
        "permalink_url": Field(lambda p: f"https://app.asana.com/0/{p.gid}/{p.gid}"),
    },
    "project_membership": BASE
    | _attrs("access_level")
    | {
        "parent": _ref("project", "project"),
        "member": _ref("user", "member"),  # a user or a team
        "user": Field(lambda m: m.user if m.member_type == "user" else None, REF, "user"),
        "project": _ref("project", "project"),
        "write_access": Field(lambda m: "full_write" if m.access_level in ("admin", "editor") else "comment_only"),
        "resource_subtype": _const("project_membership"),
    },
    "member": BASE | _attrs("name"),  # a project member: a user or a team, named alike
    "section": BASE
    | _attrs("name", "created_at")
    | {"project": _ref("project", "project"), "projects": Field(lambda s: [s.project], REFS, "project")},
    "tag": BASE
    | _attrs("name", "color", "notes", "created_at")
    | {
        "workspace": _ref("workspace", "workspace"),
        "followers": _const([]),
        "permalink_url": Field(lambda t: f"https://app.asana.com/0/{t.gid}/list"),
    },
    "task": BASE
    | _attrs(
        "name",
        "notes",
        "resource_subtype",
        "completed",
        "completed_at",
        "created_at",
        "modified_at",
        "due_on",
        "due_at",
        "start_on",
    )
    | {
        "approval_status": _optional("approval_status"),
        "html_notes": _html("notes"),
        "assignee": _ref("assignee", "user"),
        "assigned_by": _ref("assigned_by", "user"),
        "completed_by": _ref("completed_by", "user"),
        "created_by": _ref("created_by", "user"),
        "start_at": _const(None),
        "parent": _ref("parent", "task"),
        "memberships": Field(_memberships, EMBEDS, "task_membership", scope=itemgetter(2)),
        "projects": Field(lambda t: [p for p, _s in t.memberships], REFS, "project", scope=lambda gid: gid),
        "tags": _ref("tags", "tag", REFS),
        "followers": _ref("followers", "user", REFS),
        "workspace": _ref("workspace", "workspace"),
        "num_subtasks": Field(lambda t: len(t.subtasks)),
        "liked": _const(False),
        "likes": _const([]),
        "num_likes": _const(0),
        "custom_fields": Field(lambda t: list(t.custom_fields.values()), EMBEDS, "custom_field_value"),
        "dependencies": _const([]),
        "dependents": _const([]),
        "is_rendered_as_separator": _const(False),
        "permalink_url": Field(lambda t: f"https://app.asana.com/0/0/{t.gid}"),
    },
    "task_membership": {"project": _membership_part(0, "project"), "section": _membership_part(1, "section")},
    "story": BASE
    | _attrs("created_at", "resource_subtype", "text")
    | {
        "created_by": _ref("created_by", "user"),
        "type": Field(lambda s: "comment" if s.resource_subtype == "comment_added" else "system"),
        "html_text": _html("text"),
        "is_pinned": _const(False),
        "is_editable": Field(lambda s: s.resource_subtype == "comment_added"),
        "is_edited": _const(False),
        "liked": _const(False),
        "likes": _const([]),
        "num_likes": _const(0),
        "previews": _const([]),
        "source": _const("web"),
        "target": _ref("target", "task"),
        "old_name": _story_field("old", frozenset({"name_changed"})),
        "new_name": _story_field("new", frozenset({"name_changed"})),
        "old_dates": _story_field("old", frozenset({"due_date_changed"}), JSON),
        "new_dates": _story_field("new", frozenset({"due_date_changed"}), JSON),
        "old_section": _story_field("old", frozenset({"section_changed"}), REF, "section"),
        "new_section": _story_field("new", frozenset({"section_changed"}), REF, "section"),
        "assignee": _story_field("new", frozenset({"assigned"}), REF, "user"),
        "project": _story_field("new", _PROJECT_STORIES, REF, "project"),
        "old_approval_status": _story_field("old", _APPROVALS),
        "new_approval_status": _story_field("new", _APPROVALS),
        "custom_field": _story_field("custom_field", frozenset(_FIELD_CHANGES.values()), REF, "custom_field"),
        **{
            f"{side}_{name}": _story_field(side, frozenset({_FIELD_CHANGES[subtype]}), kind, target)
            for side in ("old", "new")
            for name, subtype, kind, target in _TYPED_VALUES
            if subtype != "date"
        },
        "old_date_value": _story_dates("old"),
        "new_date_value": _story_dates("new"),
    },
    "custom_field": BASE
    | _attrs("name", "description", "resource_subtype")
    | {
        "type": Field(attrgetter("resource_subtype")),  # deprecated twin of resource_subtype
        "representation_type": Field(attrgetter("representation_type")),
        "enum_options": Field(
            lambda f: f.enum_options if f.resource_subtype in _ENUMS else MISSING, JSON, conditional=True
        ),
        "precision": Field(lambda f: MISSING if f.precision is None else f.precision, conditional=True),
        "format": Field(lambda f: "none" if f.resource_subtype == "number" else MISSING, conditional=True),
        "input_restrictions": Field(lambda f: ["task"] if f.resource_subtype == "reference" else MISSING,
                                    conditional=True),
        "is_formula_field": Field(lambda f: bool(f.formula)),
        "is_global_to_workspace": _const(True),
        "has_notifications_enabled": _const(True),
        "is_value_read_only": Field(lambda f: bool(f.formula)),
        "created_by": _ref("created_by", "user"),
    },
    "custom_field_setting": BASE
    | _attrs("is_important")
    | {
        "project": _ref("project", "project"),
        "parent": _ref("project", "project"),
        "custom_field": Field(attrgetter("custom_field"), REF, "custom_field"),
    },
    # A task's value of a field: the field's compact record with the value of its type.
    "custom_field_value": {
        "gid": Field(lambda v: v.definition.gid),
        "resource_type": _const("custom_field"),
        "name": Field(lambda v: v.definition.name),
        "resource_subtype": Field(lambda v: v.definition.resource_subtype),
        "type": Field(lambda v: v.definition.resource_subtype),
        "representation_type": Field(lambda v: v.definition.representation_type),
        "enabled": Field(attrgetter("enabled"), attr="enabled"),
        "is_formula_field": Field(lambda v: bool(v.definition.formula)),
        "enum_options": Field(
            lambda v: v.definition.enum_options if v.definition.resource_subtype in _ENUMS else MISSING,
            JSON,
            conditional=True,
        ),
        "display_value": Field(attrgetter("display")),
        **{
            name: Field(_typed_value(subtype), kind, target, conditional=True)
            for name, subtype, kind, target in (*_TYPED_VALUES, _REFERENCE_VALUE)
        },
    },
    "event": {
        "user": _ref("user", "user"),
        "resource": Field(attrgetter("resource"), JSON),
        "type": Field(lambda e: e.resource["resource_type"]),
        "action": Field(attrgetter("action")),
        "parent": Field(attrgetter("parent"), JSON),
        "created_at": Field(attrgetter("created_at")),
        "change": Field(lambda e: MISSING if e.change is None else e.change, JSON, conditional=True),
    },
}

# Default field sets, from the OAS *Compact / *Response schemas. gid is always added.
COMPACT: dict[str, tuple[str, ...]] = {
    "task": ("resource_type", "name", "resource_subtype"),
    "story": ("resource_type", "created_at", "created_by", "resource_subtype", "text"),
    "workspace_membership": ("resource_type", "user", "workspace"),
    "team_membership": ("resource_type", "user", "team", "is_guest", "is_limited_access", "is_admin"),
    "project_membership": ("resource_type", "parent", "member", "access_level"),
    "event": tuple(TABLES["event"]),
    "custom_field": (
        "resource_type", "name", "resource_subtype", "type", "enum_options",
        "representation_type", "is_formula_field",
    ),
    "custom_field_setting": ("resource_type", "project", "is_important", "parent", "custom_field"),
    **{t: ("resource_type", "name") for t in ("project", "user", "workspace", "team", "section", "tag")},
}
_OPT_IN: dict[str, tuple[str, ...]] = {
    "task": ("html_notes", "num_subtasks", "created_by", "dependencies", "dependents", "is_rendered_as_separator"),
    "project": ("html_notes",),
    "story": ("html_text",),
    "team": ("html_description",),
}
FULL: dict[str, tuple[str, ...]] = {
    rtype: tuple(name for name in table if name not in _OPT_IN.get(rtype, ())) for rtype, table in TABLES.items()
}
FULL["project_membership"] = ("resource_type", "parent", "member", "access_level", "user", "project", "write_access")
# What ground truth holds: every field, opt-in ones included.
EVERYTHING: dict[str, tuple[str, ...]] = {
    **{rtype: tuple(table) for rtype, table in TABLES.items()},
    "project_membership": FULL["project_membership"],
}
# Project memberships listed through GET /memberships carry their subtype.
MEMBERSHIP_COMPACT = COMPACT["project_membership"] + ("resource_subtype",)

NESTED: Spec = (("resource_type", None), ("name", None))  # a reference inside a default record
BARE: Spec = (("resource_type", None),)  # a reference named in opt_fields without sub-fields


@cache
def default_spec(rtype: str, names: tuple[str, ...]) -> Spec:
    """The spec of a default (compact or full) record: nested references render compact."""
    table = TABLES[rtype]
    return tuple((name, _default_child(table[name])) for name in names)


def _default_child(field: Field) -> Spec | None:
    if field.kind in (REF, REFS, VIA):
        return NESTED
    if field.kind in (EMBED, EMBEDS):
        return default_spec(field.target, FULL[field.target])
    return None


@lru_cache(maxsize=4096)
def parse_opt_fields(raw: str) -> Spec:
    """Parse ``opt_fields`` (dotted paths, ``this.`` prefixes, ``(a|b).c`` groups) into a spec."""
    tree: dict[str, dict] = {}
    for path in raw.split(","):
        for expanded in _expand_groups(path.strip().removeprefix("this.")):
            node = tree
            for part in filter(None, expanded.split(".")):
                node = node.setdefault(part, {})
    return _freeze(tree)


_GROUP = re.compile(r"\(([^()]*)\)")


def _expand_groups(path: str) -> list[str]:
    match = _GROUP.search(path)
    if match is None:
        return [path] if path else []
    head, tail = path[: match.start()], path[match.end() :]
    return [out for alt in match.group(1).split("|") for out in _expand_groups(head + alt.strip() + tail)]


def _freeze(tree: dict[str, dict]) -> Spec:
    return tuple((name, _freeze(child) if child else None) for name, child in tree.items())


_PLANS: dict[tuple[str, Spec], Plan] = {}


def plan(rtype: str, spec: Spec) -> Plan:
    """The compiled plan of ``spec`` for ``rtype`` (cached)."""
    key = (rtype, spec)
    compiled = _PLANS.get(key)
    if compiled is None:
        compiled = _PLANS[key] = _compile(rtype, spec)
    return compiled


def _compile(rtype: str, spec: Spec) -> Plan:
    table = TABLES[rtype]
    requested = dict(spec)
    if "gid" in table and "gid" not in requested:
        spec = (("gid", None),) + spec
    keys, computed, complex_ = [], [], []
    for name, child in spec:
        field = table.get(name)
        if field is None:  # unknown fields are skipped, not refused
            continue
        if field.kind != VALUE or field.conditional:
            complex_.append((name, field.get, field.kind, _compile_child(field, child), field.scope))
        elif field.attr is not None:
            keys.append(name)
        else:
            computed.append((name, field.get))
    attrs = attrgetter(*(table[k].attr for k in keys)) if keys else (lambda _o: ())
    if len(keys) == 1:  # a single-name attrgetter returns the bare value, not a 1-tuple
        attrs = (lambda get: lambda o: (get(o),))(attrs)
    return Plan(tuple(keys), attrs, tuple(computed), tuple(complex_))


def _compile_child(field: Field, child: Spec | None) -> Any:
    if field.kind in (REF, REFS):
        return plan(field.target, child if child is not None else BARE)
    if field.kind == VIA:
        return attrgetter(field.via), plan(field.target, child if child is not None else BARE)
    if field.kind in (EMBED, EMBEDS):
        return plan(field.target, child if child is not None else default_spec(field.target, FULL[field.target]))
    return child  # JSON: the sub-spec prunes the stored value; VALUE: unused


def render(
    obj: Any, compiled: Plan, objects: dict[str, Any], sees: Callable[[str], bool] | None = None
) -> dict[str, Any]:
    """Render one object with a compiled plan; ``objects`` resolves gid references.

    ``sees`` (a project gid -> whether the caller may read it; None: everything) leaves out the
    items of a scoped list (a task's memberships and projects) in projects the caller may not
    read, as the API does not reveal them."""
    out = dict(zip(compiled.keys, compiled.attrs(obj)))
    for key, get in compiled.computed:
        out[key] = get(obj)
    for key, get, kind, sub, scope in compiled.complex:
        value = get(obj)
        if value is MISSING:
            continue
        if scope is not None and sees is not None:
            value = [item for item in value if (project := scope(item)) is None or sees(project)]
        if kind == REF:
            out[key] = None if value is None else render(objects[value], sub, objects, sees)
        elif kind == REFS:
            out[key] = [render(objects[gid], sub, objects, sees) for gid in value]
        elif kind == EMBEDS:
            out[key] = [render(item, sub, objects, sees) for item in value]
        elif kind == EMBED:
            out[key] = render(value, sub, objects, sees)
        elif kind == VIA:
            link, target_plan = sub
            out[key] = [render(objects[link(objects[gid])], target_plan, objects, sees) for gid in value]
        elif kind == JSON:
            out[key] = _prune(value, sub)
        else:  # a conditional plain value
            out[key] = value
    return out


def _prune(value: Any, spec: Spec | None) -> Any:
    """Copy stored JSON (an event's snapshot, a story's dates), keeping only requested keys and gid.

    It always copies, so a rendered record never shares mutable state with the world.
    """
    if isinstance(value, list):
        return [_prune(item, spec) for item in value]
    if not isinstance(value, dict):
        return value
    if spec is None:
        return {key: _prune(item, None) for key, item in value.items()}
    out = {"gid": value["gid"]} if "gid" in value else {}
    for key, child in spec:
        if key in value:
            out[key] = _prune(value[key], child)
    return out
