"""The run's last step, which commits what the run staged: the one with no selected asset
downstream of its own; the steps that act after the commit (findings as tasks) do not count."""

from __future__ import annotations

import dagster as dg
import pytest

from asana_assets.defs.publish import is_last_step

LAST: dict[str, bool] = {}


def _asset(name: str, deps: list[str], key: list[str] | None = None):
    @dg.asset(key=key or [name], deps=[dg.AssetKey([d]) if isinstance(d, str) else dg.AssetKey(d) for d in deps])
    def step(context) -> None:
        LAST[name] = is_last_step(context)

    return step


raw = _asset("raw", [])
derived = _asset("derived", ["raw"])
monitors = _asset("monitors", ["derived"])
apart = _asset("apart", [])  # depends on nothing the others write
remediation = _asset("remediation", [["monitors"]], key=["asana", "remediation_tasks"])
ALL = [raw, derived, monitors, apart, remediation]


@pytest.mark.parametrize(("selection", "last"), [
    (["raw", "derived", "monitors"], {"raw": False, "derived": False, "monitors": True}),
    (["raw"], {"raw": True}),  # the raw tables alone: the crawl commits
    (["raw", "derived", "monitors", "remediation"], {"raw": False, "derived": False, "monitors": True,
                                                     "remediation": True}),  # it acts after the commit
    (["raw", "apart"], {"raw": True, "apart": True}),  # neither waits for the other: each commits
])
def test_the_last_step_is_the_one_no_selected_asset_depends_on(selection, last):
    LAST.clear()
    keys = {"remediation": dg.AssetKey(["asana", "remediation_tasks"])}
    result = dg.materialize(ALL, selection=[keys.get(name, dg.AssetKey([name])) for name in selection])
    assert result.success
    assert LAST == last
