"""Every section of config.toml as a frozen dataclass: each key declared once, with its
type, default, help text and check. `digest init` writes its commented config.toml from
these declarations, and the docs test holds README.md to them."""

from __future__ import annotations

from dataclasses import dataclass, field

from digest.config.checks import (
    check_address_list,
    check_cron,
    check_database,
    check_imap_url,
    check_networks,
    check_optional_cron,
    check_optional_url,
    check_timezone,
    check_url,
    email_problem,
    fraction,
    key,
    non_negative,
    one_of,
    positive,
)

DEFAULT_SUBJECT = (
    "{{ title }}: {{ count }} new {{ category }} {{ 'story' if count == 1 else 'stories' }}"
)


@dataclass(frozen=True)
class DigestSettings:
    title: str = key("Spacecraft Digest", "Name of the newsletter, shown in subject and header.")
    category: str = key("Spacecraft", "Only articles in this category are gathered.")
    max_articles: int = key(20, "At most this many articles in one digest.", positive)
    summary_sentences: int = key(3, "Sentences per article summary.", positive)
    summary_max_words: int = key(90, "Upper bound on words per summary.", positive)
    order: str = key("newest", "Article order: 'newest', 'oldest' or 'source'.",
                      one_of("newest", "oldest", "source"))
    group_threshold: float = key(0.45, "TF-IDF cosine of title and lead above which two "
                                  "reports count as one story (1 turns grouping off).",
                                  fraction)
    min_articles: int = key(1, "No digest is built with fewer new articles.", positive)


@dataclass(frozen=True)
class SourceSettings:
    name: str = key(help="Site name shown next to each article.")
    url: str = key(help="Category feed, WordPress REST API or HTML category page URL.",
                    check=check_url)
    kind: str = key("auto", "'auto', 'feed', 'wordpress' or 'html'.",
                     one_of("auto", "feed", "wordpress", "html"))
    category: str = key("", "This site's name or slug for the category; empty: [digest] one.")
    max_pages: int = key(3, "Pages of a category page or API listing to read.", positive)
    allowed_hosts: tuple[str, ...] = key((), "Other origins this source's articles may be fetched "
                                   "from: 'host', 'host:port' or 'https://host:port'; its own "
                                   "scheme, host and port always are.")


@dataclass(frozen=True)
class SummarySettings:
    summarizer: str = key("extractive", "'extractive', or 'openai-compatible' to ask a chat "
                           "endpoint (falls back to extractive on any failure).",
                           one_of("extractive", "openai-compatible"))
    endpoint: str = key("http://127.0.0.1:11434/v1", "Base URL of the OpenAI-compatible API "
                         "(…/v1) or its /chat/completions URL.", check_url)
    model: str = key("", "Model name sent to the endpoint.")
    api_key_env: str = key("DIGEST_LLM_API_KEY", "Env var holding the endpoint's API key.")
    timeout: float = key(30.0, "Seconds to wait for one summary.", positive)


@dataclass(frozen=True)
class DkimSettings:
    selector: str = key("", "DKIM selector; empty turns signing off.")
    domain: str = key("", "Signing domain (d=), usually the From domain.")
    private_key_path: str = key("", "PEM private key file, relative to config.toml; keep it "
                                 "outside the repository.")


