"""Run every benchmark on PostgreSQL and print the figures; the last line sums them up."""

from __future__ import annotations

import logging
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

# the workflow benchmarks' no-op handlers that return something (Echo, Count)
os.environ.setdefault("F8A_JOBS_HANDLER_MODULES", "tests.handlers")

from bench import (
    apply,
    baseline,
    calendars,
    canvas,
    dojobber_baseline,
    expansion,
    logs,
    ours,
    remote,
    run_search,
    workflows,
)
from bench.database import fresh_database

THREADS = 20
ONE_SHOT_JOBS = 2000
REPEATS = 3
STORED_JOBS = 100_000
INTERVAL_JOBS = 1200
INTERVAL_SECONDS = 20
EXPAND_ROWS = 1_000_000
FANOUT, CHAIN, BIG_FANOUT = 1000, 200, 10_000
CALENDAR_JOBS = 10_000
APPLY_JOBS = 20_000
# The original approach takes minutes per million rows; F8A_JOBS_BENCH_ORIGINAL_ROWS shortens it.
ORIGINAL_ROWS = int(os.environ.get("F8A_JOBS_BENCH_ORIGINAL_ROWS", EXPAND_ROWS))


def median_of(label: str, measure: Callable[[str, int, int], float]) -> float:
    """The median of ``REPEATS`` runs, each on a fresh database: single runs of these short
    bursts vary by a fifth on a shared machine."""
    figures = []
    for _ in range(REPEATS):
        with fresh_database(label) as url:
            figures.append(measure(url, ONE_SHOT_JOBS, THREADS))
    return statistics.median(figures)


