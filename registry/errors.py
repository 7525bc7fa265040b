"""One error hierarchy for the whole node, and the one table of outcomes every transport
tells its answers by.

Every way a request can end — a result (found, created, no values, a referral) or a failure —
is an :class:`Outcome`: a row naming its Handle responseCode (which the native protocol sends
as it is), the JSON API's HTTP status and the DNS rcode. Every failure a client can cause is a
:class:`HandleError` carrying a responseCode; its :attr:`HandleError.outcome` is the row of that
code, or a row of its own where HTTP tells apart what the code does not (a body too large, a
throttled client). Transports look statuses and rcodes up here; nothing else decides them.
"""

from __future__ import annotations

from dataclasses import dataclass

# responseCodes (RFC 3652 / Handle.Net 9)
RC_SUCCESS = 1
RC_ERROR = 2
RC_SERVER_TOO_BUSY = 3
RC_PROTOCOL_ERROR = 4
RC_OPERATION_NOT_SUPPORTED = 5
RC_RECURSION_COUNT_TOO_HIGH = 6
RC_SERVER_BACKUP = 7
RC_HANDLE_NOT_FOUND = 100
RC_HANDLE_ALREADY_EXISTS = 101
RC_INVALID_HANDLE = 102
RC_VALUES_NOT_FOUND = 200
RC_VALUE_ALREADY_EXISTS = 201
RC_INVALID_VALUE = 202
RC_OUT_OF_DATE_SITE_INFO = 300
RC_SERVER_NOT_RESP = 301
RC_SERVICE_REFERRAL = 302
RC_PREFIX_REFERRAL = 303
RC_INVALID_ADMIN = 400
RC_INSUFFICIENT_PERMISSIONS = 401
RC_AUTHENTICATION_NEEDED = 402
RC_AUTHENTICATION_FAILED = 403
RC_INVALID_CREDENTIAL = 404
RC_AUTHEN_TIMEOUT = 405

