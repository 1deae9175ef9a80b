"""A crawl's checkpoint on disk: a project is kept whole or not at all, and taken back only while
it is of this crawl's key, younger than its events token's life and newer than the last commit."""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from asana_assets.lib.asana.checkpoint import FOLDER, MANIFEST, PARTS, Checkpoint, PartRead, ProjectRead
from asana_assets.lib.asana.state import TOKEN_LIFE, SyncState
from asana_assets.lib.schema import RAW_TABLES
from asana_assets.lib.storage.warehouse import Warehouse

READ_AT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
FIELDS = (("name", "created_at"), ("name", "notes"))


def section(gid: str, position: int) -> dict:
    return {"gid": gid, "project_gid": "1100", "name": f"Column {position}", "position": position,
            "created_at": datetime(2026, 5, 1, tzinfo=UTC)}


def read_of(gid: str = "1100", read_at: datetime = READ_AT, parts: tuple[str, ...] = ()) -> ProjectRead:
    return ProjectRead(gid=gid, workspace_gid="1000", read_at=read_at, token="sync-1", synced_at=read_at,
                       num_tasks=2, tasks_counted_at=read_at, split=False,
                       refused=[{"table": "sections", "status": 402, "path": "/projects/1100/sections"}],
                       gone=["1301"], claimed=["1300", "1301"], shared=["1302"], unknown_memberships=1,
                       parts=list(parts))


def task(gid: str) -> dict:
    return {"gid": gid, "name": f"Task {gid}", "created_at": READ_AT}


def part_of(tasks: list[str], read_at: datetime = READ_AT) -> PartRead:
    return PartRead(project_gid="1100", read_at=read_at, token="sync-1", tasks=tasks, claimed=[*tasks, "1399"],
                    gone=["1398"], unknown_memberships=2)


def keep_part(checkpoint: Checkpoint, tasks: list[str], read_at: datetime = READ_AT) -> str:
    """Checkpoint a part of project 1100 holding ``tasks``; its name."""
    writer = checkpoint.part_writer("1100", 2, lambda table, data: None)
    for gid in tasks:
        writer.add("tasks", task(gid))
    assert writer.finish(part_of(tasks, read_at))
    return writer.name


def opened(root, selection: str = "1000", fields=FIELDS, **options) -> Checkpoint:
    checkpoint = Checkpoint(root, now=options.pop("now", lambda: READ_AT), **options)
    checkpoint.open(selection, *fields)
    return checkpoint


def keep(checkpoint: Checkpoint, gid: str = "1100", read_at: datetime = READ_AT, chunk_rows: int = 2) -> list[int]:
    """Checkpoint a project of three sections and one quarantined record; the sizes of the Arrow
    groups handed back."""
    handed: list[int] = []
    writer = checkpoint.writer(gid, chunk_rows, lambda table, data: handed.append(data.num_rows))
    for position, gid_ in enumerate(["1201", "1202", "1203"]):
        writer.add("sections", section(gid_, position))
    writer.add("quarantine", {"table": "tasks", "gid": "1304", "error": "name: missing", "raw": "{}",
                              "observed_at": READ_AT})
    writer.finish(read_of(gid, read_at))
    return handed


def test_a_project_is_kept_whole_and_read_back_as_written(tmp_path):
    checkpoint = opened(tmp_path)
    # Groups of two rows: sections 2 + 1 (the last at finish), the quarantine row at finish.
    assert keep(checkpoint) == [2, 1, 1]
    [folder] = (tmp_path / FOLDER).iterdir()
    assert sorted(p.name for p in (folder / "1100").iterdir()) == [MANIFEST, "quarantine.parquet", "sections.parquet"]
    assert pq.ParquetFile(folder / "1100" / "sections.parquet").num_row_groups == 2

    again = opened(tmp_path)
    assert again.reads() == {"1100": read_of()}
    tables = again.tables("1100")
    assert tables["sections"].to_pylist() == [section("1201", 0), section("1202", 1), section("1203", 2)]
    assert tables["quarantine"].column("gid").to_pylist() == ["1304"]
    assert tables["sections"].schema == RAW_TABLES["sections"]


@pytest.mark.parametrize(("selection", "fields", "kept"), [
    ("1000", FIELDS, True),  # the same crawl
    ("*", FIELDS, False),  # every workspace rather than one
    ("1000", (("name", "created_at"), ("name",)), False),  # the crawl asks Asana for other fields
])
def test_a_checkpoint_of_another_selection_or_read_is_removed(tmp_path, selection, fields, kept):
    keep(opened(tmp_path))
    other = opened(tmp_path, selection, fields)
    assert (set(other.reads()) == {"1100"}) is kept
    assert len(list((tmp_path / FOLDER).iterdir())) == 1  # only the opened key's folder is left


def test_a_change_of_a_raw_table_s_schema_makes_another_key(tmp_path, monkeypatch):
    keep(opened(tmp_path))
    widened = RAW_TABLES["sections"].append(pa.field("color", pa.string()))
    monkeypatch.setitem(RAW_TABLES, "sections", widened)
    assert opened(tmp_path).reads() == {}