def main() -> int:
    logging.basicConfig(level=logging.ERROR)
    # The service's default level (handlers' INFO lines are made and kept with their runs),
    # none of them on the console.
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.ERROR)
    logging.getLogger().setLevel(logging.INFO)
    # Plain APScheduler logs one error per job its last pass cannot submit after shutdown.
    logging.getLogger("apscheduler").setLevel(logging.CRITICAL)
    print(f"bench: PostgreSQL, thread pool of {THREADS} for both schedulers", flush=True)

    our_fires = median_of("fire", ours.fires_per_second)
    plain_fires = median_of("fire_plain", baseline.fires_per_second)
    print(
        f"(1) {ONE_SHOT_JOBS} one-shot jobs due at once (median of {REPEATS}): f8a-jobs "
        f"{our_fires:,.0f} fires/s (every run recorded), plain APScheduler {plain_fires:,.0f} fires/s",
        flush=True,
    )

    our_flows = median_of("e2e", ours.flows_delivered_per_second)
    plain_flows = median_of("e2e_plain", baseline.flows_committed_per_second)
    print(
        f"(1b) {ONE_SHOT_JOBS} FlowScheduling jobs due at once, until every flow is delivered "
        f"(median of {REPEATS}): "
        f"f8a-jobs {our_flows:,.0f} flows/s (run, flow and state in grouped commits), plain "
        f"APScheduler committing one outbox INSERT per run {plain_flows:,.0f} flows/s",
        flush=True,
    )

    with fresh_database("calendars") as url:
        cal = calendars.calendar_burst(url, CALENDAR_JOBS, THREADS)
    print(
        f"(1c) {CALENDAR_JOBS:,} calendar jobs in {len(calendars.ZONES)} time zones due in the "
        f"same minute: run {cal['run']:,}, recorded missed {cal['missed']:,}, unaccounted "
        f"{cal['unaccounted']}, each at its slot: {cal['all_at']}; lateness p50 "
        f"{cal['late_p50_ms']:.0f} ms, p99 {cal['late_p99_ms']:.0f} ms",
        flush=True,
    )

    with fresh_database("api") as url, tempfile.TemporaryDirectory() as workdir:
        api = ours.api_figures(url, STORED_JOBS, Path(workdir))
    with fresh_database("list_plain") as url:
        plain_list = baseline.get_jobs_seconds(url, STORED_JOBS)
    print(
        f"(2) {STORED_JOBS:,} stored jobs: GET /jobs?limit=100 p50 {api['list_p50_s'] * 1000:.1f} ms "
        f"(offset {STORED_JOBS // 2:,}: {api['list_deep_p50_s'] * 1000:.1f} ms; "
        f"?label= of all of them: {api['list_label_p50_s'] * 1000:.1f} ms), "
        f"plain scheduler.get_jobs() {plain_list * 1000:,.0f} ms",
        flush=True,
    )
    print(
        f"(3) POST /jobs: {api['create_per_s']:,.0f} requests/s (8 clients, 2 workers)", flush=True
    )
    with fresh_database("apply") as url, tempfile.TemporaryDirectory() as workdir:
        applied = apply.measure(url, Path(workdir), APPLY_JOBS)
    print(
        f"(3b) POST /jobs/apply, one transaction each: {APPLY_JOBS:,} new jobs in one request "
        f"{applied['create_per_s']:,.0f} jobs/s; again, unchanged {applied['unchanged_per_s']:,.0f} "
        f"jobs/s; all changed {applied['change_per_s']:,.0f} jobs/s",
        flush=True,
    )

    with fresh_database("interval") as url:
        ticks = ours.interval_accounting(url, INTERVAL_JOBS, INTERVAL_SECONDS, THREADS)
    with fresh_database("interval_plain") as url:
        plain_ticks = baseline.interval_accounting(url, INTERVAL_JOBS, INTERVAL_SECONDS, THREADS)
    print(
        f"(4) {INTERVAL_JOBS} jobs every second for {INTERVAL_SECONDS} s: f8a-jobs expected {ticks['expected']:,}, "
        f"run {ticks['run']:,}, recorded missed {ticks['missed']:,}, unaccounted {ticks['unaccounted']}, "
        f"lateness p50 {ticks['late_p50_ms']:.0f} ms p99 {ticks['late_p99_ms']:.0f} ms",
        flush=True,
    )
    print(
        f"    plain APScheduler: expected {plain_ticks['expected']:,}, executed {plain_ticks['executed']:,}, "
        f"missed events {plain_ticks['missed']:,}, max-instance events {plain_ticks['max_instances']:,}, "
        f"unaccounted {plain_ticks['unaccounted']:,}",
        flush=True,
    )

    with fresh_database("expand") as url:
        expansion.prepare(url, EXPAND_ROWS)
        small = expansion.measure("ours", url, EXPAND_ROWS // 10)
        full = expansion.measure("ours", url)
        original = expansion.measure("original", url, ORIGINAL_ROWS)
    expand_rate, original_rate = (
        full["rows"] / full["seconds"],
        original["rows"] / original["seconds"],
    )
    print(
        f"(5) $filter expanded into the outbox: f8a-jobs {full['rows']:,} rows at {expand_rate:,.0f} rows/s, "
        f"peak RSS {full['peak_rss_mb']:.0f} MB ({small['peak_rss_mb']:.0f} MB for {small['rows']:,} rows); "
        f"original approach (json2sql SQL, fetchall, one dispatch per row) {original['rows']:,} rows at "
        f"{original_rate:,.0f} rows/s, peak RSS {original['peak_rss_mb']:.0f} MB",
        flush=True,
    )

    with fresh_database("workflows") as url, tempfile.TemporaryDirectory() as workdir:
        wf = workflows.measure(url, Path(workdir), FANOUT, CHAIN, BIG_FANOUT)
    with tempfile.TemporaryDirectory() as workdir, canvas.worker(Path(workdir) / "celery.log"):
        celery_w1, celery_w2 = canvas.fanout_seconds(FANOUT), canvas.chain_seconds(CHAIN)
    dojobber_w1, dojobber_w2 = (
        dojobber_baseline.fanout_seconds(FANOUT),
        dojobber_baseline.chain_seconds(CHAIN),
    )
    hop_ms, celery_hop_ms = wf["w2_s"] / CHAIN * 1000, celery_w2 / CHAIN * 1000
    print(
        f"(6) workflows from POST /jobs/{{id}}/run to success, every task transition persisted: "
        f"W1 (root, {FANOUT:,} parts, a final task taking their results) f8a-jobs {wf['w1_s']:.2f} s, "
        f"Celery canvas (prefork 2, Redis) {celery_w1:.2f} s, DoJobber (in process, nothing "
        f"persisted) {dojobber_w1:.2f} s; W2 (a chain of {CHAIN}) f8a-jobs {hop_ms:.1f} ms a hop, "
        f"Celery {celery_hop_ms:.1f} ms, DoJobber {dojobber_w2 / CHAIN * 1000:.2f} ms; "
        f"W1 of {BIG_FANOUT:,} parts {wf['big_w1_s']:.1f} s, peak RSS of the leading worker "
        f"{wf['rss_peak_mb']:.0f} MB (all service processes {wf['rss_peak_total_mb']:.0f} MB)",
        flush=True,
    )

    with fresh_database("remote") as url, tempfile.TemporaryDirectory() as workdir:
        rem = remote.measure(url, Path(workdir), FANOUT)
    remote_ratio = rem["one_s"] / rem["two_s"]
    print(
        f"(7) W1 of {FANOUT:,} parts sleeping {remote.SLEEP * 1000:.0f} ms on f8a-jobs workers "
        f"(concurrency {remote.CONCURRENCY}, {remote.POOL} pool, Redis; median of "
        f"{remote.REPEATS}): one worker "
        f"{rem['one_s']:.2f} s, two {rem['two_s']:.2f} s (x{remote_ratio:.2f}); in-process "
        f"executor with {remote.CONCURRENCY} threads {rem['local_s']:.2f} s, so "
        f"{rem['overhead_ms']:.1f} ms more a task on a worker slot; the leading process's CPU "
        f"{rem['cpu_per_1000_s']:.2f} s per 1,000 remote tasks; "
        f"{rem['messages_per_task']:.2f} broker messages a task",
        flush=True,
    )

    with fresh_database("logs") as url:
        lg = logs.measure(url)
    print(
        f"(8) run logs: a handler logging {logs.LOUD_LINES:,} lines in a loop, captured and "
        f"written (1 MiB kept) {lg['lines_per_s']:,.0f} lines/s, x{lg['capture_overhead']:.2f} the "
        f"time of the same logging uncaptured; a short try's end (its last records handed to "
        f"its outcome's commit) {lg['end_us_quiet']:.1f} us (median of {logs.SMALL_TRIES}), "
        f"{lg['end_us_beside_loud']:.1f} us beside a try logging in a tight loop",
        flush=True,
    )

    with fresh_database("search") as url:
        rs = run_search.measure(url)
    last = run_search.DEEP_PAGES[-1]
    print(
        f"(9) GET /runs over {run_search.RUNS:,} runs, {run_search.PAGE} a page (p50 of "
        f"{run_search.REPEATS}): first page {rs['first_ms']:.1f} ms, the 1,000th "
        f"{rs['page_1000_ms']:.1f} ms, the last ({last:,}th) {rs[f'page_{last}_ms']:.1f} ms by "
        f"the cursor; by OFFSET {rs['offset_1000_ms']:.1f} and {rs[f'offset_{last}_ms']:.1f} ms",
        flush=True,
    )

    print(
        f"bench: fire_ratio={our_fires / plain_fires:.2f} e2e_fire_ratio={our_flows / plain_flows:.2f} list_ratio={plain_list / api['list_p50_s']:.0f} "
        f"create_per_s={api['create_per_s']:.0f} apply_create_per_s={applied['create_per_s']:.0f} "
        f"apply_unchanged_per_s={applied['unchanged_per_s']:.0f} "
        f"apply_change_per_s={applied['change_per_s']:.0f} late_p99_ms={ticks['late_p99_ms']:.0f} "
        f"unaccounted={ticks['unaccounted']} expand_rows_per_s={expand_rate:.0f} "
        f"expand_peak_rss_mb={full['peak_rss_mb']:.0f} expand_ratio={expand_rate / original_rate:.1f} "
        f"wf_fanout_s={wf['w1_s']:.2f} wf_fanout_vs_celery={celery_w1 / wf['w1_s']:.1f} "
        f"wf_hop_ms={hop_ms:.2f} wf_hop_vs_celery={celery_hop_ms / hop_ms:.1f} "
        f"wf_rss_mb={wf['rss_peak_mb']:.0f} cal_late_p99_ms={cal['late_p99_ms']:.0f} "
        f"cal_unaccounted={cal['unaccounted']} remote_fanout_s_1w={rem['one_s']:.2f} "
        f"remote_fanout_s_2w={rem['two_s']:.2f} remote_ratio={remote_ratio:.2f} "
        f"remote_overhead_ms={rem['overhead_ms']:.1f} "
        f"remote_cpu_s_per_1000={rem['cpu_per_1000_s']:.2f} "
        f"remote_messages_per_task={rem['messages_per_task']:.2f} "
        f"log_lines_per_s={lg['lines_per_s']:.0f} log_capture_overhead={lg['capture_overhead']:.2f} "
        f"log_end_us={lg['end_us_quiet']:.1f} log_end_us_loud={lg['end_us_beside_loud']:.1f} "
        f"search_first_ms={rs['first_ms']:.1f} search_p1000_ms={rs['page_1000_ms']:.1f} "
        f"search_last_ms={rs[f'page_{last}_ms']:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
