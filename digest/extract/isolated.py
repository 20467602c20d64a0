"""Extraction in worker processes, so that a page can neither crash nor stall a run.

A small pool of long-lived, single-threaded workers, forked from a "forkserver" that has
digest.extract loaded. Each worker caps its own address space (RLIMIT_AS) and the pool
gives it a wall-clock limit per page: a worker that dies (a crash in lxml, the memory cap,
a signal) or overruns is killed and replaced, and that page alone fails, with an
ExtractError naming its URL and the cause. Fetching threads share one pool safely: each
call borrows one idle worker for one page."""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import resource
import signal
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from digest.errors import ExtractError
from digest.models import Article, FeedEntry

log = logging.getLogger(__name__)

TIME_LIMIT = 30.0  # seconds of wall-clock time one page may take to extract
MEMORY_LIMIT = 1024 * 1024 * 1024  # bytes of address space a worker may map (idle: ~60 MB)
MAX_WORKERS = max(1, min(4, os.cpu_count() or 1))
STOP_GRACE = 2.0  # seconds a worker has to exit once told to


@dataclass(frozen=True)
class Job:
    """One page to extract, as the worker receives it."""

    body: bytes
    entry: FeedEntry
    page_url: str
    content_type: str


def serve(conn: Connection, memory_limit: int) -> None:
    """A worker's life: cap memory, then extract each job received until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    _cap_memory(memory_limit)
    from digest.extract import extract_article

    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        conn.send(_run(extract_article, job))


def _run(extract: Any, job: Job) -> tuple[str, Any]:
    try:
        return "ok", extract(job.body, job.entry, page_url=job.page_url,
                             content_type=job.content_type)
    except ExtractError as exc:
        return "error", str(exc)
    except MemoryError:
        return "fatal", "ran out of memory"
    except Exception as exc:  # noqa: BLE001 — a bug on one page must not end the worker
        return "error", f"extraction failed ({type(exc).__name__}: {exc})"


def _cap_memory(limit: int) -> None:
    if limit <= 0:
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


class _Worker:
    """One worker process and the parent's end of its pipe."""

    def __init__(self, context: Any, memory_limit: int) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(target=serve, args=(child, memory_limit),
                                       name="digest-extract", daemon=True)
        self.process.start()
        child.close()

    def stop(self, *, kill: bool = False) -> None:
        """Ask the worker to exit (kill it when asked, or when it does not), and reap it."""
        if not kill:
            try:
                self.conn.send(None)
            except OSError:
                kill = True
            self.process.join(STOP_GRACE)
        if kill or self.process.is_alive():
            self.process.kill()
            self.process.join(STOP_GRACE)
        self.conn.close()
        self.process.close()

    def cause_of_death(self) -> str:
        """Why the worker is gone, in the operator's words."""
        self.process.join(STOP_GRACE)
        code = self.process.exitcode
        if code is not None and code < 0:
            return f"the extraction process was killed by {signal.Signals(-code).name}"
        return f"the extraction process died (exit status {code})"


class ExtractionPool:
    """Isolated extraction for many threads: `extract` is `extract_article` in a worker."""

    def __init__(self, workers: int = MAX_WORKERS, *, time_limit: float | None = None,
                 memory_limit: int | None = None) -> None:
        self.size = max(1, workers)
        self.time_limit = TIME_LIMIT if time_limit is None else time_limit
        self.memory_limit = MEMORY_LIMIT if memory_limit is None else memory_limit
        self._context = _context()
        self._idle: queue.LifoQueue[_Worker | None] = queue.LifoQueue()
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False
        for _ in range(self.size):
            self._idle.put(None)  # a slot: its worker starts when first needed
        # Workers start while the first pages are still being fetched.
        self._warming = threading.Thread(target=self._warm, name="extract-warm-up",
                                         daemon=True)
        self._warming.start()

    def extract(self, body: bytes, entry: FeedEntry, *, page_url: str = "",
                content_type: str = "") -> Article:
        """`extract_article` of the page in a worker; ExtractError when it fails, crashes
        its worker or takes longer than the time limit."""
        url = page_url or entry.url
        worker = self._borrow()
        try:
            outcome, value = self._ask(worker, Job(body, entry, page_url, content_type), url)
        except BaseException:
            self._replace(worker)
            raise
        if outcome == "fatal":
            self._replace(worker)
            raise ExtractError(f"{url}: extraction {value} (over the "
                               f"{self.memory_limit // 2**20} MiB limit of its process)")
        self._idle.put(worker)
        if outcome == "error":
            raise ExtractError(value if value.startswith(url) else f"{url}: {value}")
        assert isinstance(value, Article)
        return value

    def _ask(self, worker: _Worker, job: Job, url: str) -> tuple[str, Any]:
        try:
            worker.conn.send(job)
            if not worker.conn.poll(self.time_limit):
                raise ExtractError(f"{url}: extraction took longer than "
                                   f"{self.time_limit:g} s and was stopped")
            outcome, value = worker.conn.recv()
        except (EOFError, OSError):
            raise ExtractError(f"{url}: {worker.cause_of_death()} while extracting the page "
                               "(a crash or the memory limit)") from None
        return outcome, value

    def _warm(self) -> None:
        slots = [self._idle.get() for _ in range(self.size)]
        try:
            slots = [slot or self._start() for slot in slots]
        except (OSError, ExtractError) as exc:
            log.debug("extraction workers not started ahead: %s", exc)
        finally:
            for slot in slots:
                self._idle.put(slot)

    def _borrow(self) -> _Worker:
        slot = self._idle.get()
        if slot is not None and slot.process.is_alive():
            return slot
        if slot is not None:
            with self._lock:
                self._all.discard(slot)
            slot.stop(kill=True)
        try:
            return self._start()
        except BaseException:
            self._idle.put(None)
            raise

    def _start(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise ExtractError("extraction pool is closed")
            worker = _Worker(self._context, self.memory_limit)
            self._all.add(worker)
        return worker

    def _replace(self, worker: _Worker) -> None:
        """Kill a worker that failed its page; its slot starts a new one when next needed."""
        with self._lock:
            self._all.discard(worker)
        worker.stop(kill=True)
        self._idle.put(None)

    def close(self) -> None:
        """Stop every worker and wait for it: no process is left behind."""
        self._warming.join()
        with self._lock:
            self._closed = True
            workers, self._all = list(self._all), set()
        for worker in workers:
            worker.stop()

    def __enter__(self) -> ExtractionPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _context() -> Any:
    """A forkserver with digest.extract loaded (a fork of a threaded parent is unsafe,
    spawning re-imports trafilatura for every worker); spawn where there is no forkserver."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["digest.extract"])
    return context