@dataclass(frozen=True)
class EmailSettings:
    from_address: str = key(help="From: header, e.g. 'Spacecraft Digest <digest@example.org>'.",
                             check=email_problem, toml="from")
    reply_to: str = key("", "Reply-To: header; empty for none.")
    subject: str = key(DEFAULT_SUBJECT, "Jinja2 template of the subject line.")
    base_url: str = key("http://127.0.0.1:8080", "Public URL of the web app (unsubscribe links).",
                         check_url)
    postal_address: str = key("", "Sender's postal address shown in the footer.")
    templates: str = key("", "Folder of your own templates (digest.html, digest.txt, email.css, "
                         "web/…), relative to config.toml; a template it lacks comes from the "
                         "bundled ones; empty: the bundled templates.")
    signing_key_env: str = key("DIGEST_SIGNING_KEY",
                                "Env var holding the key that signs unsubscribe links.")
    previous_signing_keys_env: str = key(
        "DIGEST_SIGNING_KEYS_PREVIOUS", "Env var holding keys used before a rotation, "
        "comma-separated: links they signed keep working.")
    unsubscribe_mailto: str = key("", "Address for mailto: unsubscribes; empty: "
                                   "unsubscribe@ the From domain.")
    return_path: str = key("", "Envelope sender (bounces go here); empty: the From address.")
    utm_campaign: str = key("", "Add utm_* parameters with this campaign to article links; "
                             "empty: off.")
    max_html_bytes: int = key(100_000, "Largest HTML sent; Gmail clips over 102 KB.", positive)
    max_spam_score: float = key(2.0, "Preflight fails above this SpamAssassin score.")
    logo_url: str = key("", "URL (https://, or http://) of a logo shown above the title; "
                        "empty: none.",
                        check_optional_url)
    logo_width: int = key(160, "Logo width in pixels, as the image should show.", positive)
    logo_height: int = key(40, "Logo height in pixels, as the image should show.", positive)
    logo_alt: str = key("", "Text shown instead of the logo when images are off; empty: the "
                        "newsletter's title.")
    dkim: DkimSettings = field(default_factory=DkimSettings, metadata={"help": "DKIM signing."})


@dataclass(frozen=True)
class SmtpSettings:
    host: str = key("localhost", "SMTP relay host.")
    port: int = key(25, "SMTP relay port.", positive)
    security: str = key("starttls", "'starttls', 'ssl' or 'none'.",
                         one_of("starttls", "ssl", "none"))
    username: str = key("", "Login name; empty for no AUTH.")
    allow_plaintext_auth: bool = key(False, "Allow AUTH over a connection without TLS to a "
                                     "host that is not this machine (the password travels in "
                                     "clear).")
    password_env: str = key("DIGEST_SMTP_PASSWORD",
                             "Environment variable holding the SMTP password.")
    timeout: float = key(30.0, "Seconds to wait for the relay.", positive)
    ca_file: str = key("", "PEM file of a private CA to trust for STARTTLS/SSL, relative to "
                        "config.toml; empty: the system's CAs.")
    connections: int = key(2, "Parallel SMTP connections (each sending process sizes its "
                           "state-database pool from this).", positive)
    max_per_connection: int = key(1000, "Messages sent on one connection before a new one.",
                                   positive)
    rate_per_second: float = key(0.0, "At most this many messages a second in all; 0: no "
                                  "limit.", non_negative)
    rate_per_hour: int = key(0, "At most this many messages an hour in all; 0: no limit.",
                              non_negative)


@dataclass(frozen=True)
class DeliverySettings:
    transport: str = key("smtp", "'smtp', or 'outbox' to write .eml files into `outbox`.",
                          one_of("smtp", "outbox"))
    outbox: str = key("outbox", "Folder for the outbox transport, relative to config.toml.")
    retry_attempts: int = key(3, "Attempts per recipient on 4xx replies and dropped "
                               "connections before the delivery is deferred.", positive)
    retry_delay: float = key(1.0, "Seconds before the first retry; doubles each time.",
                              non_negative)
    deferred_lifetime_hours: float = key(48.0, "Deferred deliveries give up after this long "
                                          "as failed (expired).", positive)
    unconfirmed_retries: int = key(1, "Resends of a message whose connection was lost after it "
                                   "went out and before the server answered (it may have "
                                   "arrived); then it is recorded as sent, unconfirmed. 0: "
                                   "never resend.", non_negative)
    bounce_after: int = key(2, "Hard failures (5xx) after which an address is marked "
                             "bounced.", positive)
    pause_after_failures: int = key(50, "Consecutive failed or deferred deliveries that "
                                     "pause the digest.", positive)
    send_with: str = key("scheduler", "'scheduler': `digest run`/`schedule` send the digest "
                          "(and any `digest worker` helps); 'workers': they only build it "
                          "and `digest worker` processes send it.",
                          one_of("scheduler", "workers"))
    batch_size: int = key(200, "Deliveries a sender claims at a time.", positive)
    lease_seconds: float = key(120.0, "A claimed batch whose sender stops beating its heart "
                                "for this long goes to another sender.", positive)
    worker_poll_seconds: float = key(5.0, "How often an idle `digest worker` looks for a "
                                      "digest to send.", positive)


