"""A token never reaches what a run leaves behind: its logs, its event log, the tables, the
evidence pack. Checked by scanning all of them for the token string, on a successful run and
on one that fails because the token is refused."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from asana_assets.defs.compliance.assets import compliance_assets
from asana_assets.defs.compliance.checks import monitor_checks
from asana_assets.defs.raw.assets import asana_raw_sync
from asana_assets.defs.resources.asana import AsanaResource
from asana_assets.defs.resources.compliance import ComplianceResource
from asana_assets.defs.resources.warehouse import WarehouseResource
from asana_assets.simulator import Simulator, SimulatorConfig, generate_world
from asana_assets_tests.support.pipeline import materialize

TOKEN = "2/1209000000000000/leak-check:s3cr3t-7f1e9c"
REFUSED = "2/1209000000000000/refused:0ther-s3cr3t-41a2"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def run(sim, token, directory, instance):
    return materialize(
        [asana_raw_sync, *compliance_assets, *monitor_checks],
        instance=instance,
        raise_on_error=False,
        resources={
            "asana": AsanaResource(access_token=token, base_url=sim.base_url, requests_per_minute=1_000_000),
            "warehouse": WarehouseResource(directory=str(directory)),
            "compliance": ComplianceResource(as_of=NOW.isoformat()),
        },
    )


def leaks(text: bytes | str) -> list[str]:
    data = text if isinstance(text, str) else text.decode("utf-8", "replace")
    return [secret for secret in (TOKEN, REFUSED, TOKEN.split(":")[-1], REFUSED.split(":")[-1]) if secret in data]


def test_no_token_in_logs_event_log_tables_or_evidence(tmp_path, capfd, caplog):
    world = generate_world(seed=2, tasks=150, now=NOW)
    config = SimulatorConfig(tokens={TOKEN: None}, requests_per_minute=1_000_000)
    with Simulator(world, config) as sim, dg.instance_for_test() as instance:
        ok = run(sim, TOKEN, tmp_path, instance)
        refused = run(sim, REFUSED, tmp_path / "refused", instance)
        assert ok.success and not refused.success
        events = [dg.serialize_value(record) for r in (ok, refused) for record in instance.all_logs(r.run_id)]
    failure = next(e for e in refused.all_events if e.is_failure)
    assert "ASANA_ACCESS_TOKEN is not accepted (401)" in str(failure.event_specific_data)
    captured = capfd.readouterr()
    files = [p for p in Path(tmp_path).rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in files) and any(p.name == "manifest.json" for p in files)
    assert "set a valid personal access token" in "\n".join(events)  # the scan covers the error texts
    assert not leaks("\n".join(events))
    assert not leaks(captured.out + captured.err + caplog.text)
    for path in files:
        assert not leaks(path.read_bytes()), path
