"""The simulated Asana REST API, served by aiohttp under ``/api/1.0`` (OAuth under ``/-/``).

One middleware does what the real API does around every call (Bearer auth, the per-token quota
and concurrency caps, injected faults and latency, the error envelope, statistics); handlers are
small synchronous functions that read the world's indexes and render with compiled plans.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import date
from functools import cache, partial
from typing import Any, NamedTuple

import orjson
from aiohttp import web

from . import audit
from .calls import API, DIGITS, ApiError, Call, Offsets, page_limit
from .clock import iso, parse_iso
from .config import SimulatorConfig
from .limits import Faults, RateLimiter, Stats, answer_cost
from .models import (
    CustomField,
    Event,
    Project,
    ProjectMembership,
    Section,
    Story,
    Tag,
    Task,
    Team,
    TeamMembership,
    User,
    Workspace,
    WorkspaceMembership,
)
from .oauth import OAuthProvider
from .schema import COMPACT, FULL, MEMBERSHIP_COMPACT, Spec, parse_opt_fields, plan, render
from .tokens import Signer
from .world import UPDATABLE_TASK_FIELDS, UnknownObject, World

HELP = "For more information on API status codes and how to handle them, read the docs on errors: https://developers.asana.com/docs/errors"
RATE_LIMITED = "You've made too many requests and hit a rate limit. Please retry after the given amount of time."
SYNC_INVALID = (
    "Sync token invalid or too old. If you are attempting to keep resources in sync, you must fetch the full "
    "dataset for this query now and use the new sync token for the next sync."
)
TOO_LARGE = "The result is too large. You should use pagination (may require specifying a workspace)!"
# Asana's wording of these is not documented: a truncated result set (a 400), a large domain's
# timeout (the OAS's GatewayTimeout) and a feature "only available to premium organizations".
TRUNCATED = "The result is too large and was truncated. Split the query: by team, then projects; by section, then tasks."
TIMED_OUT = "This request took too long to complete. Try filtering by team."
REFUSED = {401: "Not Authorized", 402: "This feature is only available to premium organizations.", 403: "Forbidden"}
MAX_EVENTS = 100
WORKSPACE_USERS_CAP = 2000  # GET /workspaces/{gid}/users is alphabetical, unpaginated and capped
_UNFINGERPRINTED = frozenset({"offset", "limit", "opt_fields", "opt_pretty"})
_MALFORMABLE = frozenset({"task", "story"})
ACTING_USER = web.RequestKey("acting_user", str)
TOKEN = web.RequestKey("token", str)  # the caller's, whose cost limit an answer is charged to
log = logging.getLogger(__name__)


class Reply(NamedTuple):
    payload: dict[str, Any]
    status: int = 200
    headers: dict[str, str] | None = None


Handler = Callable[[Call], "dict[str, Any] | Reply"]


class AsanaApi:
    """The API over one world. Build the aiohttp application with :meth:`app`."""

    def __init__(self, world: World, config: SimulatorConfig | None = None) -> None:
        self.world = world
        self.config = config or SimulatorConfig()
        self.signer = Signer(self.config.secret)
        self.limiter = RateLimiter(self.config)
        self.faults = Faults(self.config)
        self.stats = Stats()
        self.offsets = Offsets(self.signer, self.config)
        self.sync_epoch = 0  # bumping it invalidates every sync token issued so far
        self.oauth = OAuthProvider(world, self.config)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=4 * 1024**2)
        for method, path, handler in self._routes():
            app.router.add_route(method, API + path, self._endpoint(handler, write=method != "GET"))
        self.oauth.add_routes(app)
        app.router.add_get("/_simulator/stats", self._stats)
        app.router.add_post("/_simulator/stats/reset", self._reset_stats)
        return app

    def expire_sync_tokens(self) -> None:
        """Make every sync token issued so far answer 412, as after a long outage."""
        self.sync_epoch += 1

    def malformed_gids(self) -> set[str]:
        """Ground truth for fault tests: the task and story gids served with a corrupted field."""
        with self.world.lock:
            return {
                gid
                for gid, obj in self.world.objects.items()
                if obj.resource_type in _MALFORMABLE and self.faults.is_malformed(gid)
            }

    # ------------------------------------------------------------------ around every call
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "(unmatched)"
        if route.startswith(("/_simulator", "/-/")):  # outside the API: no Bearer auth or envelope
            return await handler(request)
        try:
            response = await self._guarded(request, handler)
        except ApiError as error:
            response = self._error(error)
        except web.HTTPException as error:  # unknown route or method, from the router
            response = self._error(ApiError(error.status, "No matching route for request"))
        except _Dropped:  # the transport is closed: aiohttp's write fails quietly, nothing is sent
            self.stats.record(route, None)
            return web.Response()
        except Exception:
            log.exception("simulator handler failed")
            response = self._error(ApiError(500, "Server Error"))
        self.stats.record(route, response.status)
        return response

    async def _guarded(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        token = _bearer(request)
        if token in self.config.tokens:
            user = self.config.tokens[token] or self.world.default_user
        elif (user := self.oauth.user_for(token)) is None:
            raise ApiError(401, "Not Authorized")
        write = request.method != "GET"
        refusal = self.limiter.admit(token, write, time.monotonic())
        if refusal is not None:
            self.stats.refuse(refusal.cause, token)
            raise ApiError(429, RATE_LIMITED, headers={"Retry-After": str(refusal.retry_after)})
        self.stats.enter(write)
        try:
            fault, delay = self.faults.draw(), self.faults.delay()
            if delay:
                await asyncio.sleep(delay)  # latency is spent holding a concurrency slot
            self._inject(fault, request)
            refused = self.faults.refusal(request.path.removeprefix(API), request.query)
            if refused is not None:
                raise ApiError(refused, REFUSED[refused])
            request[ACTING_USER] = user
            request[TOKEN] = token
            return await handler(request)
        finally:
            self.limiter.release(token, write)
            self.stats.leave(write)

    def _inject(self, fault: str | None, request: web.Request) -> None:
        if fault == "drop":
            if request.transport is not None:
                request.transport.close()
            raise _Dropped
        if fault == "500":
            raise ApiError(500, "Server Error", phrase=self.faults.phrase())
        if fault == "503":
            raise ApiError(503, "Service Unavailable")
        if fault == "429":
            self.stats.refuse("storm", _bearer(request) or "")
            raise ApiError(429, RATE_LIMITED, headers={"Retry-After": str(self.config.storm_retry_after)})

    def _endpoint(self, handler: Handler, write: bool) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def endpoint(request: web.Request) -> web.Response:
            call = Call(request, request[ACTING_USER], await _read_body(request) if write else {})
            try:
                with self.world.lock:
                    reply = handler(call)
            except UnknownObject as missing:
                raise ApiError(404, missing.args[0]) from None
            except (ValueError, TypeError) as invalid:
                if not write:
                    raise
                raise ApiError(400, str(invalid)) from None
            if not isinstance(reply, Reply):
                reply = Reply(reply)
            if self.config.cost_per_minute is not None:
                cost = answer_cost(reply.payload)
                self.stats.cost += cost
                self.limiter.charge(request[TOKEN], cost, time.monotonic())
            return _json(reply.payload, reply.status, call.pretty, reply.headers)

        return endpoint

    def _error(self, error: ApiError) -> web.Response:
        detail = {"message": error.message, "help": HELP} | ({"phrase": error.phrase} if error.phrase else {})
        return _json({"errors": [detail], **error.top_level}, error.status, False, error.headers)

    async def _stats(self, _request: web.Request) -> web.Response:
        return _json(self.stats.snapshot(), 200, True, None)

    async def _reset_stats(self, _request: web.Request) -> web.Response:
        self.stats.reset()
        return _json(self.stats.snapshot(), 200, True, None)

    # ------------------------------------------------------------------ rendering and paging
    def _one(self, call: Call, obj: Any, names: tuple[str, ...] | None = None) -> dict[str, Any]:
        rtype = obj.resource_type
        return {"data": self._render(call, [obj], rtype, call.spec(rtype, names or FULL[rtype]))[0]}

    def _render(self, call: Call, items: Sequence[Any], rtype: str, spec: Spec) -> list[dict[str, Any]]:
        """Records as the caller is shown them: without memberships in projects it may not read
        (nothing to leave out for a caller that reads everything, the demo's service account)."""
        compiled, objects, world = plan(rtype, spec), self.world.objects, self.world
        everything = all(world.sees_everything(call.user, workspace) for workspace in world.workspaces)
        sees = None if everything else cache(partial(world.can_see_project, call.user))
        records = [render(objects[item] if isinstance(item, str) else item, compiled, objects, sees) for item in items]
        if rtype in _MALFORMABLE and self.config.malformed_rate:
            for record in records:
                if self.faults.is_malformed(record["gid"]):
                    self.faults.corrupt(rtype, record)
        return records

    def _page(
        self, call: Call, rtype: str, items: Sequence[Any], names: tuple[str, ...] | None = None
    ) -> dict[str, Any]:
        """One page of a list (objects or gids), compact unless opt_fields says otherwise."""
        limit = page_limit(call.query)
        fingerprint = _fingerprint(call.request)
        start = self.offsets.position(call.query.get("offset"), fingerprint)
        if limit is None and len(items) - start > self.config.max_unpaginated_results:
            raise ApiError(400, TOO_LARGE)
        end = len(items) if limit is None else min(start + limit, len(items))
        if limit is not None and self.config.max_listing_results is not None and end > self.config.max_listing_results:
            raise ApiError(400, TRUNCATED)  # the page reaching past the truncation, as Asana answers it
        payload: dict[str, Any] = {
            "data": self._render(call, items[start:end], rtype, call.spec(rtype, names or COMPACT[rtype]))
        }
        if limit is not None:
            payload["next_page"] = self.offsets.next_page(call.request, end, fingerprint) if end < len(items) else None
        return payload

    def _find(self, call: Call, param: str, kind: type) -> Any:
        return self._visible(call, self.world.get(call.path_gid(param), kind))

    def _seen(self, call: Call, items: Sequence[Any]) -> list[Any]:
        """The items (objects or gids) of a list the caller may read: the tasks of a cross-project
        list, a task's stories and projects."""
        objects = self.world.objects
        return [i for i in items if self.world.can_see(call.user, objects[i] if isinstance(i, str) else i)]

    def _visible(self, call: Call, obj: Any) -> Any:
        """``obj`` if the caller may read it; else 403, as the API answers an object that exists
        but is not shared with the token's user (a deleted one is a 404)."""
        if not self.world.can_see(call.user, obj):
            raise ApiError(403, f"{obj.resource_type}: Forbidden: {obj.gid} is not visible to this user")
        return obj

    def _query_ref(self, call: Call, name: str, kind: type, required: bool = False) -> Any:
        value = call.query.get(name)
        if value is None:
            if required:
                raise ApiError(400, f"{name}: Missing input")
            return None
        if kind is User:
            return self._user(call, value)
        if not DIGITS.fullmatch(value):
            raise ApiError(400, f"{name}: Not a Long: {value}")
        return self._visible(call, self.world.get(value, kind))

    def _user(self, call: Call, ref: str) -> User:
        """A user named as the API allows: ``me``, an email address or a gid."""
        if ref == "me":
            return self.world.get(call.user, User)
        user = self.world.user_by_email(ref) if "@" in ref else self.world.get(ref, User)
        if user is None:
            raise UnknownObject(f"user: Unknown object: {ref}")
        return user

    # ------------------------------------------------------------------ routes
    def _routes(self) -> list[tuple[str, str, Handler]]:
        one, children = self._one_route, self._children_route
        return [
            ("GET", "/users", self.list_users),
            ("GET", "/users/{user_gid}", lambda c: self._one(c, self._user(c, c.request.match_info["user_gid"]))),
            ("GET", "/users/{user_gid}/workspace_memberships", self.user_workspace_memberships),
            ("GET", "/users/{user_gid}/team_memberships", self.user_team_memberships),
            ("GET", "/workspaces", lambda c: self._page(c, "workspace", self.world.workspaces)),
            ("GET", "/workspaces/{workspace_gid}", one(Workspace, "workspace_gid")),
            ("GET", "/workspaces/{workspace_gid}/users", self.workspace_users),
            ("GET", "/workspaces/{workspace_gid}/workspace_memberships", self.workspace_memberships),
            (
                "GET",
                "/workspace_memberships/{workspace_membership_gid}",
                one(WorkspaceMembership, "workspace_membership_gid"),
            ),
            ("GET", "/workspaces/{workspace_gid}/teams", self.workspace_teams),
            ("GET", "/teams/{team_gid}", one(Team, "team_gid")),
            (
                "GET",
                "/teams/{team_gid}/team_memberships",
                children(Team, "team_gid", "team_membership", lambda t: t.memberships),
            ),
            ("GET", "/team_memberships", self.team_memberships),
            ("GET", "/team_memberships/{team_membership_gid}", one(TeamMembership, "team_membership_gid")),
            (
                "GET",
                "/teams/{team_gid}/projects",
                lambda c: self._projects(c, self._find(c, "team_gid", Team).projects),
            ),
            ("GET", "/projects", self.list_projects),
            (
                "GET",
                "/workspaces/{workspace_gid}/projects",
                lambda c: self._projects(c, self._domain_projects(self._find(c, "workspace_gid", Workspace))),
            ),
            ("GET", "/projects/{project_gid}", one(Project, "project_gid")),
            ("GET", "/projects/{project_gid}/project_memberships", self.project_memberships),
            ("GET", "/projects/{project_gid}/task_counts", self.task_counts),
            ("GET", "/project_memberships/{project_membership_gid}", one(ProjectMembership, "project_membership_gid")),
            ("GET", "/memberships", self.memberships),
            (
                "GET",
                "/memberships/{membership_gid}",
                lambda c: self._one(c, self._find(c, "membership_gid", ProjectMembership), MEMBERSHIP_COMPACT),
            ),
            (
                "GET",
                "/projects/{project_gid}/sections",
                children(Project, "project_gid", "section", lambda p: p.sections),
            ),
            ("GET", "/sections/{section_gid}", one(Section, "section_gid")),
            (
                "GET",
                "/sections/{section_gid}/tasks",
                lambda c: self._tasks(c, self._find(c, "section_gid", Section).tasks),
            ),
            ("GET", "/tasks", self.list_tasks),
            (
                "GET",
                "/projects/{project_gid}/tasks",
                lambda c: self._tasks(c, self.world.project_tasks(self._find(c, "project_gid", Project))),
            ),
            ("GET", "/tasks/{task_gid}", one(Task, "task_gid")),
            ("GET", "/tasks/{task_gid}/subtasks", children(Task, "task_gid", "task", lambda t: t.subtasks)),
            (
                "GET",
                "/tasks/{task_gid}/stories",
                lambda c: self._page(c, "story", self._seen(c, self._find(c, "task_gid", Task).stories)),
            ),
            (
                "GET",
                "/tasks/{task_gid}/projects",
                lambda c: self._page(c, "project", self._seen(c, [p for p, _ in self._find(c, "task_gid", Task).memberships])),
            ),
            ("GET", "/tasks/{task_gid}/tags", children(Task, "task_gid", "tag", lambda t: t.tags)),
            ("GET", "/stories/{story_gid}", one(Story, "story_gid")),
            ("GET", "/workspaces/{workspace_gid}/tags", children(Workspace, "workspace_gid", "tag", lambda w: w.tags)),
            ("GET", "/tags", lambda c: self._page(c, "tag", self._query_ref(c, "workspace", Workspace, True).tags)),
            ("GET", "/tags/{tag_gid}", one(Tag, "tag_gid")),
            (
                "GET",
                "/tags/{tag_gid}/tasks",
                lambda c: self._page(c, "task", self._seen(c, self._find(c, "tag_gid", Tag).tasks)),
            ),
            (
                "GET",
                "/workspaces/{workspace_gid}/custom_fields",
                children(Workspace, "workspace_gid", "custom_field", lambda w: w.custom_fields),
            ),
            ("GET", "/custom_fields/{custom_field_gid}", one(CustomField, "custom_field_gid")),
            (
                "GET",
                "/projects/{project_gid}/custom_field_settings",
                children(Project, "project_gid", "custom_field_setting", lambda p: p.custom_field_settings),
            ),
            ("GET", "/events", self.events),
            (
                "GET",
                "/workspaces/{workspace_gid}/audit_log_events",
                lambda c: audit.audit_log_events(self.world, c, self.offsets),
            ),
            ("POST", "/tasks", self.create_task),
            ("PUT", "/tasks/{task_gid}", self.update_task),
            ("DELETE", "/tasks/{task_gid}", self.delete_task),
            ("POST", "/tasks/{task_gid}/stories", self.create_story),
            ("POST", "/sections/{section_gid}/addTask", self.add_task_to_section),
            ("POST", "/tasks/{task_gid}/addProject", self.add_project),
            ("POST", "/tasks/{task_gid}/removeProject", self.remove_project),
        ]

    def _one_route(self, kind: type, param: str) -> Handler:
        return lambda call: self._one(call, self._find(call, param, kind))

    def _children_route(self, kind: type, param: str, rtype: str, items: Callable[[Any], Sequence[str]]) -> Handler:
        return lambda call: self._page(call, rtype, items(self._find(call, param, kind)))

    # ------------------------------------------------------------------ people and access
    def list_users(self, call: Call) -> dict[str, Any]:
        workspace = self._query_ref(call, "workspace", Workspace)
        team = self._query_ref(call, "team", Team)
        members: set[str] | None = None
        if workspace:
            members = {self.world.objects[m].user for m in workspace.memberships}
        if team:
            in_team = {self.world.objects[m].user for m in team.memberships}
            members = in_team if members is None else members & in_team
        users = self.world.users if members is None else [gid for gid in self.world.users if gid in members]
        return self._page(call, "user", users)

    def workspace_users(self, call: Call) -> dict[str, Any]:
        workspace = self._find(call, "workspace_gid", Workspace)
        users = sorted(
            (self.world.objects[self.world.objects[m].user] for m in workspace.memberships), key=lambda u: u.name
        )
        return {"data": self._render(call, users[:WORKSPACE_USERS_CAP], "user", call.spec("user", COMPACT["user"]))}

    def workspace_memberships(self, call: Call) -> dict[str, Any]:
        workspace = self._find(call, "workspace_gid", Workspace)
        user = self._query_ref(call, "user", User)
        items = [m for m in workspace.memberships if user is None or self.world.objects[m].user == user.gid]
        return self._page(call, "workspace_membership", items)

    def user_workspace_memberships(self, call: Call) -> dict[str, Any]:
        user = self._user(call, call.request.match_info["user_gid"])
        return self._page(call, "workspace_membership", user.workspace_memberships)

    def team_memberships(self, call: Call) -> dict[str, Any]:
        team = self._query_ref(call, "team", Team)
        if team is not None:
            return self._page(call, "team_membership", team.memberships)
        if "user" not in call.query:
            raise ApiError(400, "team: Missing input")
        return self._user_team_memberships(call, self._query_ref(call, "user", User))

    def user_team_memberships(self, call: Call) -> dict[str, Any]:
        return self._user_team_memberships(call, self._user(call, call.request.match_info["user_gid"]))

    def _user_team_memberships(self, call: Call, user: User) -> dict[str, Any]:
        workspace = self._query_ref(call, "workspace", Workspace, required=True)
        objects = self.world.objects
        items = [m for m in user.team_memberships if objects[objects[m].team].organization == workspace.gid]
        return self._page(call, "team_membership", items)

    def workspace_teams(self, call: Call) -> dict[str, Any]:
        """The teams the caller can see: secret teams only for their members."""
        workspace = self._find(call, "workspace_gid", Workspace)
        return self._page(call, "team", [t for t in workspace.teams if self.world.can_see_team(call.user, t)])

    def list_projects(self, call: Call) -> dict[str, Any]:
        team = self._query_ref(call, "team", Team)
        if team is not None:
            return self._projects(call, team.projects)
        return self._projects(call, self._domain_projects(self._query_ref(call, "workspace", Workspace, required=True)))

    def _domain_projects(self, workspace: Workspace) -> list[str]:
        """Every project of a workspace at once, which "may timeout for large domains": a 504 past
        ``large_domain_projects``, whatever the page asked for."""
        cap = self.config.large_domain_projects
        if cap is not None and len(workspace.projects) > cap:
            raise ApiError(504, TIMED_OUT)
        return workspace.projects

    def _projects(self, call: Call, gids: list[str]) -> dict[str, Any]:
        gids = [gid for gid in gids if self.world.can_see_project(call.user, gid)]
        archived = call.flag("archived")
        if archived is not None:
            gids = [gid for gid in gids if self.world.objects[gid].archived == archived]
        return self._page(call, "project", gids)

    def task_counts(self, call: Call) -> dict[str, Any]:
        """GET /projects/{gid}/task_counts: every field is opt-in, so without opt_fields the
        object is empty; the record has no gid. Unknown fields are skipped, as elsewhere."""
        counts = self.world.task_counts(self._find(call, "project_gid", Project))
        wanted = {name for name, _sub in parse_opt_fields(call.query.get("opt_fields", ""))}
        return {"data": {name: value for name, value in counts.items() if name in wanted}}

    def project_memberships(self, call: Call) -> dict[str, Any]:
        project = self._find(call, "project_gid", Project)
        return self._page(call, "project_membership", self._members_of(project, self._query_ref(call, "user", User)))

    def memberships(self, call: Call) -> dict[str, Any]:
        """A parent's memberships (of one member, when named); without a parent, every project
        membership of a team (``member`` a team, ``resource_subtype=project_membership``): the
        projects shared with it that the caller may read, as the spec documents."""
        parent = call.query.get("parent")
        if parent is None:
            subtype = call.query.get("resource_subtype")
            if subtype is None or call.query.get("member") is None:
                raise ApiError(400, f"{'resource_subtype' if subtype is None else 'member'}: Missing input")
            if subtype != "project_membership":
                raise ApiError(400, f"resource_subtype: Not a supported value: {subtype}")
            if not isinstance(self.world.objects.get(call.query["member"]), Team):
                raise ApiError(400, "member: Must be a team when parent is absent")
            team = self._query_ref(call, "member", Team)
            projects = [p for p in self.world.objects[team.organization].projects
                        if self.world.can_see_project(call.user, p)]
            shared = [m for p in projects for m in self._members_of(self.world.objects[p], team)]
            return self._page(call, "project_membership", shared, MEMBERSHIP_COMPACT)
        project = self._query_ref(call, "parent", Project)
        named = call.query.get("member")
        is_team = named is not None and isinstance(self.world.objects.get(named), Team)
        member = self._query_ref(call, "member", Team if is_team else User)
        return self._page(call, "project_membership", self._members_of(project, member), MEMBERSHIP_COMPACT)

    def _members_of(self, project: Project, member: User | Team | None) -> list[str]:
        """A project's memberships (users' and teams'), or those of one member."""
        return [m for m in project.memberships if member is None or self.world.objects[m].user == member.gid]

    # ------------------------------------------------------------------ tasks
    def list_tasks(self, call: Call) -> dict[str, Any]:
        """GET /tasks: by project, section, or assignee + workspace, as the API requires."""
        query = call.query
        if "project" in query:
            gids = self.world.project_tasks(self._query_ref(call, "project", Project))
        elif "section" in query:
            gids = self._query_ref(call, "section", Section).tasks
        elif "assignee" in query:
            workspace = self._query_ref(call, "workspace", Workspace, required=True)
            gids = self._seen(call, self.world.tasks_assigned_to(self._query_ref(call, "assignee", User), workspace))
        else:
            raise ApiError(400, "workspace: Missing input" if "workspace" not in query else "assignee: Missing input")
        return self._tasks(call, gids, call.time("modified_since"))

    def _tasks(self, call: Call, items: Sequence[Any], modified_since: str | None = None) -> dict[str, Any]:
        """Filter by completed_since (and modified_since where the route takes it), then page."""
        completed_since = call.time("completed_since")
        if completed_since or modified_since:
            objects = self.world.objects
            tasks = (objects[item] if isinstance(item, str) else item for item in items)
            items = [
                task
                for task in tasks
                if (completed_since is None or not task.completed or task.completed_at >= completed_since)
                and (modified_since is None or task.modified_at >= modified_since)
            ]
        return self._page(call, "task", items)

    def create_task(self, call: Call) -> Reply:
        data = _checked(call.data)
        homes = [(m.get("project"), m.get("section")) for m in data.get("memberships", [])]
        homes += [(project, None) for project in _listed(data.get("projects"))]
        if not (homes or data.get("parent") or data.get("workspace")):
            raise ApiError(400, "You should specify one of workspace, parent, projects")
        project, section = homes[0] if homes else (None, None)
        assignee = data.get("assignee")
        task = self.world.create_task(
            str(data.get("name", "")),
            actor=call.user,
            project=project,
            section=section,
            parent=data.get("parent"),
            workspace=data.get("workspace"),
            assignee=None if assignee is None else self._user(call, assignee),
            notes=str(data.get("notes", "")),
            resource_subtype=data.get("resource_subtype", "default_task"),
            due_on=data.get("due_on"),
            due_at=data.get("due_at"),
            start_on=data.get("start_on"),
            tags=tuple(_listed(data.get("tags"))),
        )
        for extra_project, extra_section in homes[1:]:
            self.world.add_task_to_project(task, extra_project, section=extra_section, actor=call.user)
        status = {k: data[k] for k in ("completed", "approval_status") if k in data}
        if status:
            self.world.update_task(task, actor=call.user, **status)
        return self._created(call, task, f"/tasks/{task.gid}")

    def update_task(self, call: Call) -> dict[str, Any]:
        task = self._find(call, "task_gid", Task)
        changes = _checked(call.data)
        for key in changes.keys() - UPDATABLE_TASK_FIELDS:
            raise ApiError(400, f"{key}: Cannot write this property")
        if changes.get("assignee") is not None:
            changes["assignee"] = self._user(call, changes["assignee"])
        self.world.update_task(task, actor=call.user, **changes)
        return self._one(call, task)

    def delete_task(self, call: Call) -> dict[str, Any]:
        self.world.delete_task(self._find(call, "task_gid", Task), actor=call.user)
        return {"data": {}}

    def create_story(self, call: Call) -> Reply:
        task = self._find(call, "task_gid", Task)
        text = call.data.get("text") or re.sub(r"<[^>]+>", "", call.data.get("html_text", ""))
        if not text:
            raise ApiError(400, "text: Missing input")
        story = self.world.add_comment(task, text, actor=call.user)
        return self._created(call, story, f"/stories/{story.gid}")

    def add_task_to_section(self, call: Call) -> dict[str, Any]:
        section = self._find(call, "section_gid", Section)
        self.world.move_task_to_section(_required(call.data, "task"), section, actor=call.user)
        return {"data": {}}

    def add_project(self, call: Call) -> dict[str, Any]:
        task = self._find(call, "task_gid", Task)
        project = _required(call.data, "project")
        self.world.add_task_to_project(task, project, section=call.data.get("section"), actor=call.user)
        return {"data": {}}

    def remove_project(self, call: Call) -> dict[str, Any]:
        task = self._find(call, "task_gid", Task)
        self.world.remove_task_from_project(task, _required(call.data, "project"), actor=call.user)
        return {"data": {}}

    def _created(self, call: Call, obj: Any, path: str) -> Reply:
        location = f"{call.request.scheme}://{call.request.host}{API}{path}"
        return Reply(self._one(call, obj), 201, {"Location": location})

    # ------------------------------------------------------------------ events
    def events(self, call: Call) -> dict[str, Any]:
        """GET /events: 412 with a fresh token unless ``sync`` is current, then ≤100 events."""
        resource = call.query.get("resource")
        if resource is None:
            raise ApiError(400, "resource: Missing input")
        if not isinstance(self.world.objects.get(resource), Task | Project):
            raise UnknownObject(f"resource: Unknown object: {resource}")
        self._visible(call, self.world.objects[resource])
        feed = self.world.events.get(resource, [])
        position = self._sync_position(call.query.get("sync"), resource)
        if position is None:
            raise ApiError(412, SYNC_INVALID, sync=self._sync_token(resource, len(feed)))
        batch = feed[position : position + MAX_EVENTS]
        end = position + len(batch)
        batch = [event for event in batch if self.world.can_see_event(call.user, event)]
        if self.config.membership_events == "membership":
            batch = [_as_membership(event) for event in batch]
        return {
            "data": self._render(call, batch, "event", call.spec("event", COMPACT["event"])),
            "sync": self._sync_token(resource, end),
            "has_more": end < len(feed),
        }

    def _sync_token(self, resource: str, position: int) -> str:
        return self.signer.sign("sync", resource, position, time.time(), self.sync_epoch)

    def _sync_position(self, token: str | None, resource: str) -> int | None:
        fields = self.signer.verify(token) if token else None
        if (
            not fields
            or fields[0] != "sync"
            or fields[1] != resource
            or fields[4] != self.sync_epoch
            or time.time() - fields[3] > self.config.sync_token_ttl_seconds
        ):
            return None
        return fields[2]


def _as_membership(event: Event) -> Event:
    """A project-membership event with its resource named as the memberships API names it."""
    if event.resource["resource_type"] != "project_membership":
        return event
    resource = {**event.resource, "resource_type": "membership", "resource_subtype": "project_membership"}
    return dataclasses.replace(event, resource=resource)


class _Dropped(Exception):
    """The connection was closed on purpose, without an answer."""


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _fingerprint(request: web.Request) -> str:
    """What an offset is bound to: the path and every parameter that shapes the result set."""
    params = sorted((k, v) for k, v in request.query.items() if k not in _UNFINGERPRINTED)
    return hashlib.blake2b(orjson.dumps([request.path, params]), digest_size=8).hexdigest()


def _listed(value: Any) -> list[str]:
    """A list of gids as JSON gives it, or comma-separated as a form gives it."""
    if value is None:
        return []
    return value.split(",") if isinstance(value, str) else list(value)


def _checked(data: dict[str, Any]) -> dict[str, Any]:
    """Task fields of a write body, type-checked, with dates in the API's canonical formats."""
    out = dict(data)
    for key, kind in (
        ("name", str),
        ("notes", str),
        ("resource_subtype", str),
        ("approval_status", str),
        ("completed", bool),
    ):
        if key in out and not isinstance(out[key], kind):
            raise ApiError(400, f"{key}: Invalid value: {out[key]!r}")
    for key, canonical in (("due_on", _day), ("start_on", _day), ("due_at", lambda v: iso(parse_iso(v)))):
        if out.get(key) is not None:
            try:
                out[key] = canonical(str(out[key]))
            except ValueError:
                raise ApiError(400, f"{key}: Not a valid date: {out[key]}") from None
    return out


def _day(value: str) -> str:
    return date.fromisoformat(value).isoformat()


def _required(data: dict[str, Any], name: str) -> Any:
    if data.get(name) is None:
        raise ApiError(400, f"{name}: Missing input")
    return data[name]


async def _read_body(request: web.Request) -> dict[str, Any]:
    """A write body: ``{"data": ..., "options": ...}`` as JSON, or flat form fields; ``{}`` if empty."""
    if request.content_type == "application/x-www-form-urlencoded":
        return {"data": dict(await request.post())}
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError(400, "Could not parse request data, invalid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "Request data must be a JSON object")
    return body


def _json(payload: Any, status: int, pretty: bool, headers: dict[str, str] | None) -> web.Response:
    body = orjson.dumps(payload, option=orjson.OPT_INDENT_2 if pretty else 0)
    return web.Response(body=body, status=status, headers=headers, content_type="application/json", charset="utf-8")
