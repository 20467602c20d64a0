"""Every table of the state database, in one place. Only the modules of `digest.state`
import these; the rest of the program goes through the repositories."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    Unicode,
    UniqueConstraint,
)

metadata = MetaData()

digests = Table(
    "digests", metadata,
    Column("id", Integer, primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("status", String(16), nullable=False),  # sending | paused | sent
    Column("subject", Text, nullable=False),
    Column("html", Text, nullable=False),
    Column("text", Text, nullable=False),
    # The scheduled fire time this digest was built for; unique, so a slot never gets two.
    # NULL for digests sent by hand (`digest run`).
    Column("slot", DateTime(timezone=True)),
    # The random part of the digest's per-subscriber placeholders (NULL: the old fixed ones).
    Column("marker", String(32)),
    # How its links count ([tracking] when it was rendered): 'clicks,opens,reader'; NULL: none.
    Column("tracking", String(32)),
    Index("ix_digests_slot", "slot", unique=True),
)

digest_articles = Table(
    "digest_articles", metadata,
    Column("digest_id", Integer, ForeignKey("digests.id"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("url", Text, nullable=False, index=True),
    Column("title", Text, nullable=False),
    Column("source_name", Text, nullable=False),
    # Where the article's tracked link leads (its URL with utm_* added); NULL: the URL.
    Column("link", Text),
)

deliveries = Table(
    "deliveries", metadata,
    Column("id", Integer, primary_key=True),
    Column("digest_id", Integer, ForeignKey("digests.id"), nullable=False),
    Column("email", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("format", String(8), nullable=False, default="html"),
    # pending | sent | failed | deferred | skipped
    Column("status", String(16), nullable=False),
    Column("message_id", Text),
    Column("reply", Text),
    Column("code", Integer),  # the SMTP reply code of the last attempt
    Column("attempts", Integer, nullable=False, default=0),
    Column("updated_at", DateTime(timezone=True)),
    # Who is sending this row right now, and until when (`digest worker` and every sender
    # claim batches; a lease that runs out is picked up by another sender).
    Column("lease_owner", Text),
    Column("lease_until", DateTime(timezone=True)),
    # The address as compared (digest.subscribers.address_key), and the subscriber's
    # token id their unsubscribe link carries.
    Column("email_key", Text),
    Column("token_id", String(24)),
    UniqueConstraint("digest_id", "email"),
    Index("ix_deliveries_email_key", "email_key"),
    Index("ix_deliveries_digest_status", "digest_id", "status"),
    # A tracked click asks when the digest (or this reader's copy) was delivered.
    Index("ix_deliveries_digest_status_time", "digest_id", "status", "updated_at"),
    Index("ix_deliveries_token_digest", "token_id", "digest_id"),
    # A bounce that lost its VERP address still quotes the message's Message-ID.
    Index("ix_deliveries_message_id", "message_id"),
)

# Every process sending right now, with a heartbeat: the global rate limit is shared out
# among the live ones.
senders = Table(
    "senders", metadata,
    Column("owner", Text, primary_key=True),  # host:pid:random
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
)

locks = Table(
    "locks", metadata,
    Column("name", String(64), primary_key=True),
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("acquired_at", DateTime(timezone=True), nullable=False),
)

source_state = Table(
    "source_state", metadata,
    Column("url", Text, primary_key=True),
    Column("etag", Text, nullable=False, default=""),
    Column("last_modified", Text, nullable=False, default=""),
    Column("last_success_at", DateTime(timezone=True)),
    Column("last_failure_at", DateTime(timezone=True)),
    Column("last_error", Text, nullable=False, default=""),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("listed", Integer, nullable=False, default=0),  # entries in the category last read
)

# Entries a source listed that have not been in a digest yet: kept so that a feed that
# answers 304, or drops old items, still yields them until they are sent.
source_entries = Table(
    "source_entries", metadata,
    Column("source_url", Text, primary_key=True),
    Column("url", Text, primary_key=True),
    Column("entry", Text, nullable=False),  # the FeedEntry as JSON
    Column("first_seen", DateTime(timezone=True), nullable=False),
)

# An editor's summary of an article, used in place of the generated one; digest_id is set
# once the article has gone out in a digest, so later edits cannot rewrite history.
summary_edits = Table(
    "summary_edits", metadata,
    Column("url", Text, primary_key=True),
    Column("text", Text, nullable=False),  # the editor's summary; "" keeps the generated one
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("digest_id", Integer, ForeignKey("digests.id")),
    Column("excluded", Integer, nullable=False, default=0),
    Column("pinned", Integer, nullable=False, default=0),
    Column("position", Integer),
    Column("headline", Text, nullable=False, default=""),
    Column("updated_by", Text, nullable=False, default=""),
)

# The editor's marks on the next digest: a hold, an approval (with the articles it covers),
# the opening note, a scheduled slot waiting for approval. A mark in force has neither
# used_at (it did its work for a digest or slot) nor ended_at (withdrawn, replaced,
# released); either way it stays, for `digest status` to say what became of it.
editorial_marks = Table(
    "editorial_marks", metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(16), nullable=False),  # hold | approval | note | waiting
    Column("actor", Text, nullable=False, default=""),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("text", Text, nullable=False, default=""),  # a hold's reason, the note itself
    Column("articles", Text, nullable=False, default=""),  # JSON list of approved URLs
    Column("slot", DateTime(timezone=True)),  # the slot waiting, or the slot a hold skipped
    Column("used_at", DateTime(timezone=True)),
    Column("used_digest_id", Integer),
    Column("ended_at", DateTime(timezone=True)),
    Column("ended_reason", String(16)),
    Index("ix_editorial_marks_kind", "kind", "id"),
)

# Editor logins, known server-side (the cookie is signed, this makes logout final); only
# a hash of the session id is stored.
editor_sessions = Table(
    "editor_sessions", metadata,
    Column("sid_hash", String(64), primary_key=True),
    Column("editor", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# The subscriber list. email_key is the address normalised for comparison; email keeps it
# as typed for display. Every change of status is an event with its cause.
subscribers = Table(
    "subscribers", metadata,
    Column("id", Integer, primary_key=True),
    Column("email_key", Text, nullable=False, unique=True),
    Column("email", Text, nullable=False),
    Column("name", Text, nullable=False, default=""),
    # pending | active | unsubscribed | bounced | complained
    Column("status", String(16), nullable=False),
    Column("format", String(8), nullable=False, default="html"),  # html | text
    Column("subscribed_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("confirm_sent_at", DateTime(timezone=True)),  # last confirmation email
    Column("token_id", String(24)),  # what their links carry instead of the address
    Index("ix_subscribers_token_id", "token_id", unique=True),
)

subscriber_events = Table(
    "subscriber_events", metadata,
    Column("id", Integer, primary_key=True),
    Column("email_key", Text, nullable=False, index=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("status", String(16), nullable=False),
    Column("cause", Text, nullable=False),
)

# Addresses never to mail again unless an operator says so: sha256 of the email_key, so an
# address that asked to be forgotten stays suppressed without being stored.
suppressions = Table(
    "suppressions", metadata,
    Column("email_hash", String(64), primary_key=True),
    Column("reason", String(16), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

# Fingerprints of the subscriber files read into the list, so an unchanged file is not
# read again.
settings_table = Table(
    "settings", metadata,
    Column("name", Text, primary_key=True),
    Column("value", Text, nullable=False),
)

# Subscribe requests from the web form, waiting for the confirmation to be mailed: the form
# answers after one insert, the same for every address, and a worker does the rest.
signup_requests = Table(
    "signup_requests", metadata,
    Column("id", Integer, primary_key=True),
    Column("email", Text, nullable=False),
    Column("name", Text, nullable=False, default=""),
    Column("format", String(8), nullable=False, default="html"),
    Column("received_at", DateTime(timezone=True), nullable=False),
)

# One row per job run (scheduled or by hand): what it did, or why it did nothing.
runs = Table(
    "runs", metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(16), nullable=False),  # digest | gather | resume | manual
    Column("slot", DateTime(timezone=True)),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("outcome", String(16), nullable=False),  # sent | skipped | failed | gathered
    Column("reason", Text, nullable=False, default=""),
    Column("articles", Integer, nullable=False, default=0),
    Column("recipients", Integer, nullable=False, default=0),
    Column("sent", Integer, nullable=False, default=0),
    Column("failed", Integer, nullable=False, default=0),
    Column("deferred", Integer, nullable=False, default=0),
    Column("digest_id", Integer),
)


# One row per message read from a bounce mailbox or piped in: what it was, whom it was
# about, and what it did. Its fingerprint (sha256 of the bytes) is unique, so a message
# counts once however often it is read (a rerun after a crash skips what was recorded).
bounce_events = Table(
    "bounce_events", metadata,
    Column("id", Integer, primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("source", Text, nullable=False),  # imap | maildir | stdin
    # hard | soft | complaint | auto-reply | unrecognised
    Column("kind", String(16), nullable=False),
    # counted | acted | ignored | forged | unknown | unmatched
    Column("outcome", String(16), nullable=False),
    Column("delivery_id", Integer),
    Column("digest_id", Integer),
    Column("email_key", Text),
    Column("status", String(16), nullable=False, default=""),
    Column("diagnostic", Text, nullable=False, default=""),
    Column("action", Text, nullable=False, default=""),  # what it did, or why nothing
    Index("ix_bounce_events_fingerprint", "fingerprint", unique=True),
    Index("ix_bounce_events_email_key", "email_key"),
    Index("ix_bounce_events_digest_kind", "digest_id", "kind"),
)

# The rate alerts already sent: one per digest and kind.
bounce_alerts = Table(
    "bounce_alerts", metadata,
    Column("digest_id", Integer, primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
)


# A click on a tracked link that counted (repeats within minutes do not); `automated` marks
# link scanners and previewers, counted apart from people. `reader` is the subscriber's
# token id, only in digests that count per reader ([tracking] per_subscriber).
clicks = Table(
    "clicks", metadata,
    Column("id", Integer, primary_key=True),
    Column("digest_id", Integer, ForeignKey("digests.id"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("automated", Integer, nullable=False, default=0),
    Column("reader", String(64)),
    Index("ix_clicks_digest_position", "digest_id", "position"),
    Index("ix_clicks_reader", "reader"),
)

# A load of a digest's open image ([tracking] opens), as `clicks` counts them.
opens = Table(
    "opens", metadata,
    Column("id", Integer, primary_key=True),
    Column("digest_id", Integer, ForeignKey("digests.id"), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("automated", Integer, nullable=False, default=0),
    Column("reader", String(64)),
    Index("ix_opens_digest", "digest_id"),
    Index("ix_opens_reader", "reader"),
)


def scheduler_jobs_table(target: MetaData) -> Table:
    """APScheduler's job table as its SQLAlchemyJobStore defines it (3.x): APScheduler owns
    it, `digest db copy` carries it."""
    return Table("apscheduler_jobs", target,
                 Column("id", Unicode(191), primary_key=True),
                 Column("next_run_time", Float(25), index=True),
                 Column("job_state", LargeBinary, nullable=False))


SCHEDULER_JOBS = "apscheduler_jobs"
