"""`digest demo`: one real digest cycle against the bundled sample site and a local
SMTP server that writes to outbox/, with the operator's config.toml for everything else."""

from __future__ import annotations

import dataclasses
import shutil
import threading
import tomllib
from dataclasses import dataclass
from pathlib import Path

from digest.build import sample_parts
from digest.bundled import bundled
from digest.config import (
    Config,
    SmtpSettings,
    SourceSettings,
    StateSettings,
    SubscriberSettings,
    parse_config,
)
from digest.demo.site import SampleSite, SiteServer, load_sample_articles
from digest.demo.smtp_sink import SmtpSink
from digest.errors import PortBusy
from digest.models import RunReport
from digest.pipeline import run_cycle
from digest.state import open_state

DEMO_DATABASE = "state/demo.sqlite3"
# Articles are remembered by URL, so the sample site must keep its address between runs.
SITE_PORT = 8631
SMTP_PORT = 8025


@dataclass(frozen=True)
class DemoResult:
    """The cycle's report and where its output went."""

    report: RunReport
    outbox: Path
    eml_files: int
    preview: Path | None


def demo_config(config: Config, feed_url: str, smtp_port: int) -> Config:
    """The operator's config pointed at the sample site, the local SMTP server and a demo
    state; the bundled sample list when the configured one is not there."""
    subscribers = config.subscribers
    if not config.subscribers_path.is_file():
        subscribers = SubscriberSettings(path=str(bundled("subscribers.csv")))
    return dataclasses.replace(
        config,
        sources=(SourceSettings(name=SampleSite.name, url=feed_url),),
        smtp=SmtpSettings(host="127.0.0.1", port=smtp_port, security="none",
                          timeout=config.smtp.timeout),
        state=StateSettings(database=DEMO_DATABASE),
        subscribers=subscribers,
    )


def default_config(folder: Path) -> Config:
    """The embedded default: the bundled config.toml, as if it sat in `folder`."""
    text = bundled("config.toml").read_text(encoding="utf-8")
    return parse_config(tomllib.loads(text), folder.resolve() / "config.toml")


def reset_demo(config: Config) -> None:
    """Forget the demo's state and empty its outbox."""
    state = config.resolve(DEMO_DATABASE)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{state}{suffix}").unlink(missing_ok=True)
    shutil.rmtree(config.resolve("outbox"), ignore_errors=True)


def run_demo(config: Config, *, fresh: bool = False, site_port: int = SITE_PORT,
             smtp_port: int = 0) -> DemoResult:
    """Serve the sample site, start the SMTP server, run one cycle, write a preview."""
    if fresh:
        reset_demo(config)
    outbox = config.resolve("outbox")
    with _site_server(site_port) as server, _smtp_sink(outbox, smtp_port) as sink:
        demo = demo_config(config, server.feed_url(config.digest.category), sink.port)
        report = run_cycle(demo)
        received = len(sink.messages)
    preview = _write_preview(demo, report, outbox)
    return DemoResult(report=report, outbox=outbox, eml_files=received, preview=preview)


def _site_server(port: int) -> SiteServer:
    try:
        return SiteServer(SampleSite(load_sample_articles()), port=port)
    except OSError as exc:
        raise PortBusy(f"cannot serve the sample site on 127.0.0.1:{port} ({exc.strerror}); "
                       "is `digest demo --serve` or another demo still running? "
                       "(--site-port picks another port)") from None


def _smtp_sink(outbox: Path, port: int) -> SmtpSink:
    try:
        return SmtpSink(folder=outbox, port=port).start()
    except OSError as exc:
        raise PortBusy(f"cannot run the SMTP server on 127.0.0.1:{port} ({exc.strerror}); "
                       "(--smtp-port picks another port)") from None


def serve_forever(outbox: Path, site_port: int = SITE_PORT, smtp_port: int = SMTP_PORT) -> None:
    """Serve the sample site and the SMTP server in the foreground until interrupted."""
    with _site_server(site_port) as server, _smtp_sink(outbox, smtp_port) as sink:
        print(f"sample site: {server.url}/  (feed: {server.feed_url('Spacecraft')})", flush=True)
        print(f"SMTP server: 127.0.0.1:{sink.port}, messages written to {outbox}/", flush=True)
        print("Ctrl-C to stop", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


def _write_preview(config: Config, report: RunReport, outbox: Path) -> Path | None:
    digest_id = report.digest_id or report.resumed_digest_id
    path = outbox / "preview.html"
    if digest_id is None:
        return path if path.exists() else None
    with open_state(config) as state:
        stored = state.ledger.get_digest(digest_id)
    if stored is None:
        return None
    html, _ = sample_parts(config, stored.rendered)
    outbox.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path
