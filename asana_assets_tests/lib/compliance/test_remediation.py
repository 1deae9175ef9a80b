"""When a finding's task may close: only when the monitor judged the resource again."""

from __future__ import annotations

import pandas as pd

from asana_assets.lib.compliance.remediation import cleared


def results(*rows):
    return pd.DataFrame(rows, columns=["monitor_id", "resource_type", "resource_gid", "status"])


KEY = "admin_access_restricted/user/11"


def test_judged_ok_or_out_of_the_population_clears():
    assert cleared(results(("admin_access_restricted", "user", "11", "ok")), {KEY}) == {KEY}
    assert cleared(results(("admin_access_restricted", "user", "11", "skip")), {KEY}) == {KEY}
    # The resource is gone from a monitor that ran: cleared.
    assert cleared(results(("admin_access_restricted", "user", "12", "ok")), {KEY}) == {KEY}


def test_still_alarming_erring_or_not_judged_stays_open():
    assert cleared(results(("admin_access_restricted", "user", "11", "alarm")), {KEY}) == set()
    assert cleared(results(("admin_access_restricted", "user", "11", "error")), {KEY}) == set()
    assert cleared(results(("admin_access_restricted", "user", "11", "info")), {KEY}) == set()
    # The monitor erred elsewhere, or did not run at all: a missing row proves nothing.
    assert cleared(results(("admin_access_restricted", "user", "12", "error")), {KEY}) == set()
    assert cleared(results(("tickets_assigned", "ticket", "5", "ok")), {KEY}) == set()
    assert cleared(results(), {KEY}) == set()
