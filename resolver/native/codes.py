"""Numbers of the native protocol: op codes, response codes, op flags, envelope bits.

Op codes and response codes are :class:`enum.IntEnum`, so they compare equal to the plain ints
the decoders store (the hot path never converts). Response codes reuse the numbers of
:mod:`registry.errors`, the node's one table of them.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag

from registry import errors


class OpCode(IntEnum):
    """What a message asks for (handle-native.md §3; RFC 3652 §2.2.2.1)."""

    RESERVED = 0
    RESOLUTION = 1
    GET_SITE_INFO = 2
    CREATE_HANDLE = 100
    DELETE_HANDLE = 101
    ADD_VALUE = 102
    REMOVE_VALUE = 103
    MODIFY_VALUE = 104
    LIST_HANDLES = 105
    RESPONSE_TO_CHALLENGE = 200
    VERIFY_CHALLENGE = 201
    HOME_NA = 300
    UNHOME_NA = 301
    LIST_HOMED_NAS = 302
    SESSION_SETUP = 400
    SESSION_TERMINATE = 401
    SESSION_EXCHANGE_KEY = 402
    GET_NEXT_TXN_ID = 1000
    RETRIEVE_TXN_LOG = 1001
    DUMP_HANDLES = 1002
    BACKUP_SERVER = 1003


KNOWN_OP_CODES = frozenset(OpCode) - {OpCode.RESERVED}

# Refused on a query-only (UDP) interface by the reference (handle-native.md §7).
ADMIN_OP_CODES = frozenset(
    {
        OpCode.CREATE_HANDLE,
        OpCode.DELETE_HANDLE,
        OpCode.ADD_VALUE,
        OpCode.REMOVE_VALUE,
        OpCode.MODIFY_VALUE,
        OpCode.LIST_HANDLES,
        OpCode.HOME_NA,
        OpCode.UNHOME_NA,
        OpCode.LIST_HOMED_NAS,
        OpCode.GET_NEXT_TXN_ID,
        OpCode.RETRIEVE_TXN_LOG,
        OpCode.DUMP_HANDLES,
        OpCode.BACKUP_SERVER,
    }
)


class ResponseCode(IntEnum):
    """Outcome of a message; 0 in every request."""

    RESERVED = 0
    SUCCESS = errors.RC_SUCCESS
    ERROR = errors.RC_ERROR
    SERVER_TOO_BUSY = errors.RC_SERVER_TOO_BUSY
    PROTOCOL_ERROR = errors.RC_PROTOCOL_ERROR
    OPERATION_NOT_SUPPORTED = errors.RC_OPERATION_NOT_SUPPORTED
    RECURSION_COUNT_TOO_HIGH = errors.RC_RECURSION_COUNT_TOO_HIGH
    SERVER_BACKUP = errors.RC_SERVER_BACKUP
    HANDLE_NOT_FOUND = errors.RC_HANDLE_NOT_FOUND
    HANDLE_ALREADY_EXISTS = errors.RC_HANDLE_ALREADY_EXISTS
    INVALID_HANDLE = errors.RC_INVALID_HANDLE
    VALUES_NOT_FOUND = errors.RC_VALUES_NOT_FOUND
    VALUE_ALREADY_EXISTS = errors.RC_VALUE_ALREADY_EXISTS
    INVALID_VALUE = errors.RC_INVALID_VALUE
    OUT_OF_DATE_SITE_INFO = errors.RC_OUT_OF_DATE_SITE_INFO
    SERVER_NOT_RESP = errors.RC_SERVER_NOT_RESP
    SERVICE_REFERRAL = errors.RC_SERVICE_REFERRAL
    PREFIX_REFERRAL = errors.RC_PREFIX_REFERRAL
    INVALID_ADMIN = errors.RC_INVALID_ADMIN
    INSUFFICIENT_PERMISSIONS = errors.RC_INSUFFICIENT_PERMISSIONS
    AUTHENTICATION_NEEDED = errors.RC_AUTHENTICATION_NEEDED
    AUTHENTICATION_FAILED = errors.RC_AUTHENTICATION_FAILED
    INVALID_CREDENTIAL = errors.RC_INVALID_CREDENTIAL
    AUTHEN_TIMEOUT = errors.RC_AUTHEN_TIMEOUT


class OpFlag(IntFlag):
    """Header op flags (handle-native.md §3)."""

    AT = 0x80000000  # authoritative
    CT = 0x40000000  # certify: sign the reply
    ENC = 0x20000000  # encrypt the reply (sessions)
    REC = 0x10000000  # recursion allowed
    CA = 0x08000000  # cache-certify
    CN = 0x04000000  # continuous: more messages follow
    KA = 0x02000000  # keep alive
    PO = 0x01000000  # public values only
    RD = 0x00800000  # reply body starts with a digest of the request
    OVRW = 0x00400000  # create/add may overwrite
    MINT = 0x00200000  # create: the server mints the suffix
    DNRF = 0x00100000  # do not send referrals


# Plain ints for bit tests on the hot path (IntFlag arithmetic builds enum members).
AT, CT, REC, CA, PO, RD, DNRF = (
    int(f) for f in (OpFlag.AT, OpFlag.CT, OpFlag.REC, OpFlag.CA, OpFlag.PO, OpFlag.RD, OpFlag.DNRF)
)
CN, OVRW, MINT = (int(f) for f in (OpFlag.CN, OpFlag.OVRW, OpFlag.MINT))

# Envelope flag bits (the third octet; its low two bits are the suggested major version).
ENV_CP = 0x80  # compressed
ENV_EC = 0x40  # encrypted
ENV_TC = 0x20  # truncated: one fragment of a multi-datagram message

# Protocol versions: what idnode speaks, and what a client without site info sends.
VERSION = (2, 11)
VERSION_NO_SITE_INFO = (2, 3)


class DigestType(IntEnum):
    """Hash type octet of a request digest (RD) and of challenge material."""

    LEGACY_MD5 = 0  # followed by a length-prefixed MD5, not a bare one
    MD5 = 1
    SHA1 = 2
    SHA256 = 3


DIGEST_SIZES: dict[int, int] = {DigestType.MD5: 16, DigestType.SHA1: 20, DigestType.SHA256: 32}

CATCH_ALL_MESSAGE = "Server error processing request, see server logs"
