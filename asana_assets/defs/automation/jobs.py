"""The sync jobs, each running one connection (partition) at a time, and the period report's."""

import dagster as dg
from pydantic import Field

from asana_assets.defs.partitions import CONNECTIONS, partition_key
from asana_assets.defs.raw.assets import SyncConfig, asana_raw_sync
from asana_assets.defs.raw.checks import FRESHNESS_CHECK
from asana_assets.defs.resources.warehouse import WarehouseResource
from asana_assets.lib.compliance.period import (
    DEFAULT_SEED,
    SAMPLE_SIZES,
    Period,
    format_sample_sizes,
    parse_sample_sizes,
)
from asana_assets.lib.compliance.period_report import outcome_lines, report_period

SYNC = dg.AssetSelection.all() - dg.AssetSelection.checks(FRESHNESS_CHECK)  # judged between runs, not by them

full_sync = dg.define_asset_job(
    "asana_full_sync", selection=SYNC,
    description="Crawl every Asana table of a connection, derive the compliance tables, run the monitors, "
                "write the evidence pack.",
)
incremental_sync = dg.define_asset_job(
    "asana_incremental_sync", selection=SYNC,
    config=dg.RunConfig(ops={asana_raw_sync.node_def.name: SyncConfig(mode="incremental")}),
    description="Apply the changes a connection's events feeds report, then re-derive and re-check everything.",
)
reconcile_sync = dg.define_asset_job(
    "asana_reconcile_sync", selection=SYNC,
    config=dg.RunConfig(ops={asana_raw_sync.node_def.name: SyncConfig(mode="reconcile")}),
    description="List every project's sections, members and tasks and re-read only what changed (what the events "
                "feeds missed, deletions included), then re-derive and re-check everything.",
)


class PeriodConfig(dg.Config):
    """The period report's settings, as ``asana-connections evidence`` takes them."""

    period_from: str = Field(description="First day of the period, YYYY-MM-DD (UTC)")
    period_to: str = Field(description="Last day of the period, YYYY-MM-DD (UTC), included")
    seed: int = Field(default=DEFAULT_SEED, description="Seed of the sample; the same seed draws the same sample")
    sample_sizes: str = Field(default=format_sample_sizes(SAMPLE_SIZES),
                              description="Sample size by population size: <largest population>:<size>,...,*:<size>")


@dg.op(description="Write the evidence report of an audit period from what the connection's warehouse kept.")
def period_evidence_report(context: dg.OpExecutionContext, config: PeriodConfig,
                           warehouse: WarehouseResource) -> dg.Output[str]:
    connection = partition_key(context)
    try:
        period = Period.of(config.period_from, config.period_to)
        sizes = parse_sample_sizes(config.sample_sizes)
    except ValueError as error:
        raise dg.Failure(description=f"No period report: {error}") from None
    folder, why_no_pdf, p = report_period(warehouse.for_connection(connection).warehouse(), period, connection,
                                          config.seed, sizes)
    for line in outcome_lines(folder, why_no_pdf, p):
        context.log.info(line)
    return dg.Output(str(folder), metadata={
        "period_report": dg.MetadataValue.path(str(folder / "report.html")),
        "period_pdf": dg.MetadataValue.path(str(folder / "report.pdf")) if why_no_pdf is None else why_no_pdf,
        "seed": config.seed, "sample": dg.MetadataValue.json(p.samples),
        "verdicts": dg.MetadataValue.json({m: v for m, (v, _) in p.verdicts.items()}),
        "runs_in_period": len(p.runs),
    })


@dg.job(partitions_def=CONNECTIONS, description="Write an audit period's evidence report "
        "(evidence/period_<from>_<to>/) from the connection's warehouse, as asana-connections evidence does.")
def period_evidence():
    period_evidence_report()
