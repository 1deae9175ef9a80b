"""Command line: serve a generated organisation until interrupted.

python -m asana_assets.simulator --port 8080 --seed 1 --tasks 5000 --latency-ms 30
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .config import DEMO_TOKEN, SimulatorConfig
from .generator import PROJECT_TASKS, generate_world
from .runner import Simulator


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asana-simulator", description="Serve a simulated Asana REST API.")
    add = parser.add_argument
    add("--host", default="127.0.0.1")
    add("--port", type=int, default=8080, help="0 picks a free port")
    add("--seed", type=int, default=1, help="world generation seed")
    add("--tasks", type=int, default=5000, help="about this many tasks, subtasks included")
    add("--workspaces", type=int, default=1)
    add("--project-tasks", type=int, default=PROJECT_TASKS, help="about this many tasks a project")
    add("--token", default=DEMO_TOKEN, help="bearer token accepted, acting for a workspace admin")
    add("--requests-per-minute", type=int, default=1500, help="per-token quota")
    add("--cost-per-minute", type=int, default=None,
        help="per-token cost limit: objects a minute's answers may hold (default: no cost limit)")
    add("--access-token-ttl", type=int, default=3600, help="seconds an OAuth access token lives")
    add("--latency-ms", type=float, default=0.0)
    add("--latency-jitter-ms", type=float, default=0.0)
    add("--error-rate", type=float, default=0.0, help="share of 500 answers")
    add("--unavailable-rate", type=float, default=0.0, help="share of 503 answers")
    add("--rate-limit-storm", type=float, default=0.0, help="share of forced 429 answers")
    add("--drop-rate", type=float, default=0.0, help="share of connections closed without an answer")
    add("--malformed-rate", type=float, default=0.0, help="share of task/story gids served corrupted")
    add("--fault-seed", type=int, default=0)
    add("--max-listing-results", type=int, default=None,
        help="truncate larger result sets: the page reaching past this many answers 400")
    add("--large-domain-projects", type=int, default=None,
        help="a workspace with more projects times out (504) when they are listed all at once")
    add("--refuse", action="append", default=[], metavar="PATH=STATUS", type=_refusal,
        help="answer PATH (with ?params that must match) with 401, 402 or 403; repeatable")
    add("--membership-events", choices=("project_membership", "membership"), default="project_membership",
        help="resource_type of project-membership events (membership: with resource_subtype project_membership)")
    return parser


def _refusal(value: str) -> tuple[str, int]:
    path, _, status = value.rpartition("=")
    if not path.startswith("/") or status not in ("401", "402", "403"):
        raise argparse.ArgumentTypeError(f"expected PATH=401|402|403, got {value!r}")
    return path, int(status)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    config = SimulatorConfig(
        tokens={args.token: None},
        requests_per_minute=args.requests_per_minute,
        cost_per_minute=args.cost_per_minute,
        access_token_ttl_seconds=args.access_token_ttl,
        latency_ms=args.latency_ms,
        latency_jitter_ms=args.latency_jitter_ms,
        error_rate=args.error_rate,
        unavailable_rate=args.unavailable_rate,
        rate_limit_storm_rate=args.rate_limit_storm,
        drop_rate=args.drop_rate,
        malformed_rate=args.malformed_rate,
        fault_seed=args.fault_seed,
        max_listing_results=args.max_listing_results,
        large_domain_projects=args.large_domain_projects,
        refusals=dict(args.refuse),
        membership_events=args.membership_events,
    )
    world = generate_world(seed=args.seed, tasks=args.tasks, workspaces=args.workspaces,
                           project_tasks=args.project_tasks)
    simulator = Simulator(world, config)
    url = simulator.start(args.host, args.port)
    print(f"Asana simulator serving {url}\ntoken: {args.token}", flush=True)
    # Both stop it, also where it was started with SIGINT ignored (as a background job inherits it).
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, lambda *_: sys.exit(0))
    try:
        threading.Event().wait()
    finally:
        simulator.stop()


if __name__ == "__main__":
    main()
