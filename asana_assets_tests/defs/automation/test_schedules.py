"""The schedules: each connection is reconciled daily at its hour, and fully synced weekly, on
the weekday the schedule module names."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta

import dagster as dg

from asana_assets.defs.automation import schedules
from asana_assets.defs.automation.schedules import full_sync_at_connection_hour, reconcile_at_connection_hour
from asana_assets.defs.partitions import DEFAULT, register
from asana_assets_tests.support.pipeline import resources

MONDAY = datetime(2026, 6, 1, 3, 0, tzinfo=UTC)  # 03:00 UTC, the default connection's hour


def requested(schedule, at, tmp_path):
    configured = resources("http://127.0.0.1:9/api/1.0", tmp_path)
    with (dg.instance_for_test() as instance,
          dg.build_schedule_context(instance=instance, resources=configured, scheduled_execution_time=at) as context):
        register(instance, [DEFAULT])
        result = schedule(context)
    return [] if isinstance(result, dg.SkipReason) else [(r.partition_key, r.run_key) for r in result]


def test_a_reconcile_every_day_and_a_full_sync_on_sundays(tmp_path):
    assert reconcile_at_connection_hour.job_name == "asana_reconcile_sync"
    assert full_sync_at_connection_hour.job_name == "asana_full_sync"
    week = [MONDAY + timedelta(days=n) for n in range(7)]  # Monday 1 June to Sunday 7 June 2026
    assert [requested(reconcile_at_connection_hour, day, tmp_path) for day in week] == [
        [(DEFAULT, f"reconcile-default-2026060{n}T03")] for n in range(1, 7)
    ] + [[]]
    assert [requested(full_sync_at_connection_hour, day, tmp_path) for day in week] == [[]] * 6 + [
        [(DEFAULT, "full-default-20260607T03")]
    ]
    for schedule in (reconcile_at_connection_hour, full_sync_at_connection_hour):  # not its hour
        assert requested(schedule, MONDAY + timedelta(hours=1), tmp_path) == []
        assert requested(schedule, week[6] + timedelta(hours=1), tmp_path) == []


def test_the_full_sync_weekday_is_a_setting_of_the_schedules(tmp_path, monkeypatch):
    monkeypatch.setattr(schedules, "FULL_SYNC_WEEKDAY", calendar.WEDNESDAY)
    wednesday, sunday = MONDAY + timedelta(days=2), MONDAY + timedelta(days=6)
    assert requested(full_sync_at_connection_hour, wednesday, tmp_path) == [(DEFAULT, "full-default-20260603T03")]
    assert requested(reconcile_at_connection_hour, wednesday, tmp_path) == []
    assert requested(full_sync_at_connection_hour, sunday, tmp_path) == []
    assert requested(reconcile_at_connection_hour, sunday, tmp_path) == [(DEFAULT, "reconcile-default-20260607T03")]
