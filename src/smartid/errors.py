"""The suite's exception tree.

Every failure a user can cause or meet is one of these, with a message that is one sentence naming
the target (file and key, URL, host:port) and what was observed. Low-level errors from requests,
ssl and socket are translated into this tree in one place (`smartid.http`); nothing else raises
them to the user.

    SmartIDError
    ├── SiteError                 the site file is unusable (exit 4)
    │   ├── SecretError           a secret reference cannot be resolved
    │   └── SiteProblems          several of them at once, one line each
    ├── TargetError               talking to a target failed
    │   ├── ConnectError          unreachable, refused, closed, name not resolved
    │   │   └── TimeoutError      no answer within the site's timeout
    │   ├── TLSError              handshake or certificate verification failed
    │   ├── ProtocolError         the peer answered, but not as the contract says
    │   └── HTTPStatusError       an unexpected HTTP status from an endpoint
    │       ├── AuthenticationError   401/403 (credentials are never echoed)
    │       ├── NotFoundError         404
    │       ├── ConflictError         409 (stale version)
    │       ├── RejectedError         400/422 (the target refused the input)
    │       └── RedirectError         3xx (the suite follows no redirect)
    ├── PackageError              a configuration zip or keystore is missing or corrupt
    └── LabError                  the embedded lab cannot start or answer
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "ConflictError",
    "ConnectError",
    "HTTPStatusError",
    "LabError",
    "NotFoundError",
    "PackageError",
    "ProtocolError",
    "ReadBackError",
    "RedirectError",
    "RejectedError",
    "SecretError",
    "SiteError",
    "SiteProblems",
    "SmartIDError",
    "TLSError",
    "TargetError",
    "TimeoutError",
]


class SmartIDError(Exception):
    """Base of every error the suite reports to a user as one sentence."""


class SiteError(SmartIDError):
    """The site file cannot be used; the run stops before any test with exit 4."""

    def __init__(self, path: str, key: str | None, problem: str) -> None:
        self.path = path
        self.key = key
        self.problem = problem
        where = f"{path}: key '{key}'" if key else path
        super().__init__(f"{where}: {problem}")

    @property
    def lines(self) -> tuple[str, ...]:
        """The message as lines, one per problem."""
        return (str(self),)

    @staticmethod
    def of(problems: list[SiteError]) -> SiteError:
        """The one problem, or all of them as one SiteProblems; `problems` is not empty."""
        return problems[0] if len(problems) == 1 else SiteProblems(problems)


class SecretError(SiteError):
    """A secret reference (env variable, file, file + key) cannot be resolved."""


class SiteProblems(SiteError):
    """Several problems of one site file, reported together: one line each, in file order.
    `path`, `key` and `problem` are those of the first."""

    def __init__(self, problems: list[SiteError]) -> None:
        self.problems = tuple(problems)
        first = problems[0]
        super().__init__(first.path, first.key, first.problem)
        self.args = ("\n".join(self.lines),)

    @property
    def lines(self) -> tuple[str, ...]:
        return tuple(line for problem in self.problems for line in problem.lines)

    def __str__(self) -> str:
        return "\n".join(self.lines)


class TargetError(SmartIDError):
    """A request to a target failed; `target` is the URL or host:port."""

    def __init__(self, target: str, observed: str) -> None:
        self.target = target
        self.observed = observed
        super().__init__(f"{target}: {observed}")


class ConnectError(TargetError):
    """No connection: refused, unreachable, closed by the peer or name not resolved."""


class TimeoutError(ConnectError):  # the suite's own: a ConnectError, unlike the builtin
    """The target accepted nothing or answered nothing within the timeout."""


class TLSError(TargetError):
    """The TLS handshake or the certificate verification failed; `observed` says why."""


class ProtocolError(TargetError):
    """The target answered, but not in the shape its contract promises."""


class HTTPStatusError(TargetError):
    """An endpoint answered with a status the caller did not expect."""

    def __init__(self, target: str, status: int, observed: str) -> None:
        self.status = status
        super().__init__(target, f"HTTP {status}: {observed}" if observed else f"HTTP {status}")


class AuthenticationError(HTTPStatusError):
    """The endpoint refused the credentials (401) or the permission (403)."""


class NotFoundError(HTTPStatusError):
    """The endpoint or the named object does not exist (404)."""


class ConflictError(HTTPStatusError):
    """The write named a stale version of the object (409)."""


class RejectedError(HTTPStatusError):
    """The target refused the input as invalid (400 or 422)."""


class RedirectError(HTTPStatusError):
    """A 3xx answer. The suite follows no redirect, so that no credential, client certificate or
    body ever goes to another origin or over plain http; `location` is where it pointed."""

    def __init__(self, target: str, status: int, location: str) -> None:
        self.location = location
        super().__init__(
            target,
            status,
            f"redirects to {location}; the suite does not follow redirects: point the site at "
            "the final URL",
        )


class ReadBackError(TargetError):
    """A write was accepted, but reading the object back shows another value."""


class PackageError(SmartIDError):
    """A configuration zip, keystore or similar file is missing or corrupt."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class LabError(SmartIDError):
    """The embedded lab cannot be started, reached or used."""