# DNS rcodes (RFC 1035, RFC 2136), as plain numbers: this module is imported by every
# process (bulk import's workers too) and stays free of dnspython.
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED, YXDOMAIN, YXRRSET, NXRRSET = range(9)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One way a request ends, as each protocol tells it."""

    name: str
    response_code: int  # the Handle responseCode
    http: int  # the JSON API's HTTP status
    rcode: int  # the DNS rcode

    @property
    def native(self) -> int:
        """The native protocol's response code: the responseCode itself (its numbers are
        the Handle ones, handle-native.md)."""
        return self.response_code


# The table. Results first (the JSON API answers "no values" and referrals with HTTP 200 and
# 300, handle-rest.md); a name DNS has nothing for is NXDOMAIN (the DNS listener answers
# NODATA instead where other names lie below), data it has none of NODATA (NOERROR, empty);
# DNS refuses what is not its zone's to answer (referrals, other nodes' prefixes, rights)
# and what it is too busy for (ask another server), and tells writes' conflicts as DNS
# UPDATE does (RFC 2136).
SUCCESS = Outcome("success", RC_SUCCESS, 200, NOERROR)
CREATED = Outcome("created", RC_SUCCESS, 201, NOERROR)
NO_VALUES = Outcome("no values", RC_VALUES_NOT_FOUND, 200, NOERROR)
SERVICE_REFERRAL = Outcome("service referral", RC_SERVICE_REFERRAL, 300, REFUSED)
PREFIX_REFERRAL = Outcome("prefix referral", RC_PREFIX_REFERRAL, 300, REFUSED)
# Failures, one row per responseCode: the row of an error with that code.
ERROR = Outcome("error", RC_ERROR, 500, SERVFAIL)
SERVER_TOO_BUSY = Outcome("server too busy", RC_SERVER_TOO_BUSY, 503, REFUSED)
PROTOCOL_ERROR = Outcome("protocol error", RC_PROTOCOL_ERROR, 400, FORMERR)
NOT_SUPPORTED = Outcome("operation not supported", RC_OPERATION_NOT_SUPPORTED, 501, NOTIMP)
RECURSION_TOO_HIGH = Outcome("recursion count too high", RC_RECURSION_COUNT_TOO_HIGH, 500, SERVFAIL)
SERVER_BACKUP = Outcome("server backup", RC_SERVER_BACKUP, 503, SERVFAIL)
HANDLE_NOT_FOUND = Outcome("handle not found", RC_HANDLE_NOT_FOUND, 404, NXDOMAIN)
HANDLE_EXISTS = Outcome("handle already exists", RC_HANDLE_ALREADY_EXISTS, 409, YXDOMAIN)
INVALID_HANDLE = Outcome("invalid handle", RC_INVALID_HANDLE, 400, NXDOMAIN)
VALUES_NOT_FOUND = Outcome("values not found", RC_VALUES_NOT_FOUND, 400, NXRRSET)
VALUE_EXISTS = Outcome("value already exists", RC_VALUE_ALREADY_EXISTS, 409, YXRRSET)
INVALID_VALUE = Outcome("invalid value", RC_INVALID_VALUE, 400, FORMERR)
OUT_OF_DATE_SITE_INFO = Outcome("out-of-date site info", RC_OUT_OF_DATE_SITE_INFO, 500, SERVFAIL)
NOT_RESPONSIBLE = Outcome("server not responsible", RC_SERVER_NOT_RESP, 400, REFUSED)
INVALID_ADMIN = Outcome("invalid admin", RC_INVALID_ADMIN, 403, REFUSED)
INSUFFICIENT_PERMISSIONS = Outcome(
    "insufficient permissions", RC_INSUFFICIENT_PERMISSIONS, 403, REFUSED
)
AUTHENTICATION_NEEDED = Outcome("authentication needed", RC_AUTHENTICATION_NEEDED, 401, REFUSED)
AUTHENTICATION_FAILED = Outcome("authentication failed", RC_AUTHENTICATION_FAILED, 403, REFUSED)
INVALID_CREDENTIAL = Outcome("invalid credential", RC_INVALID_CREDENTIAL, 403, REFUSED)
AUTHENTICATION_TIMEOUT = Outcome("authentication timed out", RC_AUTHEN_TIMEOUT, 401, REFUSED)
# Failures whose HTTP status is not their code's.
WRONG_CREDENTIALS = Outcome("wrong credentials", RC_AUTHENTICATION_FAILED, 401, REFUSED)
CREDENTIALS_NEED_TLS = Outcome("credentials need TLS", RC_AUTHENTICATION_NEEDED, 403, REFUSED)
THROTTLED = Outcome("throttled", RC_SERVER_TOO_BUSY, 429, REFUSED)
BAD_GATEWAY = Outcome("another node failed", RC_ERROR, 502, SERVFAIL)
TIMED_OUT = Outcome("timed out", RC_ERROR, 504, SERVFAIL)
STORE_UNAVAILABLE = Outcome("registry database unavailable", RC_ERROR, 503, SERVFAIL)
NO_SUCH_ENDPOINT = Outcome("no such endpoint", RC_PROTOCOL_ERROR, 404, FORMERR)
METHOD_NOT_ALLOWED = Outcome("method not allowed", RC_PROTOCOL_ERROR, 405, FORMERR)
UNKNOWN_METHOD = Outcome("unknown method", RC_PROTOCOL_ERROR, 501, NOTIMP)
BODY_TIMEOUT = Outcome("body not received in time", RC_PROTOCOL_ERROR, 408, FORMERR)
BODY_TOO_LARGE = Outcome("body too large", RC_PROTOCOL_ERROR, 413, FORMERR)
HEADER_TOO_LONG = Outcome("header too long", RC_PROTOCOL_ERROR, 431, FORMERR)
# The enterprise prefix lifecycle (registry/model/enterprise.py). A suspended prefix's
# identifiers exist but may not be served: a plain error (2) that Handle clients show with its
# message, HTTP 403 (refused, not missing) and DNS REFUSED. A lifecycle action its state does
# not allow is a conflict with that state, 409. (A withdrawn prefix's are HANDLE_NOT_FOUND.)
PREFIX_SUSPENDED = Outcome("prefix suspended", RC_ERROR, 403, REFUSED)
WRONG_STATE = Outcome("wrong lifecycle state", RC_ERROR, 409, REFUSED)

OUTCOMES: tuple[Outcome, ...] = (
    SUCCESS,
    CREATED,
    NO_VALUES,
    SERVICE_REFERRAL,
    PREFIX_REFERRAL,
    ERROR,
    SERVER_TOO_BUSY,
    PROTOCOL_ERROR,
    NOT_SUPPORTED,
    RECURSION_TOO_HIGH,
    SERVER_BACKUP,
    HANDLE_NOT_FOUND,
    HANDLE_EXISTS,
    INVALID_HANDLE,
    VALUES_NOT_FOUND,
    VALUE_EXISTS,
    INVALID_VALUE,
    OUT_OF_DATE_SITE_INFO,
    NOT_RESPONSIBLE,
    INVALID_ADMIN,
    INSUFFICIENT_PERMISSIONS,
    AUTHENTICATION_NEEDED,
    AUTHENTICATION_FAILED,
    INVALID_CREDENTIAL,
    AUTHENTICATION_TIMEOUT,
    WRONG_CREDENTIALS,
    CREDENTIALS_NEED_TLS,
    THROTTLED,
    BAD_GATEWAY,
    TIMED_OUT,
    STORE_UNAVAILABLE,
    NO_SUCH_ENDPOINT,
    METHOD_NOT_ALLOWED,
    UNKNOWN_METHOD,
    BODY_TIMEOUT,
    BODY_TOO_LARGE,
    HEADER_TOO_LONG,
    PREFIX_SUSPENDED,
    WRONG_STATE,
)

# The row of each responseCode: the first with that code (results, then failures).
_BY_CODE: dict[int, Outcome] = {}
for _row in OUTCOMES:
    _BY_CODE.setdefault(_row.response_code, _row)
_BY_CODE[RC_VALUES_NOT_FOUND] = VALUES_NOT_FOUND  # as an error: "no values" is a result
del _row


def outcome_of(response_code: int) -> Outcome:
    """The row of ``response_code``; a code the table does not know (another node's, say)
    is told as the reference tells it: HTTP 500 (SERVFAIL)."""
    row = _BY_CODE.get(response_code)
    return row if row is not None else Outcome("unknown", response_code, 500, SERVFAIL)


def protocol_outcome(http: int) -> Outcome:
    """The protocol error told with HTTP status ``http`` (one aiohttp raised), else the
    plain one (400)."""
    for row in OUTCOMES:
        if row.response_code == RC_PROTOCOL_ERROR and row.http == http:
            return row
    return PROTOCOL_ERROR


class HandleError(Exception):
    """A failure with a Handle responseCode; ``message`` is safe to show to the client.

    ``outcome``: the row of :data:`OUTCOMES` to tell it by when it is not its code's own (an
    HTTP status the code does not decide: :data:`BODY_TOO_LARGE`, ...); a subclass may name
    one for all its errors (``_outcome``)."""

    response_code: int = RC_ERROR
    default_message: str | None = None
    _outcome: Outcome | None = None

    def __init__(self, message: str | None = None, *, outcome: Outcome | None = None) -> None:
        self.message = message if message is not None else self.default_message
        if outcome is not None:
            if outcome.response_code != self.response_code:
                raise ValueError(f"{outcome.name} is not told with {self.response_code}")
            self._outcome = outcome
        super().__init__(self.message or type(self).__name__)

    @property
    def outcome(self) -> Outcome:
        """How this error is told in each protocol."""
        return self._outcome if self._outcome is not None else outcome_of(self.response_code)

    @property
    def status(self) -> int:
        """The JSON API's HTTP status for this error."""
        return self.outcome.http


