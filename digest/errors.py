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

    def __init__(self, message: str, *, permanent: bool = False, code: int | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.code = code


class TransportError(DigestError):
    """The transport failed. `fatal` when retrying cannot help this run (login or TLS
    refused, relay unreachable): stop sending at once. Otherwise the connection dropped and
    a new one may work."""

    def __init__(self, message: str, *, fatal: bool = True) -> None:
        super().__init__(message)
        self.fatal = fatal
