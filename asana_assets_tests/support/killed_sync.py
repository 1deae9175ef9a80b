"""``asana-connections sync`` that stops dead at one point of its run, writes a marker file there
and waits to be killed (test_runs sends SIGKILL): during the crawl, once the crawl's checkpoint
holds ``TEST_KEPT`` projects whole and a part of another's read (its task listing read in pages
of ``TEST_PAGE_SIZE`` tasks, a part a page), while deriving the tickets, or inside the
publication's Postgres transaction."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from asana_assets import cli
from asana_assets.lib.asana import client as client_module
from asana_assets.lib.asana import crawl as crawl_module
from asana_assets.lib.asana.checkpoint import ProjectRead, ReadWriter
from asana_assets.lib.asana.client import AsanaClient
from asana_assets.lib.compliance import tickets
from asana_assets.lib.storage.postgres import PostgresWarehouse


def stall(marker: Path) -> None:
    marker.write_text(str(os.getpid()))
    time.sleep(600)


def main() -> int:
    point, marker = os.environ["TEST_KILL_AT"], Path(os.environ["TEST_MARKER"])
    if point == "crawl":
        original, calls = AsanaClient.get, []

        async def get(self, *args, **kwargs):
            calls.append(1)
            if len(calls) == 40:  # well into the crawl, before any table is written
                stall(marker)
            return await original(self, *args, **kwargs)

        AsanaClient.get = get
    elif point == "checkpointed":
        client_module.PAGE_SIZE, crawl_module.PART_PAGES = int(os.environ["TEST_PAGE_SIZE"]), 1
        original_finish, whole, parts = ReadWriter.finish, set(), set()

        def finish(self, read):
            written = original_finish(self, read)  # the project, or a part of one, is in place
            if isinstance(read, ProjectRead):
                whole.add(read.gid)
            else:
                parts.add(read.project_gid)
            if len(whole) >= int(os.environ["TEST_KEPT"]) and parts - whole:
                stall(marker)
            return written

        ReadWriter.finish = finish
    elif point == "derive":
        original_tickets = tickets.tickets

        def derive(*args, **kwargs):
            stall(marker)
            return original_tickets(*args, **kwargs)

        tickets.tickets = derive
    elif point == "publish":
        original_remove = PostgresWarehouse._remove_absent

        def remove(self, cur, table, *args):
            removed = original_remove(self, cur, table, *args)  # merged, not yet committed
            if table == "tasks":
                stall(marker)
            return removed

        PostgresWarehouse._remove_absent = remove
    return cli.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
