"""`digest worker`: a sending process that shares the delivery of digests with any number
of others, on any number of machines, through the state database: each claims batches of
deliveries under a lease (row locks with SKIP LOCKED on PostgreSQL), renews it while it
works, and gives back what it did not send. A worker that dies loses its lease, and its
batch goes to the others."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from digest import pipeline
from digest.config import Config
from digest.deliver import Transport, configured_transport

log = logging.getLogger(__name__)


@dataclass
class WorkerReport:
    """What one worker did before it stopped."""

    digests: int = 0
    sent: int = 0
    failed: int = 0
    deferred: int = 0


def run_worker(config: Config, *, once: bool = False,
               make_transport: Callable[[], Transport] | None = None,
               now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> WorkerReport:
    """Send whatever digest has pending deliveries, until stopped (SIGTERM), or, with
    `once`, until nothing is left to claim. Deferred deliveries wait for the next
    `digest run`, `resume` or scheduled cycle, as they do without workers."""
    factory = make_transport or (lambda: configured_transport(config))
    report = WorkerReport()
    store = pipeline.open_store(config)
    log.info("worker started: batches of %d, lease %g s", config.delivery.batch_size,
             config.delivery.lease_seconds)
    try:
        while not pipeline.stop_requested.is_set():
            worked = False
            for stored in store.sending_digests():
                outcome = pipeline.send_digest(config, store, stored, factory, now,
                                              retry_deferred=False)
                if outcome.sent or outcome.failed or outcome.deferred:
                    worked = True
                    report.digests += 1
                    report.sent += outcome.sent
                    report.failed += outcome.failed
                    report.deferred += outcome.deferred
                    log.info("digest %d: this worker sent %d, failed %d, deferred %d; %d "
                             "left in all", stored.id, outcome.sent, outcome.failed,
                             outcome.deferred, outcome.remaining)
                if pipeline.stop_requested.is_set():
                    break
            if not worked:
                if once:
                    break
                pipeline.stop_requested.wait(config.delivery.worker_poll_seconds)
    finally:
        store.close()
    log.info("worker stopped: %d sent, %d failed, %d deferred", report.sent, report.failed,
             report.deferred)
    return report
