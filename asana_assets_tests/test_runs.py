"""``asana-connections sync`` under crashes and races: a run killed at any point never blocks the
next one, which starts without help and gives the source's tables; two syncs started at once
on a new instance let exactly one run; bad settings fail in seconds with their fix."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import orjson
import pytest

from asana_assets.lib.schema import RAW_TABLES
from asana_assets.lib.storage.parquet import ParquetWarehouse
from asana_assets.simulator import DEMO_TOKEN, Simulator, SimulatorConfig, generate_world
from asana_assets_tests.support import POSTGRES_URL, REPO, kill_at
from asana_assets_tests.support.postgres import PostgresTables
from asana_assets_tests.support.truth import assert_matches_truth

BIN = Path(sys.executable).parent
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
QUOTA = 1_000_000


def env_for(tmp_path: Path, base_url: str, schema: str | None = None, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASANA_", "DAGSTER_"))}
    (tmp_path / "home").mkdir(exist_ok=True)
    env |= {"DAGSTER_HOME": str(tmp_path / "home"), "ASANA_WAREHOUSE_DIR": str(tmp_path / "wh"),
            "ASANA_BASE_URL": base_url, "ASANA_ACCESS_TOKEN": DEMO_TOKEN, "ASANA_REQUESTS_PER_MINUTE": str(QUOTA)}
    if schema:
        env |= {"ASANA_POSTGRES_URL": POSTGRES_URL, "ASANA_POSTGRES_SCHEMA": schema}
    return env | extra


def sync(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "asana-connections"), "sync", *args], env=env, capture_output=True,
                          text=True, timeout=300, cwd=REPO)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["crawl", "derive", "publish"])
def test_a_sync_killed_anywhere_is_followed_by_a_plain_rerun_that_gives_the_source(point, tmp_path, schema):
    world = generate_world(seed=21, tasks=80, now=NOW)  # some 150 requests: the 40th is well into the crawl
    marker = tmp_path / "stalled"
    with Simulator(world, SimulatorConfig(requests_per_minute=QUOTA)) as sim:
        env = env_for(tmp_path, sim.base_url, schema)
        if point == "publish":  # a warehouse to keep whole: the killed run would have changed it
            assert sync(env).returncode == 0
            world.update_task(next(t["gid"] for t in world.ground_truth()["tasks"] if not t["parent"]),
                              name="Renamed before the killed run", actor=world.default_user)
        killed = subprocess.Popen([sys.executable, "-m", "asana_assets_tests.support.killed_sync", "sync"],
                                  env={**env, "TEST_KILL_AT": point, "TEST_MARKER": str(marker)}, cwd=REPO,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        kill_at(killed, marker, point)
        with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
            [stuck] = instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
        if point == "crawl":  # what `runs` shows of a stuck run is the same wherever it stopped
            listed = subprocess.run([str(BIN / "asana-connections"), "runs"], env=env, capture_output=True,
                                    text=True, timeout=120, cwd=REPO)
            assert stuck.dagster_run.run_id in listed.stdout and "stuck: its process is gone" in listed.stdout

        rerun = sync(env)  # plain: no flag, no cleanup by hand
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert f"Run {stuck.dagster_run.run_id} of connection default was left in progress" in rerun.stdout
        truth = world.ground_truth()
    assert_matches_truth({t: ParquetWarehouse(tmp_path / "wh").read(t) for t in RAW_TABLES}, truth)
    with PostgresTables(POSTGRES_URL, schema) as postgres:
        assert_matches_truth({t: postgres.read(t) for t in RAW_TABLES}, truth)
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        assert instance.get_run_by_id(stuck.dagster_run.run_id).status == dg.DagsterRunStatus.FAILURE


@pytest.mark.slow
def test_a_first_sync_killed_mid_crawl_is_resumed_by_a_plain_rerun(tmp_path):
    """The rerun takes the projects the killed crawl kept from its checkpoint: it asks none of
    them for its sections, field settings, events token or task count again; and it resumes the
    project the crawl was in the middle of from the parts of its read kept (pages of ten tasks
    there; the rerun reads pages of a hundred), with that read's events token.
    (`lib/asana/test_resume.py` counts the requests a resumed crawl spares.)"""
    world = generate_world(seed=21, tasks=80, now=NOW)  # six projects
    marker = tmp_path / "stalled"
    with Simulator(world, SimulatorConfig(requests_per_minute=QUOTA)) as sim:
        env = env_for(tmp_path, sim.base_url)
        killed = subprocess.Popen([sys.executable, "-m", "asana_assets_tests.support.killed_sync", "sync"],
                                  env={**env, "TEST_KILL_AT": "checkpointed", "TEST_KEPT": "2",
                                       "TEST_PAGE_SIZE": "10", "TEST_MARKER": str(marker)},
                                  cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        kill_at(killed, marker, "two projects kept, and a part of another")
        # A project kept whole is a folder named by its gid; a part, a folder under its project's
        # in parts/ (those of the two kept whole among them), naming the tasks it holds.
        kept = tmp_path / "wh" / "checkpoint"
        whole = {p.name for p in kept.glob("*/*") if p.name.isdigit()}
        parts = [p for p in kept.glob("*/parts/*/[!.]*") if p.parent.name not in whole]
        partly = {p.parent.name for p in parts}
        held = {task for p in parts for task in orjson.loads((p / "part.json").read_bytes())["read"]["tasks"]}
        sim.stats.reset()
        rerun = sync(env)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        served = sim.stats.by_route
        truth = world.ground_truth()
    assert len(whole) == 2 and partly and held
    left = len(truth["projects"]) - 2  # the projects the killed crawl had not kept
    for route in ("/projects/{project_gid}/sections", "/projects/{project_gid}/custom_field_settings",
                  "/projects/{project_gid}/task_counts"):
        assert served["/api/1.0" + route] == left, route
    # A project read in part keeps the events token taken before its parts were read.
    assert served["/api/1.0/events"] == left - len(partly)
    assert (f"(full, resumed: {2 + len(partly)} project(s) read by an earlier run, whole or in {len(parts)} part(s), "
            "from its checkpoint)") in rerun.stderr
    assert_matches_truth({t: ParquetWarehouse(tmp_path / "wh").read(t) for t in RAW_TABLES}, truth)
    assert not (tmp_path / "wh" / "checkpoint").exists()  # the commit discarded it


@pytest.mark.slow
def test_two_syncs_started_at_once_on_a_new_instance_let_exactly_one_run(tmp_path):
    world = generate_world(seed=22, tasks=150, now=NOW)
    with Simulator(world, SimulatorConfig(requests_per_minute=QUOTA, latency_ms=20)) as sim:
        env = env_for(tmp_path, sim.base_url)
        both = [subprocess.Popen([str(BIN / "asana-connections"), "sync"], env=env, cwd=REPO, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
        outcomes = [(p.wait(timeout=300), *p.communicate()) for p in both]
        codes = sorted(code for code, _, _ in outcomes)
        assert codes == [0, 1], outcomes
        refused = next(err for code, _, err in outcomes if code == 1)
        assert "is being synced by another asana-connections process" in refused.strip().splitlines()[-1]
        again = sync(env)  # the instance is usable afterwards
        assert again.returncode == 0, again.stderr[-3000:]
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        assert len(instance.get_run_records()) == 2  # the winner's run and the last one; the loser made none


@pytest.mark.parametrize(("setting", "value", "fix"), [
    ("ASANA_WORKSPACE_GID", "12 34/../users", "set ASANA_WORKSPACE_GID to the digits"),
    ("ASANA_POSTGRES_URL", "postgresql://nobody:secret@127.0.0.1:1/none", "check ASANA_POSTGRES_URL"),
    ("ASANA_ACCESS_TOKEN", "not-a-token",
     "ASANA_ACCESS_TOKEN is not accepted (401): set a valid personal access token or service-account token"),
    ("ASANA_WORKSPACE_GID", "999999", "ASANA_WORKSPACE_GID=999999 does not exist or is not visible to the token (404): "
     "set ASANA_WORKSPACE_GID to a workspace the token sees, or unset it to sync every one"),
    ("ASANA_BASE_URL", "http://127.0.0.1:1/api/1.0", "the Asana API at ASANA_BASE_URL=http://127.0.0.1:1/api/1.0 "
     "could not be reached (127.0.0.1:1 refused the connection): check ASANA_BASE_URL and the network"),
    ("ASANA_BASE_URL", "https://no-such-host.invalid/api/1.0", "could not be reached (DNS: the host name "
     "no-such-host.invalid does not resolve)"),
])
def test_a_bad_setting_fails_fast_with_its_fix_in_the_last_line(setting, value, fix, tmp_path):
    world = generate_world(seed=23, tasks=60, now=NOW)
    with Simulator(world, SimulatorConfig(requests_per_minute=QUOTA)) as sim:
        started = time.monotonic()
        done = sync(env_for(tmp_path, sim.base_url, **{setting: value}))
        served = sum(sim.stats.by_route.values())
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert fix in last, done.stderr[-2000:]
    assert "secret" not in done.stderr + done.stdout and "not-a-token" not in done.stderr + done.stdout
    assert served <= 1  # nothing crawled: at most the request that found the token or the workspace refused
    assert time.monotonic() - started < 60
    # A summary: the steps a failure skips and the stack traces stay in the run's log, which it names.
    assert "Not executing" not in done.stderr and "Stack Trace" not in done.stderr and "File \"" not in done.stderr
    run_id = done.stdout.split("Failed to sync connection default (full), run ")[1].split(":")[0]
    assert f"The run's log, stack traces included: asana-connections runs --log {run_id}" in done.stdout


def test_a_refused_token_fails_the_connection_check_of_its_run_and_the_log_keeps_the_details(tmp_path):
    world = generate_world(seed=23, tasks=60, now=NOW)
    with Simulator(world, SimulatorConfig(requests_per_minute=QUOTA)) as sim:
        refused = sync(env := env_for(tmp_path, sim.base_url, ASANA_ACCESS_TOKEN="not-a-token"))
        (tmp_path / "other").mkdir()
        missing = sync(env_for(tmp_path / "other", sim.base_url, ASANA_WORKSPACE_GID="999999"))
    check = dg.AssetCheckKey(dg.AssetKey(["asana", "workspaces"]), "connection_valid")
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        [record] = instance.event_log_storage.get_asset_check_execution_history(check, limit=5)
        run_id = record.run_id
        evaluation = record.event.dagster_event.event_specific_data
    assert record.status.value == "FAILED" and not evaluation.passed
    assert evaluation.metadata["cause"].text == "ASANA_ACCESS_TOKEN is not accepted (401)"
    assert evaluation.metadata["fix"].text == "set a valid personal access token or service-account token"
    assert f"run {run_id}: 0 check(s) passed, 1 did not: asana/workspaces:connection_valid" in refused.stdout
    # A workspace that does not exist is not the connection's fault: its check is not failed for it.
    with dg.DagsterInstance.from_config(str(tmp_path / "other" / "home")) as instance:
        [record] = instance.event_log_storage.get_asset_check_execution_history(check, limit=5)
    assert record.status.value != "FAILED" and "1 did not" not in missing.stdout, missing.stdout
    log = subprocess.run([str(BIN / "asana-connections"), "runs", "--log", run_id], env=env, capture_output=True,
                         text=True, timeout=120, cwd=REPO)
    assert log.returncode == 0, log.stderr
    assert "Stack Trace:" in log.stdout and "Not executing" in log.stdout and "not-a-token" not in log.stdout


@pytest.mark.parametrize("home", [True, False])
def test_sync_says_where_its_run_is_recorded_and_warns_when_nowhere_lasting(home, tmp_path):
    env = env_for(tmp_path, "http://127.0.0.1:1/api/1.0", ASANA_WORKSPACE_GID="x")  # refused before any request
    if not home:
        del env["DAGSTER_HOME"]
    done = sync(env)
    assert done.returncode == 1
    warning = ("Warning: DAGSTER_HOME is not set, so the run is recorded on a temporary instance that is deleted when "
               "this command ends, its log with it. To keep runs, set DAGSTER_HOME to a folder")
    recorded = f"The run is recorded on the Dagster instance at {tmp_path / 'home'} ($DAGSTER_HOME)."
    assert (warning in done.stderr) is not home and (recorded in done.stdout) is home
    if not home:
        assert "The run's log went with its temporary instance: set DAGSTER_HOME to keep the next one's." in done.stdout


def planned_ui(*args: str, **settings: str) -> str:
    """The command `make ui` would run, in an environment holding ``settings`` and no other ASANA_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASANA_")} | settings
    planned = subprocess.run(["make", "-n", "ui", *args], env=env, capture_output=True, text=True, timeout=60,
                             cwd=REPO)
    [command] = [line for line in planned.stdout.splitlines() if "dagster dev" in line]
    return command


