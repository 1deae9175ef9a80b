"""What several test modules share that is not a fixture: the pipeline runner, ground-truth
comparisons, world changes, and where the repository and the test Postgres are."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
POSTGRES_URL = os.environ.get("ASANA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