@dataclass(frozen=True)
class SubscriberSettings:
    path: str = key("subscribers/subscribers.csv",
                     "Subscriber list (CSV: email,name,status), relative to config.toml.")


@dataclass(frozen=True)
class StateSettings:
    database: str = key("state/digest.sqlite3", "State database: a SQLite path relative to "
                         "config.toml, or a postgresql://user@host/db URL.", check_database)
    password_env: str = key("DIGEST_DB_PASSWORD", "Env var holding the database password "
                             "(PostgreSQL).")


@dataclass(frozen=True)
class ScheduleSettings:
    cron: str = key("0 7 * * mon", "When `digest schedule` runs a cycle (crontab syntax).",
                     check_cron)
    timezone: str = key("Europe/London", "IANA timezone of the cron expression.",
                         check_timezone)
    misfire_grace_time: int = key(3600, "Seconds a late run may still start; later, the "
                                   "slot is skipped with a log line and an alert.", positive)
    coalesce: bool = key(True, "Several missed runs of a job run once, not once each.")
    max_instances: int = key(1, "Runs of one job allowed at the same time.", positive)
    gather_cron: str = key("", "Extra job that only reads the sources and keeps their "
                            "entries (crontab syntax); empty: none.", check_optional_cron)
    require_approval: bool = key(False, "Send a scheduled digest only once an editor has "
                                  "approved it; until then the scheduler waits.")
    approval_check_minutes: int = key(5, "How often a scheduler waiting for approval looks "
                                       "again.", positive)
    health_file: str = key("", "JSON file rewritten after every job with the last gather and "
                            "send times, relative to config.toml; empty: none.")


@dataclass(frozen=True)
class BounceSettings:
    verp: bool = key(True, "Give each message an envelope sender that names its delivery "
                     "(return path's local part + id), so a bounce maps to one subscriber; "
                     "the mailbox must accept local+anything@ addresses.")
    imap_url: str = key("", "Mailbox the bounces land in: imaps://host:993/FOLDER (or "
                         "imap://host:143/FOLDER with STARTTLS); empty: no IMAP.",
                         check_imap_url)
    imap_user: str = key("", "IMAP login name.")
    imap_password_env: str = key("DIGEST_IMAP_PASSWORD", "Env var holding the IMAP password.")
    processed_folder: str = key("Processed", "Folder (IMAP, or Maildir++ subfolder) that "
                                 "read reports are moved to; empty: they stay, flagged.")
    maildir: str = key("", "A Maildir on this machine the bounces land in, relative to "
                        "config.toml; empty: none.")
    ca_file: str = key("", "PEM file of a private CA to trust for the IMAP server, relative "
                        "to config.toml; empty: the system's CAs.")
    timeout: float = key(30.0, "Seconds to wait for the IMAP server.", positive)
    cron: str = key("", "When `digest schedule` reads the bounce mailboxes (crontab syntax); "
                     "empty: no job.", check_optional_cron)
    hard_limit: int = key(1, "Hard bounces (5.x.x) after which an address is marked "
                           "bounced.", positive)
    soft_limit: int = key(3, "Soft bounces (4.x.x), each from another message, within "
                           "soft_days after which an address is marked bounced.", positive)
    soft_days: float = key(30.0, "The window soft bounces are counted in, in days.", positive)
    hard_rate_alert: float = key(0.02, "Alert when a digest's hard bounces pass this share "
                                  "of its messages sent.", fraction)
    complaint_rate_alert: float = key(0.003, "Alert when a digest's spam complaints pass "
                                       "this share of its messages sent (bulk-sender "
                                       "guidance: stay under 0.3%).", fraction)
    max_message_bytes: int = key(2_000_000, "Read at most this much of one report; the "
                                  "rest (the returned message) is left unread.", positive)