class ServerError(HandleError):
    response_code = RC_ERROR
    default_message = "Internal server error"


class ServerBusy(HandleError):
    response_code = RC_SERVER_TOO_BUSY
    default_message = "Server too busy"


class ProtocolError(HandleError):
    """The request itself is malformed (bad JSON, bad query parameter, wrong media type)."""

    response_code = RC_PROTOCOL_ERROR


class NotSupported(HandleError):
    response_code = RC_OPERATION_NOT_SUPPORTED


class HandleNotFound(HandleError):
    response_code = RC_HANDLE_NOT_FOUND


class HandleExists(HandleError):
    response_code = RC_HANDLE_ALREADY_EXISTS


class InvalidHandle(HandleError):
    response_code = RC_INVALID_HANDLE


class ValuesNotFound(HandleError):
    response_code = RC_VALUES_NOT_FOUND


class ValueExists(HandleError):
    response_code = RC_VALUE_ALREADY_EXISTS


class InvalidValue(HandleError):
    response_code = RC_INVALID_VALUE


class NotResponsible(HandleError):
    response_code = RC_SERVER_NOT_RESP
    default_message = "That prefix doesn't live here"


class InvalidAdmin(HandleError):
    response_code = RC_INVALID_ADMIN


class InsufficientPermissions(HandleError):
    response_code = RC_INSUFFICIENT_PERMISSIONS