@pytest.mark.parametrize(("args", "port"), [([], "3000"), (["PORT=3001"], "3001")])
def test_make_ui_serves_on_the_port_asked_for(args, port):
    assert planned_ui(*args).endswith(f"dagster dev -w workspace.yaml -p {port}")


@pytest.mark.parametrize(("args", "settings", "demo"), [
    ([], {}, "1"),  # nothing configured: the demo, as after `make demo`
    ([], {"ASANA_ACCESS_TOKEN": "2/1/x:y"}, "0"),  # a real workspace's token: never the demo
    ([], {"ASANA_CONNECTION_ID": "abc"}, "0"),
    (["DEMO=1"], {"ASANA_ACCESS_TOKEN": "2/1/x:y"}, "1"),  # asked for: the demo refuses, naming the token
])
def test_make_ui_shows_the_demo_only_where_nothing_else_is_configured(args, settings, demo):
    assert planned_ui(*args, **settings).startswith(f"ASANA_DEMO={demo} ")


def test_every_option_of_every_command_has_help():
    from asana_assets.cli import _parser

    def without_help(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from without_help(sub, f"{path} {name}")
            elif not action.help:
                yield f"{path} {'/'.join(action.option_strings) or action.dest}"

    assert list(without_help(_parser(), "asana-connections")) == []
    shown = subprocess.run([str(BIN / "asana-connections"), "sync", "--help"], capture_output=True, text=True,
                           timeout=60, cwd=REPO)
    assert "full: crawl everything; incremental: apply the changes" in " ".join(shown.stdout.split())


def test_a_warehouse_that_cannot_be_written_fails_before_the_crawl(tmp_path):
    (tmp_path / "a-file").write_text("")
    world = generate_world(seed=23, tasks=60, now=NOW)
    with Simulator(world, SimulatorConfig(requests_per_minute=QUOTA)) as sim:
        done = sync(env_for(tmp_path, sim.base_url, ASANA_WAREHOUSE_DIR=str(tmp_path / "a-file" / "wh")))
        served = sum(sim.stats.by_route.values())
    assert done.returncode == 1
    assert "set ASANA_WAREHOUSE_DIR to a folder this process can write" in done.stderr.strip().splitlines()[-1]
    assert served == 0
