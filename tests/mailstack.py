"""A real mail system for the bounce tests: Debian's Postfix as the relay and Dovecot
serving the bounce mailbox over IMAPS, both from a temporary folder, on free 127.0.0.1
ports, with their own configuration, queue and logs, stopped and deleted afterwards.

Postfix accepts mail for `subs.example.org` and `slow.example.org` whoever the
recipient, then delivers: a known user of `subs.example.org` gets it in a Maildir, an
unknown one makes Postfix mail a delivery status notification (5.1.1) to the envelope
sender, and `slow.example.org` is deferred (4.4.1) and, as the queue lifetime is 0,
returned at once. The envelope sender's domain, `news.test`, is Postfix's too:
`bounces+anything@news.test` lands in the Maildir of `bounces`, which Dovecot serves as
INBOX over TLS with a certificate made for the run (its CA file is `ca_file`). Postfix's
master runs as root (it needs to, to change to its own users); the mailboxes belong to
the `mail` user."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

MAILBOX_UID = 8  # Debian's `mail` user
RECIPIENTS_DOMAIN, SLOW_DOMAIN, SENDER_DOMAIN = "subs.example.org", "slow.example.org", "news.test"
BOUNCE_USER, PASSWORD = "bounces", "imap-test-password"


def available() -> str:
    """'' when Postfix and Dovecot can run here, else why not."""
    missing = [name for name in ("postfix", "dovecot", "openssl") if not shutil.which(name)]
    if missing:
        return f"not installed: {', '.join(missing)} (bash .ci/system-deps installs them)"
    if os.geteuid() != 0:
        return "Postfix's master process must start as root"
    return ""


class MailStack:
    """Postfix and Dovecot of our own; `users` are the mailboxes of subs.example.org."""

    def __init__(self, users: tuple[str, ...]) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="digest-mail-"))
        self.users = users
        self.smtp_port, self.imaps_port = _free_port(), _free_port()
        self.ca_file = self.folder / "tls" / "cert.pem"
        self.mail = self.folder / "mail"
        self.bounce_maildir = self.mail / SENDER_DOMAIN / BOUNCE_USER
        self.imap_url = f"imaps://127.0.0.1:{self.imaps_port}/INBOX"

    # --- running -----------------------------------------------------------------------

    def __enter__(self) -> MailStack:
        try:
            self._prepare()
            self._postfix("start")
            self._dovecot()
            for port in (self.smtp_port, self.imaps_port):
                _wait_for_port(port, self._logs)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._postfix("abort", check=False)  # nothing in its queue is worth keeping
        _stop_pid_file(self.folder / "queue" / "pid" / "master.pid")
        _stop_pid_file(self.folder / "dovecot" / "master.pid")
        shutil.rmtree(self.folder, ignore_errors=True)

    def _postfix(self, action: str, check: bool = True) -> None:
        done = subprocess.run(["postfix", "-c", str(self.folder / "etc"), action],
                              capture_output=True, text=True, timeout=60)
        if check and done.returncode:
            raise RuntimeError(f"postfix {action} failed: {done.stderr.strip()}\n{self._logs()}")

    def _dovecot(self) -> None:
        # The daemon keeps what it was given as stdout and stderr: a file, not our pipe.
        with (self.folder / "dovecot-start.log").open("wb") as out:
            done = subprocess.run(["dovecot", "-c", str(self.folder / "dovecot.conf")],
                                  stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=30)
        if done.returncode:
            raise RuntimeError(f"dovecot failed to start:\n{self._logs()}")

    def _logs(self) -> str:
        logs = ("postfix.log", "dovecot-start.log", "dovecot.log")
        return "\n".join((self.folder / name).read_text(errors="replace")[-3000:]
                         for name in logs if (self.folder / name).exists())

    # --- what the tests look at ------------------------------------------------------------

    def bounce_files(self) -> list[Path]:
        """Every message in the bounce mailbox's INBOX (new and cur)."""
        return sorted(p for sub in ("new", "cur") if (self.bounce_maildir / sub).is_dir()
                      for p in (self.bounce_maildir / sub).iterdir())

    def delivered(self, user: str) -> int:
        """How many messages a subs.example.org user's Maildir holds."""
        box = self.mail / RECIPIENTS_DOMAIN / user / "new"
        return len(list(box.iterdir())) if box.is_dir() else 0

    def wait_for_bounces(self, count: int, timeout: float = 30) -> list[Path]:
        """The bounce mailbox's messages, once there are at least `count`."""
        deadline = time.monotonic() + timeout
        while len(found := self.bounce_files()) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(found)} of {count} bounces arrived in {timeout} s"
                                     f"\n{self._logs()}")
            time.sleep(0.1)
        return found

    # --- configuration -----------------------------------------------------------------------

    def _prepare(self) -> None:
        for name in ("etc", "queue", "data", "mail", "dovecot", "dovecot-state", "tls"):
            (self.folder / name).mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o755)
        shutil.chown(self.folder / "data", "postfix")
        os.chown(self.mail, MAILBOX_UID, MAILBOX_UID)
        self._certificate()
        users = [f"{u}@{RECIPIENTS_DOMAIN} {RECIPIENTS_DOMAIN}/{u}/" for u in self.users]
        users.append(f"{BOUNCE_USER}@{SENDER_DOMAIN} {SENDER_DOMAIN}/{BOUNCE_USER}/")
        etc = self.folder / "etc"
        (etc / "mailboxes").write_text("\n".join(users) + "\n")
        (etc / "transport").write_text(
            f"{SLOW_DOMAIN} retry:4.4.1 mailbox server temporarily unavailable\n")
        (etc / "main.cf").write_text(self._main_cf())
        (etc / "master.cf").write_text(MASTER_CF.format(port=self.smtp_port))
        (self.folder / "dovecot.conf").write_text(self._dovecot_conf())

    def _certificate(self) -> None:
        tls = self.folder / "tls"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                        "2", "-subj", "/CN=127.0.0.1", "-addext",
                        "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout",
                        str(tls / "key.pem"), "-out", str(self.ca_file)],
                       check=True, capture_output=True, timeout=60)

    def _main_cf(self) -> str:
        f = self.folder
        return f"""compatibility_level = 3.6
queue_directory = {f}/queue
data_directory = {f}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = relay.test
mydomain = relay.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
maillog_file = {f}/postfix.log
maillog_file_prefixes = {f}
alias_maps =
alias_database =
smtputf8_enable = yes
# Accept every recipient and decide at delivery, as real relays do: unknown users are
# then reported by a delivery status notification to the envelope sender.
smtpd_reject_unlisted_recipient = no
virtual_mailbox_domains = {RECIPIENTS_DOMAIN} {SENDER_DOMAIN}
virtual_mailbox_maps = texthash:{f}/etc/mailboxes
virtual_mailbox_base = {f}/mail
virtual_uid_maps = static:{MAILBOX_UID}
virtual_gid_maps = static:{MAILBOX_UID}
virtual_minimum_uid = 1
recipient_delimiter = +
transport_maps = texthash:{f}/etc/transport
maximal_queue_lifetime = 0
bounce_queue_lifetime = 0
"""

    def _dovecot_conf(self) -> str:
        f, box = self.folder, self.bounce_maildir
        return f"""protocols = imap
listen = 127.0.0.1
base_dir = {f}/dovecot
state_dir = {f}/dovecot-state
log_path = {f}/dovecot.log
info_log_path = {f}/dovecot.log
ssl = required
ssl_cert = <{self.ca_file}
ssl_key = <{f}/tls/key.pem
auth_mechanisms = plain
first_valid_uid = 1
mail_location = maildir:{box}
default_internal_user = dovecot
default_login_user = dovenull
passdb {{
  driver = static
  args = password={PASSWORD}
}}
userdb {{
  driver = static
  args = uid={MAILBOX_UID} gid={MAILBOX_UID} home={box}
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.imaps_port}
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  inet_listener http {{
    port = 0
  }}
}}
"""


# No chroot: the daemons read the temporary folder as it is.
MASTER_CF = """127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
showq     unix  n       -       n       -       -       showq
flush     unix  n       -       n       1000?   0       flush
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_port(port: int, logs: object, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}\n{logs() if callable(logs) else ''}")


def _stop_pid_file(path: Path, timeout: float = 10) -> None:
    """Stop the process whose PID the file holds (ours: we started it), and wait."""
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
