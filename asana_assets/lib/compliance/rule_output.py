"""What every monitor rule returns: one row per evaluated resource, with a one-sentence reason
that names it, and the columns a failure table shows (``NAMED``).

Shared by the ticket rules (``monitors.py``) and the access rules (``access.py``), which
``monitors.finish`` stamps with the run, severity and controls.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

# What a failure table shows beside the reason and the link: the resource's name, the project
# (of a ticket, or the project itself) and the people involved ("role: Name <email>; ...").
# They travel with the results into the evidence pack; the warehouse stores the reason only.
NAMED = ["name", "project", "people"]
COLUMNS = ["resource_type", "resource_gid", "status", "reason", "resource_url", *NAMED]


def rule_rows(resource_type: str, gid, status, reason, url=None, name=None, project=None,
              people=None) -> pd.DataFrame:
    """The rule output frame (``COLUMNS``), every column text. Columns line up by position (a
    Series' index is ignored), so gids, statuses and reasons computed over the same table can be
    passed as they are; a scalar applies to every row; a missing value is null, never the text
    "nan". Text columns stay Arrow-backed: the results of a run (half a million rows at 100,000
    tickets) reach the warehouse and the evidence pack without a Python object per value."""
    count = len(gid)

    def column(value):
        if value is None or np.isscalar(value):
            return pd.array([value] * count, dtype="str")
        return pd.array(value.array if isinstance(value, pd.Series) else value, dtype="str")

    return pd.DataFrame({
        "resource_type": column(resource_type), "resource_gid": column(gid), "status": column(status),
        "reason": column(reason), "resource_url": column(url), "name": column(name),
        "project": column(project), "people": column(people),
    }, index=range(count))


def when(times: pd.Series, precise: bool = False) -> pd.Series:
    """Times as reasons quote them (``2026-03-04 09:00 UTC``): Arrow's text of the UTC wall time
    cut to the minute, some ten times faster than pandas' strftime. ``precise`` keeps the
    milliseconds (``2026-03-04 09:00:01.250 UTC``), the audit log's resolution, where the order
    of two times a second apart is the finding."""
    instants = pa.array(pd.to_datetime(times, utc=True), from_pandas=True)
    wall = pc.utf8_slice_codeunits(instants.cast(pa.timestamp(instants.type.unit)).cast(pa.string()), 0,
                                  23 if precise else 16)
    text = pd.Series(pc.binary_join_element_wise(wall, " UTC", "").to_pandas().array, index=times.index)
    return text.fillna("an unknown time")
