"""``asana-connections``: connect Asana (OAuth or service-account key), list, schedule, sync,
validate, revoke, remove, rotate keys, write an audit period's evidence.

Secrets are never taken as arguments, where shell history and process lists would keep them:
the OAuth client secret and a service-account key come from the environment or a hidden prompt.
Failures print their cause and what to do, and exit with status 1.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
from cryptography.fernet import Fernet

from asana_assets import settings
from asana_assets.lib.asana.client import AsanaError
from asana_assets.lib.compliance.period import (
    DEFAULT_SEED,
    SAMPLE_SIZES,
    Period,
    format_sample_sizes,
    parse_sample_sizes,
)
from asana_assets.lib.compliance.period_report import outcome_lines, report_period
from asana_assets.lib.connections.oauth import (
    OAuthApp,
    access_token,
    complete_authorization,
    revoke,
    start_authorization,
)
from asana_assets.lib.connections.records import Connection
from asana_assets.lib.connections.store import TokenStore
from asana_assets.lib.connections.troubleshooting import ConnectionExpired, ConnectionProblem, describe
from asana_assets.lib.connections.validation import connect_service_account, record_validation


def main(argv: Sequence[str] | None = None) -> int:
    # Dagster's notices that an API is in preview speak to the project's developers, not its users.
    warnings.filterwarnings("ignore", message=r".*(preview|beta)", category=Warning)
    _show_progress()
    args = _parser().parse_args(argv)
    try:
        args.run(args)
    except (ConnectionProblem, AsanaError) as failure:
        print(describe(failure), file=sys.stderr)
        return 1
    return 0


def _show_progress() -> None:
    """The project's own INFO lines (a long crawl's progress, the demo's address) on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    project = logging.getLogger("asana_assets")
    project.setLevel(logging.INFO)
    project.addHandler(handler)
    project.propagate = False


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asana-connections", description=__doc__.splitlines()[0])
    parser.add_argument("--store", help=f"record file, or a postgresql:// URL (default: ${settings.CONNECTION_STORE.name}, else {settings.CONNECTION_STORE.default})")
    commands = parser.add_subparsers(required=True)

    connect = commands.add_parser("connect", help="add a connection").add_subparsers(required=True)
    oauth = connect.add_parser("oauth", help="with an Asana login (recommended)")
    oauth.add_argument("--auto", action="store_true", help="follow the redirect without a browser (simulator, tests)")
    oauth.add_argument("--scope", nargs="*", default=["default"], help="OAuth scopes to ask for (default: default)")
    service = connect.add_parser("service-account", help="with a service account key ($ASANA_SERVICE_ACCOUNT_KEY or prompt)")
    for sub in (oauth, service):
        sub.add_argument("--base-url", default=settings.BASE_URL.get(),
                         help=f"Asana API base URL (default: ${settings.BASE_URL.name}, else {settings.BASE_URL.default})")
        sub.add_argument("--workspace", help="workspace gid (needed when the user belongs to several)")
    oauth.set_defaults(run=_connect_oauth)
    service.set_defaults(run=_connect_service_account)

    commands.add_parser("list", help="connections, without secrets").set_defaults(run=_list)
    validate = commands.add_parser("validate", help="re-check access and record the outcome")
    validate.add_argument("ids", nargs="*", help="connection ids (default: all)")
    validate.set_defaults(run=_validate)
    revoke_ = commands.add_parser("revoke", help="revoke at Asana (OAuth) and forget the tokens")
    revoke_.add_argument("id", help="connection id (`list` shows them)")
    revoke_.set_defaults(run=_revoke)
    remove = commands.add_parser("remove", help="delete a connection (its synced data stays)")
    remove.add_argument("id", help="connection id (`list` shows them)")
    remove.set_defaults(run=lambda args: (_store(args).remove(args.id), print(f"Removed {args.id}.")))
    schedule = commands.add_parser("schedule", help="set when a connection syncs")
    schedule.add_argument("id", help="connection id (`list` shows them)")
    schedule.add_argument("--full-sync-hour", type=int, choices=range(24), metavar="HOUR",
                          help="UTC hour (0-23) of its daily reconcile and weekly full sync")
    schedule.add_argument("--poll-minutes", type=_positive, help="least minutes between two polls of its events")
    schedule.set_defaults(run=_schedule)
    sync = commands.add_parser("sync", help="sync a connection now, on this Dagster instance ($DAGSTER_HOME)")
    sync.add_argument("id", nargs="?", help="connection id (default: the one in the environment)")
    sync.add_argument("--mode", choices=("full", "incremental"), default="full",
                      help="full: crawl everything; incremental: apply the changes the events feeds report")
    sync.add_argument("--allow-mass-deletion", action="store_true",
                      help="confirm a real mass deletion that the sanity gate refused")
    sync.set_defaults(run=_sync)
    period = commands.add_parser(
        "evidence", help="write the evidence report of an audit period to evidence/period_<from>_<to>/ of the "
                         "connection's warehouse, from what the warehouse kept")
    period.add_argument("id", nargs="?", help="connection id (default: the one in the environment)")
    period.add_argument("--from", dest="first", required=True, type=_day, metavar="DATE",
                        help="first day of the period, YYYY-MM-DD (UTC)")
    period.add_argument("--to", dest="last", required=True, type=_day, metavar="DATE",
                        help="last day of the period, YYYY-MM-DD (UTC), included")
    period.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help=f"seed of the sample (default: {DEFAULT_SEED}); the same seed draws the same sample")
    period.add_argument("--sample-sizes", type=_sample_sizes, default=SAMPLE_SIZES, metavar="TABLE",
                        help="sample size by population size, as <largest population>:<size>,...,*:<size> "
                             f"(default: {format_sample_sizes(SAMPLE_SIZES)})")
    period.set_defaults(run=_evidence)
    review = commands.add_parser("review", help="access review campaigns decided in Asana").add_subparsers(
        required=True)
    campaign = review.add_parser(
        "start", help="file a campaign in the review project: a task per team and project, an approval subtask per "
                      "member (approve keeps the access, reject revokes it); a rerun adds only what is missing")
    campaign.add_argument("id", nargs="?", help="connection id (default: the one in the environment)")
    campaign.add_argument("--project", required=True, help="the review project, by gid or name (the compliance "
                                                           "setting review_project names the same)")
    campaign.add_argument("--due", required=True, type=_day, metavar="DATE", help="due day, YYYY-MM-DD (UTC)")
    campaign.add_argument("--campaign", help="campaign id, one word (default: review-<due day>)")
    campaign.add_argument("--reviewer", help="user gid who reviews every resource (default: the project's owner, "
                                             "a team's admin)")
    campaign.set_defaults(run=_review_start)
    runs_ = commands.add_parser("runs", help="runs in progress on this instance; clear one whose process died, "
                                             "or print a run's log")
    runs_.add_argument("--clear", metavar="RUN_ID", help="mark this stuck run failed")
    runs_.add_argument("--log", metavar="RUN_ID", help="print this run's log, stack traces included")
    runs_.set_defaults(run=_runs)
    commands.add_parser(
        "rotate-key", help="re-encrypt every token with the newest key (sealing tokens stored before base "
                           "URLs were sealed with them to the base URL `list` shows)",
    ).set_defaults(run=_rotate)
    commands.add_parser("new-key", help="print a new encryption key").set_defaults(run=lambda _a: print(Fernet.generate_key().decode()))
    return parser


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of minutes, at least 1")
    return int(text)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date as YYYY-MM-DD") from None