class AuthenticationNeeded(HandleError):
    response_code = RC_AUTHENTICATION_NEEDED


class AuthenticationFailed(HandleError):
    """Credentials were presented and are wrong (HTTP answers 401 with an empty body)."""

    response_code = RC_AUTHENTICATION_FAILED
    default_message: str | None = "Identity not verified"
    _outcome = WRONG_CREDENTIALS


class AuthenticationTimeout(HandleError):
    """A challenge answer for no pending challenge: unknown, expired or already answered."""

    response_code = RC_AUTHEN_TIMEOUT


class UnsupportedAuthScheme(AuthenticationFailed):
    """An Authorization header in a scheme other than Basic."""

    default_message = ""


class Throttled(ServerBusy):
    """Too many failed authentications from one client; retry after ``retry_after`` s."""

    _outcome = THROTTLED

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too many failed authentication attempts; retry in {retry_after} s")
        self.retry_after = retry_after


class RecursionTooHigh(HandleError):
    """Forwarding a query would exceed the hop limit, or it came back to this node."""

    response_code = RC_RECURSION_COUNT_TOO_HIGH
    default_message = "Recursion count too high"


class RemoteError(HandleError):
    """An error answered by the node a query was forwarded to, passed on with its code."""

    def __init__(self, response_code: int, message: str | None) -> None:
        self.response_code = response_code
        super().__init__(message)


class PrefixSuspended(HandleError):
    """An identifier of a suspended enterprise prefix: neither resolved nor written."""

    response_code = RC_ERROR
    _outcome = PREFIX_SUSPENDED

    def __init__(self, prefix: str) -> None:
        super().__init__(f"prefix {prefix} is suspended")
        self.prefix = prefix


class PrefixWithdrawn(HandleNotFound):
    """An identifier of a withdrawn enterprise prefix: it is gone for good."""

    def __init__(self, prefix: str) -> None:
        super().__init__(f"prefix {prefix} is withdrawn")
        self.prefix = prefix


class WrongState(HandleError):
    """A lifecycle action the enterprise's current state does not allow."""

    response_code = RC_ERROR
    _outcome = WRONG_STATE


class TemplateViolation(InvalidValue):
    """A record that does not follow the template it declares: ``errors`` names each field
    at fault (``{"type", "index", "message"}``); ``handle`` is the record's."""

    def __init__(self, handle: str, template: str, errors: list[dict[str, object]]) -> None:
        said = "; ".join(
            f"{e['type']}"
            + (f" (index {e['index']})" if e.get("index") is not None else "")
            + f": {e['message']}"
            for e in errors[:10]
        )
        super().__init__(f"{handle} does not follow template {template}: {said}"[:1000])
        self.handle = handle
        self.errors = errors
