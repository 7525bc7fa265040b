"""``idnode enterprise ...`` and ``idnode template ...`` on a data directory: every
transition, the refusals, and templates checking local writes and imports."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from resolver.cli import parser
from tests.procs import cli
from tests.test_cli import fails, init, ok

NEW = "88.118.20"
FIELDS = ["--name", "Motor works", "--organisation", "Motor Works Ltd"]
FIELDS += ["--contact", "ops@motor.example", "--industry", "machinery"]


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("lifecycle") / "base"
    init(base)
    ok(cli("prefix", "create", "88.118.8", "--data", base, "--admin-secret", "E8"))
    return base


@pytest.fixture
def data(made: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(made, tmp_path / "node"))


def enterprise(data: Path, *args: str) -> object:
    return cli("enterprise", *args, "--data", data)


def test_every_transition(data: Path) -> None:
    result = enterprise(data, "apply", "--prefix", NEW, *FIELDS)
    shown = json.loads(ok(result))
    assert (shown["state"], shown["credential"]) == ("pending", "secret")
    assert "Admin secret (shown once, keep it safe): " in result.stderr  # type: ignore[attr-defined]
    assert ok(enterprise(data, "list", "--state", "pending")).split("\t")[:2] == [NEW, "pending"]
    assert ok(enterprise(data, "approve", NEW)) == f"{NEW}: active\n"
    assert json.loads(ok(cli("get", f"0.NA/{NEW}", "--data", data)))["responseCode"] == 1
    ok(cli("put", f"{NEW}/x", "--data", data, "--value", "URL=https://e/x"))

    assert ok(enterprise(data, "suspend", NEW, "--reason", "unpaid")) == f"{NEW}: suspended\n"
    assert f"prefix {NEW} is suspended" in fails(cli("get", f"{NEW}/x", "--data", data))
    error = fails(cli("put", f"{NEW}/y", "--data", data, "--value", "URL=https://e/y"))
    assert f"prefix {NEW} is suspended" in error
    assert ok(enterprise(data, "list", "--state", "suspended")).startswith(f"{NEW}\tsuspended")
    assert ok(enterprise(data, "reactivate", NEW)) == f"{NEW}: active\n"
    ok(cli("get", f"{NEW}/x", "--data", data))

    assert ok(enterprise(data, "withdraw", NEW, "--reason", "ended")) == f"{NEW}: withdrawn\n"
    assert f"prefix {NEW} is withdrawn" in fails(cli("get", f"{NEW}/x", "--data", data))
    error = fails(enterprise(data, "approve", NEW))
    assert f"prefix {NEW} is withdrawn: it cannot be approved" in error
    history = json.loads(ok(enterprise(data, "show", NEW)))["history"]
    assert [h["action"] for h in history] == [
        "apply",
        "approve",
        "suspend",
        "reactivate",
        "withdraw",
    ]
    assert {h["by"] for h in history[1:]} == {"local operator"}


def test_reject_and_the_refusals(data: Path) -> None:
    ok(enterprise(data, "apply", "--prefix", NEW, *FIELDS, "--secret", "a-long-enough-secret"))
    assert "reject needs a reason" in fails(enterprise(data, "reject", NEW))
    assert ok(enterprise(data, "reject", NEW, "--reason", "no papers")) == f"{NEW}: rejected\n"
    assert "is rejected: it cannot be suspended" in fails(
        enterprise(data, "suspend", NEW, "--reason", "x")
    )
    assert "no enterprise prefix 88.118.77" in fails(enterprise(data, "approve", "88.118.77"))
    assert "not under this node" in fails(enterprise(data, "show", "99.1"))
    error = fails(enterprise(data, "apply", "--prefix", "88.118.8", *FIELDS))
    assert "prefix 88.118.8 is allocated already" in error
    assert "is active: it cannot be approved" in fails(enterprise(data, "approve", "88.118.8"))


def test_a_public_key_application(data: Path, tmp_path: Path) -> None:
    from registry.signing.keys import SigningKey

    key = tmp_path / "admin.jwk"
    key.write_text(json.dumps(SigningKey.generate().public_jwk()))
    shown = json.loads(
        ok(enterprise(data, "apply", "--prefix", NEW, *FIELDS, "--public-key", str(key)))
    )
    assert shown["credential"] == "publicKey"
    ok(enterprise(data, "approve", NEW))
    record = json.loads(ok(cli("get", f"0.NA/{NEW}", "--data", data)))
    assert [v["type"] for v in record["values"] if v["index"] == 300] == ["HS_PUBKEY"]


def test_templates_on_the_command_line(data: Path, tmp_path: Path) -> None:
    spec = tmp_path / "motor.json"
    spec.write_text(json.dumps({"fields": [{"type": "GTIN", "datatype": "gs1", "required": True}]}))
    assert ok(cli("template", "put", "motor", str(spec), "--data", data)) == (
        "88.118/TEMPLATE.motor: version 1\n"
    )
    ok(cli("template", "put", "motor", "-", "--data", data, stdin='{"fields": [{"type": "SN"}]}'))
    assert ok(cli("template", "list", "--data", data)) == "motor\t2\n"
    old = json.loads(ok(cli("template", "get", "motor", "--version", "1", "--data", data)))
    assert old["fields"][0]["datatype"] == "gs1"
    assert "no version 5 of template motor" in fails(
        cli("template", "get", "motor", "--version", "5", "--data", data)
    )
    spec.write_text("{not json")
    assert "not JSON" in fails(cli("template", "put", "motor", str(spec), "--data", data))

    pinned = ["--value", "1:TEMPLATE=motor@1"]
    error = fails(cli("put", "88.118.8/m1", "--data", data, *pinned, "--value", "2:GTIN=123"))
    assert "88.118.8/m1 does not follow template motor@1: GTIN (index 2): not a GS1 key" in error
    ok(cli("put", "88.118.8/m1", "--data", data, *pinned, "--value", "2:GTIN=4006381333931"))

    lines = tmp_path / "items.jsonl"
    good = {
        "handle": "88.118.8/m2",
        "values": [
            {"index": 1, "type": "TEMPLATE", "data": "motor@1"},
            {"index": 2, "type": "GTIN", "data": "96385074"},
        ],
    }
    bad = {"handle": "88.118.8/m3", "values": [{"index": 1, "type": "TEMPLATE", "data": "motor@1"}]}
    lines.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    error = fails(cli("import", str(lines), "--data", data, "--quiet"))
    assert "line 2: 88.118.8/m3 does not follow template motor@1: GTIN: required" in error


@pytest.mark.parametrize(
    "command",
    [
        ["enterprise"],
        *(["enterprise", a] for a in ("apply", "list", "show", "approve", "reject")),
        *(["enterprise", a] for a in ("suspend", "reactivate", "withdraw")),
        ["template"],
        *(["template", a] for a in ("put", "get", "list")),
    ],
)
def test_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        parser().parse_args([*command, "--help"])
    assert exit.value.code == 0
    assert "usage: idnode " + " ".join(command) in capsys.readouterr().out