@pytest.mark.parametrize(("age", "kept"), [
    (TOKEN_LIFE - timedelta(hours=1), True),
    (TOKEN_LIFE, True),  # the edge: a token of exactly its life is still used (SyncState.token)
    (TOKEN_LIFE + timedelta(microseconds=1), False),
])
def test_a_project_read_longer_ago_than_its_token_lives_is_read_again(tmp_path, age, kept):
    keep(opened(tmp_path))
    later = opened(tmp_path, now=lambda: READ_AT + age)
    assert ("1100" in later.reads()) is kept
    assert any(p.name == "1100" for p in later.folder.iterdir()) is kept  # a stale project's folder goes


@pytest.mark.parametrize(("not_before", "kept"), [
    (None, True),  # no sync committed yet
    (READ_AT - timedelta(microseconds=1), True),  # the last commit began before this read
    (READ_AT, False),  # the edge: the committed sync is the crawl that read it
    (READ_AT + timedelta(hours=1), False),  # a sync committed since
])
def test_a_project_read_before_the_last_committed_sync_began_is_stale(tmp_path, not_before, kept):
    keep(opened(tmp_path))
    assert ("1100" in opened(tmp_path, not_before=not_before).reads()) is kept


def test_a_project_a_killed_process_left_half_written_is_ignored_and_removed(tmp_path):
    checkpoint = opened(tmp_path)
    writer = checkpoint.writer("1100", 1, lambda table, data: None)
    writer.add("sections", section("1201", 0))  # written as a row group, in a temporary folder
    assert [p.name.startswith(".1100.") for p in checkpoint.folder.iterdir()] == [True]
    # The process dies here: no finish.
    again = opened(tmp_path)
    assert again.reads() == {} and list(again.folder.iterdir()) == []


@pytest.mark.parametrize("damage", ["manifest gone", "manifest cut", "fewer rows", "file gone", "file cut"])
def test_a_project_whose_files_do_not_match_its_manifest_is_read_again(tmp_path, damage, caplog):
    checkpoint = opened(tmp_path)
    keep(checkpoint)
    folder = checkpoint.folder / "1100"
    sections = folder / "sections.parquet"
    if damage == "manifest gone":
        (folder / MANIFEST).unlink()
    elif damage == "manifest cut":
        (folder / MANIFEST).write_bytes((folder / MANIFEST).read_bytes()[:40])
    elif damage == "fewer rows":  # a valid file of 2 rows where the manifest counts 3
        pq.write_table(pa.Table.from_pylist([section("1201", 0), section("1202", 1)], RAW_TABLES["sections"]),
                       sections)
    elif damage == "file gone":
        sections.unlink()
    else:
        sections.write_bytes(sections.read_bytes()[:100])
    again = opened(tmp_path)
    with caplog.at_level(logging.WARNING):
        restored = again.tables("1100") if "1100" in again.reads() else None
    assert restored is None
    assert not folder.exists()


def test_a_write_that_fails_leaves_the_project_out_and_hands_over_every_row(tmp_path, caplog):
    checkpoint = opened(tmp_path)
    handed: list[int] = []
    writer = checkpoint.writer("1100", 2, lambda table, data: handed.append(data.num_rows))
    writer.add("sections", section("1201", 0))
    shutil.rmtree(checkpoint.folder)  # the disk refuses every write from here
    with caplog.at_level(logging.WARNING):
        for position, gid in enumerate(["1202", "1203"], start=1):
            writer.add("sections", section(gid, position))
        writer.finish(read_of())
    assert handed == [2, 1]  # the crawl's tables still get all three rows
    assert "Could not checkpoint project 1100" in caplog.text
    assert opened(tmp_path).reads() == {}


def test_parts_are_kept_as_they_finish_and_a_whole_project_is_read_back_with_its_parts(tmp_path):
    checkpoint = opened(tmp_path)
    first, second = keep_part(checkpoint, ["1300", "1301", "1302"]), keep_part(checkpoint, ["1303"])
    unfinished = checkpoint.part_writer("1100", 1, lambda table, data: None)
    unfinished.add("tasks", task("1304"))  # written as a row group; the process dies before finish

    again = opened(tmp_path)  # the next crawl: the project is not whole, its two parts are offered
    assert again.reads() == {}
    assert again.parts("1100") == {first: part_of(["1300", "1301", "1302"]), second: part_of(["1303"])}
    assert again.part_tables("1100", second)["tasks"].to_pylist() == [
        {**dict.fromkeys(RAW_TABLES["tasks"].names), **task("1303")}]
    assert sorted(p.name for p in (again.folder / PARTS / "1100").iterdir()) == sorted([first, second])

    keep(again)  # ...which reads the rest of it, and keeps it whole with its parts
    writer = again.writer("1100", 2, lambda table, data: None)
    writer.add("sections", section("1201", 0))
    assert writer.finish(read_of(parts=(first, second)))
    tables = opened(tmp_path).tables("1100")
    assert sorted(tables) == ["sections", "tasks"]
    assert sorted(tables["tasks"]["gid"].to_pylist()) == ["1300", "1301", "1302", "1303"]


