"""A process drawing on one token's shared budget, for the tests of one quota per token: it sends
``--requests`` GETs at once through an `AsanaClient` whose budget is kept at STORE, then prints
one JSON line: its requests, its responses by status and its errors by type.

    python -m asana_assets_tests.support.quota_worker BASE_URL TOKEN STORE --requests 40 \\
        [--pool runs] [--share 0.9] [--requests-per-minute 60] [--max-concurrency 4] [--window 6] [--max-retries 8] \\
        [--barrier DIR]

``--window`` shortens the span Asana counts the quota over (the tests shorten the simulator's too).
``--barrier``: once its client is open, the process writes ``DIR/ready-<pid>`` and sends nothing
until ``DIR/go`` exists, so processes started together send together however long each took to
start on a busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections import Counter
from pathlib import Path

from asana_assets.lib.asana import pacing
from asana_assets.lib.asana.client import AsanaClient
from asana_assets.lib.storage.quota import open_budget


async def spend(args: argparse.Namespace) -> dict:
    budget = None if args.store == "-" else open_budget(args.store, args.token)
    async with AsanaClient(
        args.base_url, args.token, requests_per_minute=args.requests_per_minute,
        max_concurrency=args.max_concurrency, max_retries=args.max_retries,
        budget=budget, pool=args.pool, share=args.share,
    ) as client:
        if args.barrier:
            await _wait_for_go(Path(args.barrier))
        outcomes = await asyncio.gather(*(client.get("/users/me") for _ in range(args.requests)),
                                        return_exceptions=True)
    return {
        "requests": client.stats.requests,
        "responses": {str(status): n for status, n in client.stats.responses.items()},
        "errors": dict(Counter(type(o).__name__ for o in outcomes if isinstance(o, BaseException))),
    }


async def _wait_for_go(barrier: Path) -> None:
    (barrier / f"ready-{os.getpid()}").touch()
    while not (barrier / "go").exists():
        await asyncio.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("base_url")
    parser.add_argument("token")
    parser.add_argument("store")
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--pool", default="runs")
    parser.add_argument("--share", type=float, default=0.9)
    parser.add_argument("--requests-per-minute", type=int, default=60)
    parser.add_argument("--max-concurrency", type=int, default=4)
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--max-retries", type=int, default=8)
    parser.add_argument("--barrier")
    args = parser.parse_args()
    pacing.QUOTA_WINDOW = args.window
    print(json.dumps(asyncio.run(spend(args))), flush=True)


if __name__ == "__main__":
    main()
