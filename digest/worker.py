"""`digest worker`: a sending process that shares the delivery of digests with any number
of others, on any number of machines, through the state database: each claims batches of
deliveries under a lease (row locks with SKIP LOCKED on PostgreSQL), renews it while it
works, and gives back what it did not send. A worker that dies loses its lease, and its
batch goes to the others."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from digest.clock import Clock, utc_now
from digest.config import Config
from digest.deliver import Transport, transport_factory
from digest.deliver.send import send_digest
from digest.shutdown import stop_requested
from digest.state import open_state

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
               clock: Clock = utc_now) -> WorkerReport:
    """Send whatever digest has pending deliveries, until stopped (SIGTERM), or, with
    `once`, until nothing is left to claim. Deferred deliveries wait for the next
    `digest run`, `resume` or scheduled cycle, as they do without workers."""
    factory = make_transport or transport_factory(config)
    report = WorkerReport()
    state = open_state(config)
    log.info("worker started: batches of %d, lease %g s", config.delivery.batch_size,
             config.delivery.lease_seconds)
    try:
        while not stop_requested.is_set():
            worked = False
            for stored in state.ledger.sending_digests():
                outcome = send_digest(config, state, stored, factory, clock,
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
                if stop_requested.is_set():
                    break
            if not worked:
                if once:
                    break
                stop_requested.wait(config.delivery.worker_poll_seconds)
    finally:
        state.close()
    log.info("worker stopped: %d sent, %d failed, %d deferred", report.sent, report.failed,
             report.deferred)
    return report