@pytest.mark.parametrize("damage", ["part gone", "part's file gone"])
def test_a_project_whose_part_is_missing_is_read_again_from_its_other_parts(tmp_path, damage):
    checkpoint = opened(tmp_path)
    first, second = keep_part(checkpoint, ["1300"]), keep_part(checkpoint, ["1301"])
    writer = checkpoint.writer("1100", 2, lambda table, data: None)
    writer.add("sections", section("1201", 0))
    writer.finish(read_of(parts=(first, second)))
    if damage == "part gone":
        shutil.rmtree(checkpoint.folder / PARTS / "1100" / second)
    else:
        (checkpoint.folder / PARTS / "1100" / second / "tasks.parquet").unlink()
    again = opened(tmp_path)
    assert again.tables("1100") is None
    assert again.reads() == {}  # the project's folder went
    offered = again.parts("1100")  # a part without its manifest is not offered; one without a file is,
    assert set(offered) == ({first} if damage == "part gone" else {first, second})
    assert (again.part_tables("1100", second) if second in offered else None) is None  # ...and refused when read
    assert [p.name for p in (again.folder / PARTS / "1100").iterdir()] == [first]
    assert again.part_tables("1100", first)["tasks"]["gid"].to_pylist() == ["1300"]


@pytest.mark.parametrize(("age", "kept"), [(TOKEN_LIFE, True), (TOKEN_LIFE + timedelta(microseconds=1), False)])
def test_a_part_whose_token_is_older_than_its_life_is_read_again(tmp_path, age, kept):
    name = keep_part(opened(tmp_path), ["1300"])
    later = opened(tmp_path, now=lambda: READ_AT + age)
    assert (name in later.parts("1100")) is kept
    assert (later.folder / PARTS / "1100" / name).exists() is kept


def test_an_abandoned_read_is_left_out_and_hands_over_every_row(tmp_path, caplog):
    checkpoint = opened(tmp_path)
    handed: list[int] = []
    writer = checkpoint.writer("1100", 2, lambda table, data: handed.append(data.num_rows))
    for position, gid in enumerate(["1201", "1202", "1203"]):
        writer.add("sections", section(gid, position))
    with caplog.at_level(logging.WARNING):
        writer.abandon("a part of its read could not be kept")
    assert writer.finish(read_of()) is False
    assert handed == [2, 1]
    assert "Could not checkpoint project 1100 (a part of its read could not be kept)" in caplog.text
    assert opened(tmp_path).reads() == {} and list(checkpoint.folder.iterdir()) == []


def test_discard_removes_every_key(tmp_path):
    keep(opened(tmp_path))
    keep(opened(tmp_path, "*"))
    Checkpoint(tmp_path).discard()
    assert not (tmp_path / FOLDER).exists()


@pytest.mark.parametrize(("sync_state", "discarded"), [(True, True), (False, False)])
def test_a_commit_discards_the_checkpoint_only_with_a_sync_state(tmp_path, sync_state, discarded):
    """A sync's run stages its sync state, and its commit publishes or supersedes what the crawl
    kept; a run of other tables (no state) leaves a killed crawl's checkpoint to resume."""
    keep(opened(tmp_path))
    warehouse = Warehouse(tmp_path, None, "asana", run="run1")
    warehouse.stage("sections", pa.Table.from_pylist([section("1201", 0)], RAW_TABLES["sections"]))
    if sync_state:
        warehouse.stage_state(SyncState())
    warehouse.commit()
    assert (tmp_path / FOLDER).exists() is not discarded


def test_a_resumed_crawl_dates_its_checkpointed_tokens_from_the_read_that_took_them():
    now = READ_AT + timedelta(hours=5)
    state = SyncState(tokens={
        "1100": {"sync": "a", "taken_at": now.isoformat()},  # checkpointed: read at READ_AT
        "1101": {"sync": "b", "taken_at": now.isoformat()},  # read by the resumed crawl
        "1102": {"sync": "c", "taken_at": (READ_AT - timedelta(hours=1)).isoformat()},  # older already
    })
    state.resumed({"1100": READ_AT, "1102": READ_AT, "1103": READ_AT}, full_sync_requests=900)
    assert state.tokens == {
        "1100": {"sync": "a", "taken_at": READ_AT.isoformat()},
        "1101": {"sync": "b", "taken_at": now.isoformat()},
        "1102": {"sync": "c", "taken_at": (READ_AT - timedelta(hours=1)).isoformat()},
    }
    assert state.last_full_sync_requests == 900
    assert state.token("1100", READ_AT + TOKEN_LIFE + timedelta(seconds=1)) is None  # expired from its read
    assert SyncState().began_last_sync() is None
    assert SyncState(last_sync_at=READ_AT.isoformat()).began_last_sync() == READ_AT
