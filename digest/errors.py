"""One error hierarchy; every message tells the operator what is wrong and where."""


class DigestError(Exception):
    """Base of every error the digest reports to an operator."""

    exit_code = 1


class ConfigError(DigestError):
    """The configuration file is missing, malformed or holds a bad value."""

    exit_code = 2


class LockedError(DigestError):
    """Another run holds the lock on the state database."""

    exit_code = 3


class StateUnavailable(DigestError):
    """The state database cannot be opened or reached."""


class StateCopyError(DigestError):
    """`digest db copy` cannot copy into the database it was given."""


class PortBusy(DigestError):
    """A server of ours cannot listen on the address and port it was given."""


class PreflightError(DigestError):
    """A preflight check failed and the send was not forced."""


class EditorialError(DigestError):
    """An editorial action cannot be done as asked (nothing to approve, an article that
    went out already, an edit naming no article of the next digest)."""


class SendStopped(DigestError):
    """Sending a digest stopped before every recipient had their message: paused after
    too many failures in a row, or interrupted by a signal. `digest resume` continues."""


class FetchError(DigestError):
    """A URL could not be fetched (network error, bad status, too large)."""


class FeedError(DigestError):
    """A source answered, but not with a usable feed."""


class ExtractError(DigestError):
    """An article page held no usable article."""


class SubscriberError(DigestError):
    """The subscriber list or one of its rows is bad."""


class DeliveryError(DigestError):
    """The transport refused a message or is unreachable.

    `permanent` is True when retrying the same message cannot succeed
    (a 5xx reply for that recipient), False when a later attempt may.
    """

    def __init__(self, message: str, *, permanent: bool = False, code: int | None = None,
                 content: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.code = code
        self.content = content  # refused for what the message holds, not for whom


class TransportError(DigestError):
    """The transport failed. `fatal` when retrying cannot help this run (login or TLS
    refused, relay unreachable): stop sending at once. Otherwise the connection dropped and
    a new one may work."""

    def __init__(self, message: str, *, fatal: bool = True) -> None:
        super().__init__(message)
        self.fatal = fatal


class UnknownOutcome(TransportError):
    """The connection was lost after the whole message went out and before the server
    answered: it may or may not have been taken."""

    def __init__(self, message: str) -> None:
        super().__init__(message, fatal=False)


class ContentRejected(DigestError):
    """The relay refused the digest itself (line length, size, content), whoever it was
    for: sending stopped, nothing counts as sent and nobody as bounced."""


class SourcesDown(DigestError):
    """Not one source could be read: a digest of nothing is not built."""
