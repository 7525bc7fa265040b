"""The one outcome table (registry.errors): every result and every error the node can give
has exactly one row, telling its Handle responseCode, HTTP status, native response code and
DNS rcode; answers carry theirs."""

from __future__ import annotations

import importlib
import pkgutil
from http import HTTPStatus

import dns.rcode
import pytest

from registry import errors
from registry.cache.entry import CacheEntry
from registry.errors import (
    NO_VALUES,
    OUTCOMES,
    SERVICE_REFERRAL,
    SUCCESS,
    HandleError,
    Outcome,
    outcome_of,
)
from registry.model.identifiers import parse
from registry.model.values import PERM_ADMIN_READ, Value
from registry.store.base import Record
from resolver.core import Answer
from resolver.native.codes import ResponseCode

PACKAGES = ("registry", "resolver", "sync")


def every_error_class() -> list[type[HandleError]]:
    """HandleError and every subclass defined anywhere in the node's packages."""
    for name in PACKAGES:
        package = importlib.import_module(name)
        for module in pkgutil.walk_packages(package.__path__, f"{name}."):
            importlib.import_module(module.name)
    found, todo = [], [HandleError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += cls.__subclasses__()
    return found


def test_every_error_class_is_told_by_a_row_of_its_code() -> None:
    classes = every_error_class()
    assert len(classes) > 30  # the walk found the hierarchy (native and DNS errors too)
    for cls in classes:
        row = cls._outcome or outcome_of(cls.response_code)
        assert row in OUTCOMES, cls
        assert row.response_code == cls.response_code, cls


def test_every_response_code_has_its_row() -> None:
    codes = {v for k, v in vars(errors).items() if k.startswith("RC_")}
    assert len(codes) == 23
    for code in codes:
        row = outcome_of(code)
        assert row in OUTCOMES and row.response_code == code, code
    assert {row.response_code for row in OUTCOMES} == codes  # and no row of an unnamed one


def test_every_row_is_in_the_table_once_and_speaks_every_protocol() -> None:
    rows = [v for v in vars(errors).values() if isinstance(v, Outcome)]
    assert sorted(rows, key=id) == sorted(OUTCOMES, key=id)  # no row outside the table
    assert len({row.name for row in OUTCOMES}) == len(OUTCOMES)
    assert len({(r.response_code, r.http, r.rcode) for r in OUTCOMES}) == len(OUTCOMES)
    for row in OUTCOMES:
        HTTPStatus(row.http)
        dns.rcode.Rcode(row.rcode)
        assert ResponseCode(row.native) == row.response_code


def test_dns_rcodes_are_dnspythons() -> None:
    for name in ("NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"):
        assert getattr(errors, name) == getattr(dns.rcode, name)
    for name in ("YXDOMAIN", "YXRRSET", "NXRRSET"):
        assert getattr(errors, name) == getattr(dns.rcode, name)


def test_the_reference_status_table() -> None:
    """handle-rest.md's responseCode → HTTP status table, row by row."""
    expected = {1: 200, 100: 404, 101: 409, 201: 409, 4: 400, 102: 400, 202: 400, 301: 400}
    expected |= {5: 501, 3: 503, 7: 503, 402: 401, 400: 403, 401: 403, 403: 403, 404: 403}
    expected |= {2: 500, 302: 300, 303: 300, 200: 400}
    assert {code: outcome_of(code).http for code in expected} == expected
    assert NO_VALUES.http == 200  # "200 when resolving (values [])"
    assert (outcome_of(999).response_code, outcome_of(999).http) == (999, 500)


def test_an_error_told_by_another_row_keeps_its_code() -> None:
    error = errors.ProtocolError("too big", outcome=errors.BODY_TOO_LARGE)
    assert (error.response_code, error.status) == (4, 413)
    assert errors.Throttled(3).status == 429
    assert errors.AuthenticationFailed().status == 401
    with pytest.raises(ValueError):
        errors.ProtocolError("x", outcome=errors.THROTTLED)


def test_answers_carry_their_outcome() -> None:
    ident = parse("88.118.8/x")
    url = Value(1, "URL", b"https://example.org/")
    assert Answer("88.118.8/x", ident, (url,)).outcome is SUCCESS
    assert Answer("88.118.8/x", ident, ()).outcome is NO_VALUES
    site = Value(1, "HS_SITE", b"\0")
    referral = Answer("88.118.8/x", ident, (site,), referral="0.NA/88.118.8")
    assert referral.outcome is SERVICE_REFERRAL
    assert (referral.outcome.response_code, referral.outcome.http) == (302, 300)
    # A whole cached answer, told from the entry: no public value is no values.
    secret = Value(300, "HS_SECKEY", b"s", permissions=PERM_ADMIN_READ)
    for values, outcome in (((url, secret), SUCCESS), ((secret,), NO_VALUES)):
        entry = CacheEntry(ident.key, Record("88.118.8/x", values), 0, 0, 0.0)
        assert Answer("88.118.8/x", ident, None, entry, whole=True).outcome is outcome
