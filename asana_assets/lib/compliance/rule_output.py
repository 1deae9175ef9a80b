"""What every monitor rule returns: one row per evaluated resource, with a one-sentence reason
that names it, and the columns a failure table shows (``NAMED``).

Shared by the ticket rules (``monitors.py``) and the access rules (``access.py``), which
``monitors.finish`` stamps with the run, severity and controls.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# What a failure table shows beside the reason and the link: the resource's name, the project
# (of a ticket, or the project itself) and the people involved ("role: Name <email>; ...").
# They travel with the results into the evidence pack; the warehouse stores the reason only.
NAMED = ["name", "project", "people"]
COLUMNS = ["resource_type", "resource_gid", "status", "reason", "resource_url", *NAMED]


def rule_rows(resource_type: str, gid, status, reason, url=None, name=None, project=None,
              people=None) -> pd.DataFrame:
    """The rule output frame (``COLUMNS``). Columns line up by position (a Series' index is
    ignored), so gids, statuses and reasons computed over the same table can be passed as they
    are; a scalar applies to every row; a missing value is null, never the text "nan"."""
    count = len(gid)

    def column(value):
        return value if value is None or np.isscalar(value) else np.asarray(value, dtype=object)

    frame = pd.DataFrame({
        "resource_type": resource_type, "resource_gid": column(gid), "status": column(status),
        "reason": column(reason), "resource_url": column(url), "name": column(name),
        "project": column(project), "people": column(people),
    }, index=range(count))
    return frame.astype(object).where(frame.notna(), None).astype(object)


def when(times: pd.Series) -> pd.Series:
    """Times as reasons quote them."""
    return pd.to_datetime(times, utc=True).dt.strftime("%Y-%m-%d %H:%M UTC").fillna("an unknown time")