def _sample_sizes(text: str) -> tuple[tuple[int | None, int], ...]:
    try:
        return parse_sample_sizes(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _store(args: argparse.Namespace) -> TokenStore:
    return TokenStore.at(args.store or settings.CONNECTION_STORE.get())


def _app(base_url: str) -> OAuthApp:
    """The registered OAuth app, from ASANA_OAUTH_CLIENT_ID, _CLIENT_SECRET and _REDIRECT_URI."""
    app = (settings.OAUTH_CLIENT_ID, settings.OAUTH_CLIENT_SECRET, settings.OAUTH_REDIRECT_URI)
    missing = [setting.name for setting in app if not setting.is_set]
    if missing:
        raise ConnectionProblem(
            f"the OAuth app is not configured ({', '.join(missing)} unset)",
            "set them to the client id, secret and redirect URI of the app registered in Asana",
        )
    return OAuthApp(*(setting.get() for setting in app), base_url)


def _connect_oauth(args: argparse.Namespace) -> None:
    store, app = _store(args), _app(args.base_url)
    pending = start_authorization(app, args.scope)
    print(f"Open this URL, sign in to Asana as a workspace admin or owner and allow access:\n{pending.url}")
    if args.auto:
        answer = httpx.get(pending.url).headers.get("location", "")
    else:
        answer = input("Paste the URL you were redirected to (or the code): ")
    _show(complete_authorization(app, pending, answer, store, args.workspace), "Connected")


def _connect_service_account(args: argparse.Namespace) -> None:
    key = settings.SERVICE_ACCOUNT_KEY.get() or getpass.getpass("Service account API key: ")
    _show(connect_service_account(args.base_url, key, _store(args), args.workspace), "Connected")


def _list(args: argparse.Namespace) -> None:
    connections = _store(args).connections()
    for connection in connections:
        _show(connection)
    if not connections:
        print("No connections.")


def _validate(args: argparse.Namespace) -> None:
    store = _store(args)
    for connection_id in args.ids or [c.id for c in store.connections()]:
        connection = store.get(connection_id)
        try:
            token = (
                access_token(_app(connection.base_url), store, connection_id)
                if connection.auth_method == "oauth"
                else store.tokens(connection_id).access_token.get_secret_value()
            )
        except ConnectionProblem as problem:  # recorded on the connection like any other failure
            # Only a refused grant expires it: an outage or a store edited since leave it usable.
            status = "expired" if isinstance(problem, ConnectionExpired) else "error"
            connection = store.update(connection_id, status=status, last_error=describe(problem))
        else:
            connection = record_validation(store, connection, token)
        _show(connection)


def _revoke(args: argparse.Namespace) -> None:
    store = _store(args)
    connection = store.get(args.id)
    app = _app(connection.base_url) if connection.auth_method == "oauth" else None
    _show(revoke(store, args.id, app), "Revoked")
    if connection.auth_method == "service_account":
        print("The key itself stays valid in Asana until an admin deletes it in the admin console.")


def _schedule(args: argparse.Namespace) -> None:
    changes = {"full_sync_hour": args.full_sync_hour, "poll_minutes": args.poll_minutes}
    connection = _store(args).update(args.id, **{k: v for k, v in changes.items() if v is not None})
    print(f"{connection.id}: full sync daily at {connection.full_sync_hour:02d}:00 UTC, "
          f"events polled every {connection.poll_minutes} min")


def _sync(args: argparse.Namespace) -> None:
    """Run the connection's sync job in this process: the CLI twin of launching its partition
    in the UI. The partition is registered first, as the connections sensor would. The last
    line of a failure says its cause and what to do."""
    from asana_assets import runs

    if args.store:
        os.environ[settings.CONNECTION_STORE.name] = args.store  # the code location reads the same store
    from asana_assets.definitions import defs
    from asana_assets.defs.partitions import DEFAULT, register

    # The connection the code location uses as its default is synced as that partition.
    key = DEFAULT if args.id in (None, settings.CONNECTION_ID.get()) else args.id
    home = os.environ.get("DAGSTER_HOME")
    where, kept = runs.recorded_where(home)
    print(where, file=sys.stdout if kept else sys.stderr)
    config = {"mode": args.mode, "allow_mass_deletion": args.allow_mass_deletion}
    job = defs.resolve_job_def(f"asana_{args.mode}_sync").with_logger_defs({"console": runs.own_messages})
    with runs.instance(home) as instance:
        claim = runs.claim(instance, home, key)
        try:
            register(instance, [key])
            result = job.execute_in_process(
                instance=instance, partition_key=key, raise_on_error=False, tags={runs.LAUNCHED_BY: runs.COMMAND},
                run_config={"ops": {"asana_raw_sync": {"config": config}}, "loggers": {"console": {}}},
            )
        finally:
            if claim is not None:
                claim.release()
        checks = runs.check_evaluations(instance, result.run_id)
    failed = [f"{c.asset_key.to_user_string()}:{c.check_name}" for c in checks if not c.passed]
    print(f"{'Synced' if result.success else 'Failed to sync'} connection {key} ({args.mode}), run "
          f"{result.run_id}: {len(checks) - len(failed)} check(s) passed, {len(failed)} did not"
          + (" (a monitor that does not pass is a finding, detailed in the evidence pack)" if failed and result.success
             else "") + (f": {', '.join(failed)}" if failed else ""))
    if not result.success:
        print(f"The run's log, stack traces included: asana-connections runs --log {result.run_id}" if kept
              else "The run's log went with its temporary instance: set DAGSTER_HOME to keep the next one's.")
        causes = "; ".join(sorted(set(_step_failures(result))))
        raise ConnectionProblem(f"the {args.mode} sync of connection {key} failed", causes or "see the run's log")
    for line in _where(result):
        print(line)


def _evidence(args: argparse.Namespace) -> None:
    """Write a period's report from the connection's warehouse (no request to Asana)."""
    from asana_assets.defs.partitions import DEFAULT

    key = DEFAULT if args.id in (None, settings.CONNECTION_ID.get()) else args.id
    warehouse = _warehouse(key)
    try:
        period = Period.of(args.first, args.last)
        outcome = report_period(warehouse, period, key, args.seed, args.sample_sizes)
    except ValueError as error:
        raise SystemExit(f"No period report: {error}") from None
    print("\n".join(outcome_lines(*outcome)))


def _review_start(args: argparse.Namespace) -> None:
    """Start an access review campaign from the connection's warehouse (its latest access
    snapshot); never for the demo, whose world is not the user's Asana."""
    from asana_assets.defs.partitions import DEFAULT
    from asana_assets.defs.resources.asana import AsanaResource
    from asana_assets.lib.compliance.review import launch

    if settings.DEMO.get():
        raise SystemExit(f"No review campaign: {settings.DEMO.name} is set, so the source is the demo simulator, not "
                         "your Asana: unset it to review your workspace's access")
    if args.due < datetime.now(UTC).date():
        raise SystemExit(f"No review campaign: its due day {args.due} has passed")
    key = DEFAULT if args.id in (None, settings.CONNECTION_ID.get()) else args.id
    warehouse = _warehouse(key)
    asana = AsanaResource(
        access_token=settings.ACCESS_TOKEN.get(), connection_id=settings.CONNECTION_ID.get(),
        connections_file=args.store or settings.CONNECTION_STORE.get(), base_url=settings.BASE_URL.get(),
        oauth_client_id=settings.OAUTH_CLIENT_ID.get(), oauth_client_secret=settings.OAUTH_CLIENT_SECRET.get(),
        oauth_redirect_uri=settings.OAUTH_REDIRECT_URI.get(), requests_per_minute=settings.REQUESTS_PER_MINUTE.get(),
    ).for_connection(key)
    campaign = args.campaign or f"review-{args.due.isoformat()}"
    tables = ("user_access", "projects", "users", "teams", "workspaces")
    try:
        t = {name: warehouse.read(name).to_pandas() for name in tables}
        started = launch(t, asana.run, args.project, campaign, args.due, args.reviewer)
    except ValueError as error:
        raise SystemExit(f"No review campaign: {error}") from None
    print(f"Campaign {campaign} (due {args.due}): {len(started.created_tasks)} resource task(s) and "
          f"{len(started.created_subtasks)} member subtask(s) created, {started.existing} resource task(s) already "
          "filed. Decisions are read back by the next sync (access_review_decisions, access_review_completed).")


def _warehouse(key: str):
    """The connection's warehouse, as the settings place it."""
    from asana_assets.defs.resources.warehouse import WarehouseResource

    return WarehouseResource(
        directory=settings.WAREHOUSE_DIR.get(), postgres_url=settings.POSTGRES_URL.get(),
        postgres_schema=settings.POSTGRES_SCHEMA.get(),
    ).for_connection(key).warehouse()


def _where(result) -> Iterator[str]:
    """Where the run's output is: the published tables, Postgres, the evidence pack."""
    metadata = {}
    for event in result.get_asset_materialization_events():
        metadata |= {k: v.value for k, v in event.materialization.metadata.items()}
    if "published_version" in metadata:
        version = Path(metadata["published_version"])
        yield f"Tables: {version.parent.parent / 'asana'} (Parquet, version {version.name})"
    if "postgres_table" in metadata:
        yield f"Postgres: schema {metadata['postgres_table'].split('.')[0]}"
    if "evidence_pack" in metadata:
        pack = Path(metadata["evidence_pack"])
        report = pack / "report.html"
        yield f"Evidence: {report if report.exists() else pack / 'summary.md'} (findings: {pack / 'monitors'})"


def _step_failures(result) -> Iterator[str]:
    """Why the run's steps failed: a connection problem's or the Asana client's own words; any
    other error by its type only, as its text may quote anything, a token included."""
    known = _subclass_names(ConnectionProblem) | _subclass_names(AsanaError)
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            if data.user_failure_data is not None and data.user_failure_data.description:
                yield data.user_failure_data.description  # the step's own words (cause: fix)
                continue
            error = data.error
            while error.cause is not None and error.cls_name.startswith("Dagster"):
                error = error.cause  # the user code's error, under Dagster's wrappers
            text = error.message.strip().partition(f"{error.cls_name}: ")[2]
            known_text = error.cls_name in known and text
            yield known_text or f"unexpected error ({error.cls_name}), in the run's log"


def _subclass_names(cls: type) -> set[str]:
    return {cls.__name__} | {name for sub in cls.__subclasses__() for name in _subclass_names(sub)}


def _runs(args: argparse.Namespace) -> None:
    from asana_assets import runs

    home = os.environ.get("DAGSTER_HOME")
    with runs.instance(home) as instance:
        if args.log:
            print("\n".join(runs.log_lines(instance, args.log)))
            return
        if args.clear:
            key = runs.clear(instance, home, args.clear)
            print(f"Marked run {args.clear} of connection {key} failed; the connection can sync again.")
            return
        lines = runs.describe_runs(instance, home)
    print("\n".join(lines) if lines else "No run in progress.")


def _rotate(args: argparse.Namespace) -> None:
    count = _store(args).rotate()
    print(f"Re-encrypted {count} connection(s) with the newest key, each sealed with its base URL; "
          f"older keys can now leave {settings.CONNECTION_KEYS.name}.")


def _show(connection: Connection, verb: str = "") -> None:
    """One connection in a line or two; `Connection` has no secret fields, so nothing leaks."""
    when = connection.last_validated_at
    print(
        f"{verb + ' ' if verb else ''}{connection.id}  {connection.auth_method}  {connection.status}  "
        f"{connection.base_url}  workspace {connection.workspace_name} ({connection.workspace_gid})  "
        f"as {connection.user_name} <{connection.user_email}>  "
        + (f"validated {when:%Y-%m-%d %H:%M %Z}" if when else "never validated")
    )
    if connection.last_error:
        print(f"  {connection.last_error}")


if __name__ == "__main__":
    sys.exit(main())
