"""One error hierarchy for the whole node.

Every failure a client can cause is a :class:`HandleError` carrying a Handle responseCode.
Transports map it once: HTTP through :func:`http_status`, later the native protocol (which
sends the responseCode itself) and DNS (rcode). Nothing else in the code decides statuses.
"""

from __future__ import annotations

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

_HTTP_STATUS: dict[int, int] = {
    RC_SUCCESS: 200,
    RC_VALUES_NOT_FOUND: 400,
    RC_SERVICE_REFERRAL: 300,
    RC_PREFIX_REFERRAL: 300,
    RC_HANDLE_NOT_FOUND: 404,
    RC_HANDLE_ALREADY_EXISTS: 409,
    RC_VALUE_ALREADY_EXISTS: 409,
    RC_PROTOCOL_ERROR: 400,
    RC_INVALID_HANDLE: 400,
    RC_INVALID_VALUE: 400,
    RC_SERVER_NOT_RESP: 400,
    RC_OPERATION_NOT_SUPPORTED: 501,
    RC_SERVER_TOO_BUSY: 503,
    RC_SERVER_BACKUP: 503,
    RC_AUTHENTICATION_NEEDED: 401,
    RC_INVALID_ADMIN: 403,
    RC_INSUFFICIENT_PERMISSIONS: 403,
    RC_AUTHENTICATION_FAILED: 403,
    RC_INVALID_CREDENTIAL: 403,
}


def http_status(response_code: int) -> int:
    """The HTTP status of an error answer, per the Handle JSON API table."""
    return _HTTP_STATUS.get(response_code, 500)


# DNS rcodes (RFC 1035 §4.1.1): what a DNS answer reports for a failed resolution.
RCODE_SERVFAIL, RCODE_NXDOMAIN, RCODE_REFUSED = 2, 3, 5

_DNS_RCODE: dict[int, int] = {
    RC_HANDLE_NOT_FOUND: RCODE_NXDOMAIN,  # NODATA instead where other names lie below
    RC_INVALID_HANDLE: RCODE_NXDOMAIN,
    RC_SERVER_NOT_RESP: RCODE_REFUSED,  # not this node's prefix, and not forwarded
    RC_SERVER_TOO_BUSY: RCODE_REFUSED,  # busy or throttled: ask another server
}


def dns_rcode(response_code: int) -> int:
    """The DNS rcode of an error answer: SERVFAIL for anything not in the table."""
    return _DNS_RCODE.get(response_code, RCODE_SERVFAIL)


class HandleError(Exception):
    """A failure with a Handle responseCode; ``message`` is safe to show to the client."""

    response_code: int = RC_ERROR
    default_message: str | None = None

    def __init__(self, message: str | None = None, *, http: int | None = None) -> None:
        self.message = message if message is not None else self.default_message
        self.http = http
        super().__init__(self.message or type(self).__name__)

    @property
    def status(self) -> int:
        return self.http if self.http is not None else http_status(self.response_code)


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


class UnsupportedAuthScheme(AuthenticationFailed):
    """An Authorization header in a scheme other than Basic."""

    default_message = ""


class Throttled(ServerBusy):
    """Too many failed authentications from one client; retry after ``retry_after`` s."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"Too many failed authentication attempts; retry in {retry_after} s", http=429
        )
        self.retry_after = retry_after


class RecursionTooHigh(HandleError):
    """Forwarding a query would exceed the hop limit, or it came back to this node."""

    response_code = RC_RECURSION_COUNT_TOO_HIGH
    default_message = "Recursion count too high"


class RemoteError(HandleError):
    """An error answered by the node a query was forwarded to, passed on with its code."""

    def __init__(self, response_code: int, message: str | None, *, http: int | None = None):
        self.response_code = response_code
        super().__init__(message, http=http)