@dataclass(frozen=True)
class AlertSettings:
    email: str = key("", "Address(es), comma-separated, told when a scheduled digest is "
                      "skipped, a source keeps failing or a send ends with failures; empty: "
                      "none.", check_address_list)


@dataclass(frozen=True)
class LogSettings:
    level: str = key("info", "'debug', 'info', 'warning' or 'error'; -v and -q override it.",
                      one_of("debug", "info", "warning", "error"))


@dataclass(frozen=True)
class WebSettings:
    secret_env: str = key("DIGEST_WEB_SECRET", "Env var holding the key that signs editor "
                           "session cookies.")
    public_archive: bool = key(False, "Serve past digests to everyone at /archive/ (no "
                                "personal data).")
    session_hours: float = key(12.0, "Editor sessions last this long.", positive)
    trusted_proxies: tuple[str, ...] = key((), "Addresses or networks of the reverse proxies "
                                           "in front: only their X-Forwarded-For and "
                                           "X-Forwarded-Proto are believed.",
                                           check_networks)
    proxy_hops: int = key(1, "How many trusted proxies in a row add to X-Forwarded-For.",
                          positive)


@dataclass(frozen=True)
class FetchSettings:
    timeout: float = key(20.0, "Seconds to wait for a site to answer.", positive)
    user_agent: str = key("SpacecraftDigest/0.1 (+https://github.com/spacecraft-digest)",
                           "User-Agent sent to news sites.")
    max_bytes: int = key(10_000_000, "Largest response body read, in bytes.", positive)
    retries: int = key(2, "Retries on connection errors, 429 and 5xx.", non_negative)
    max_retry_after: float = key(60.0, "Longest Retry-After honoured, in seconds.", positive)
    max_redirects: int = key(5, "Redirects followed before giving up.", non_negative)
    per_host_concurrency: int = key(4, "Parallel requests to one site at most.", positive)
    respect_robots: bool = key(True, "Obey robots.txt for article pages.")
    request_deadline: float = key(30.0, "Most seconds one request may take in all (connect, "
                                  "headers, body), however slowly the bytes come.", positive)
    source_deadline: float = key(120.0, "Most seconds spent reading one source (its feed or "
                                 "pages), in all.", positive)
    run_deadline: float = key(900.0, "Most seconds one run spends fetching, in all; what is "
                              "left is recorded as failed and the digest goes out with the "
                              "rest.", positive)
    allow_private_addresses: bool = key(False, "Fetch from loopback, private or link-local "
                                        "addresses even for hosts that are not a configured "
                                        "source (off: only a source's own origin may be "
                                        "there).")


@dataclass(frozen=True)
class TrackingSettings:
    clicks: bool = key(False, "Count clicks per article: article links go through "
                       "[email] base_url/c/… (needs https), which redirects to the article.")
    per_subscriber: bool = key(False, "Tie each click (and open) to the reader who made it: "
                               "personal data, which your privacy notice must mention; off: "
                               "counts per article only.")
    opens: bool = key(False, "Count opens with a 1x1 image: unreliable (mail privacy "
                      "proxies load every image at delivery, many readers block images).")


@dataclass(frozen=True)
class Editor:
    """One editor account: `digest editor add NAME` writes it."""

    name: str
    password_hash: str
    email: str = ""


SECTIONS: dict[str, type] = {
    "digest": DigestSettings,
    "summaries": SummarySettings,
    "email": EmailSettings,
    "smtp": SmtpSettings,
    "delivery": DeliverySettings,
    "subscribers": SubscriberSettings,
    "state": StateSettings,
    "schedule": ScheduleSettings,
    "fetch": FetchSettings,
    "alerts": AlertSettings,
    "bounces": BounceSettings,
    "log": LogSettings,
    "web": WebSettings,
    "tracking": TrackingSettings,
}
REQUIRED_SECTIONS = ("email",)
