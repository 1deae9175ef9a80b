"""What every monitor rule returns: one row per evaluated resource, with a one-sentence reason.

Shared by the ticket rules (``monitors.py``) and the access rules (``access.py``), which
``monitors.finish`` stamps with the run, severity and controls.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def rule_rows(resource_type: str, gid, status, reason, url=None) -> pd.DataFrame:
    """The rule output frame. Columns line up by position (a Series' index is ignored), so gids,
    statuses and reasons computed over the same table can be passed as they are; a scalar
    applies to every row."""
    count = len(gid)

    def column(value):
        return value if value is None or np.isscalar(value) else np.asarray(value, dtype=object)

    frame = pd.DataFrame({
        "resource_type": resource_type, "resource_gid": column(gid), "status": column(status),
        "reason": column(reason), "resource_url": column(url),
    }, index=range(count))
    return frame.astype("str").where(frame.notna())


def when(times: pd.Series) -> pd.Series:
    """Times as reasons quote them."""
    return pd.to_datetime(times, utc=True).dt.strftime("%Y-%m-%d %H:%M UTC").fillna("an unknown time")
