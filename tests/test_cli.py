"""The ``idnode`` command line, run as subprocesses on temporary data directories."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shutil
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from registry.errors import AuthenticationFailed
from registry.model.admin import AdminRef
from registry.secrets import Sealer
from resolver.config import load
from resolver.node import Node
from tests import procs
from tests.conftest import assert_signed, basic, client_view, node_managed
from tests.procs import cli

Y = "88.118.8/Y"


def ok(result: Any) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return str(result.stdout)


def fails(result: Any) -> str:
    """A clean failure: exit 2, one ``idnode: ...`` message, no traceback."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith("idnode: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    return str(result.stderr)


def init(data: Path, secret: str = "S") -> str:
    return ok(cli("init", "--data", data, "--prefix", "88.118", "--admin-secret", secret))


def get_json(data: Path, handle: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(ok(cli("get", "--data", data, handle)))
    return out


def simple(record: dict[str, Any]) -> list[tuple[int, str, Any]]:
    """The client's values (the node's signature and keys left out)."""
    values = client_view(record["values"], record["handle"])
    return [(v["index"], v["type"], v["data"]["value"]) for v in values]


def signed(record: dict[str, Any]) -> dict[str, Any]:
    """The record's one node signature (checked: index >= 400, covering its public values)."""
    return assert_signed(record["values"], record["handle"])


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Data directories made once with the CLI, copied by each test: ``base`` (node 88.118,
    admin secret S) and ``ent8`` (plus enterprise prefix 88.118.8, admin secret E8)."""
    root = tmp_path_factory.mktemp("templates")
    base = root / "base"
    init(base)
    ent8 = root / "ent8"
    shutil.copytree(base, ent8)
    ok(cli("prefix", "create", "88.118.8", "--data", ent8, "--admin-secret", "E8"))
    ok(cli("put", Y, "--data", ent8, "--value", "URL=https://e/y", "--value", "2:DESC=d"))
    return {"base": base, "ent8": ent8}


@pytest.fixture
def base(templates: dict[str, Path], tmp_path: Path) -> Path:
    return Path(shutil.copytree(templates["base"], tmp_path / "node"))


@pytest.fixture
def node8(templates: dict[str, Path], tmp_path: Path) -> Path:
    """A node for 88.118 with enterprise prefix 88.118.8, made with the CLI."""
    return Path(shutil.copytree(templates["ent8"], tmp_path / "node"))


def run_all(commands: list[list[str | Path]]) -> list[Any]:
    """Run independent CLI commands two at a time (the machine has few cores)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(lambda c: cli(*c), commands))


# ------------------------------------------------------------------ init


async def _secret_works(data: Path, handle: str, secret: str) -> bool:
    """Whether ``300:HANDLE`` authenticates with ``secret`` on the node in ``data``."""
    node = await Node.open(load(data))
    try:
        await node.registry.authenticator.verify_secret(AdminRef(300, handle), secret.encode())
    except AuthenticationFailed:
        return False
    finally:
        await node.close()
    return True


async def test_init_creates_config_key_and_registry(tmp_path: Path) -> None:
    data = tmp_path / "node"
    out = init(data, "S-admin-secret")
    assert "300:0.NA/88.118" in out
    assert "S-admin-secret" not in out  # a given secret is not echoed
    assert "shown once" not in out
    assert (data / "idnode.toml").is_file()
    assert (data / "registry.sqlite3").is_file()
    assert stat.S_IMODE((data / "secrets.key").stat().st_mode) == 0o600
    assert load(data).prefixes == ("88.118",)
    assert await _secret_works(data, "0.NA/88.118", "S-admin-secret")
    assert not await _secret_works(data, "0.NA/88.118", "S")


def test_init_twice_fails_cleanly(base: Path) -> None:
    config = (base / "idnode.toml").read_bytes()
    key = (base / "secrets.key").read_bytes()
    err = fails(cli("init", "--data", base, "--prefix", "88.118", "--admin-secret", "T"))
    assert "already" in err
    assert (base / "idnode.toml").read_bytes() == config
    assert (base / "secrets.key").read_bytes() == key


async def test_init_without_secret_prints_a_generated_one_once(tmp_path: Path) -> None:
    data = tmp_path / "node"
    out = ok(cli("init", "--data", data, "--prefix", "88.118"))
    m = re.search(r"secret \(shown once, keep it safe\): (\S+)", out)
    assert m, out
    secret = m.group(1)
    assert len(secret) >= 16
    assert out.count(secret) == 1
    assert await _secret_works(data, "0.NA/88.118", secret)


# ------------------------------------------------------------------ prefixes and records


async def test_prefix_create_and_list(base: Path) -> None:
    out = ok(cli("prefix", "create", "88.118.8", "--data", base))
    assert "Created prefix 88.118.8; admin identity 300:0.NA/88.118.8" in out
    m = re.search(r"Admin secret \(shown once, keep it safe\): (\S+)", out)
    assert m, out
    assert await _secret_works(base, "0.NA/88.118.8", m.group(1))
    # Creating it again is refused and changes nothing.
    fails(cli("prefix", "create", "88.118.8", "--data", base, "--admin-secret", "X"))
    assert sorted(ok(cli("prefix", "list", "--data", base)).split()) == ["88.118", "88.118.8"]
    assert await _secret_works(base, "0.NA/88.118.8", m.group(1))


def test_put_get_add_delete(node8: Path) -> None:
    h = "88.118.8/X"
    out = ok(
        cli("put", h, "--data", node8, "--value", "URL=https://e/x", "--value", "2:DESC=hello")
    )
    assert out.strip() == f"created {h}"
    record = get_json(node8, h)
    assert record["responseCode"] == 1
    assert record["handle"] == h
    assert simple(record) == [(1, "URL", "https://e/x"), (2, "DESC", "hello")]
    signed(record)

    out = ok(
        cli(
            "put", h, "--data", node8, "--add", "--value", "3:EMAIL=a@e.org", "--value", "2:DESC=hi"
        )
    )
    assert out.strip() == f"updated {h}"
    record = get_json(node8, h)
    assert simple(record) == [
        (1, "URL", "https://e/x"),
        (2, "DESC", "hi"),
        (3, "EMAIL", "a@e.org"),
    ]
    signed(record)

    ok(cli("delete", h, "--data", node8, "--index", "2"))
    record = get_json(node8, h)
    assert simple(record) == [(1, "URL", "https://e/x"), (3, "EMAIL", "a@e.org")]
    signed(record)

    out = ok(cli("delete", h, "--data", node8))
    assert out.strip() == f"deleted {h}"
    said = fails(cli("get", h, "--data", node8))
    assert said == f"idnode: {h}: handle not found (responseCode 100)\n"


ERRORS: dict[str, tuple[list[str], str]] = {
    # case: (argv, text the message must contain, case-insensitive regex)
    "unknown-handle": (["get", "88.118.8/NOPE"], r"^88\.118\.8/NOPE: handle not found"),
    "delete-unknown": (["delete", "88.118.8/NOPE"], r"^88\.118\.8/NOPE: handle not found"),
    "delete-missing-index": (["delete", Y, "--index", "2", "--index", "7"], "not ?found"),
    "prefix-not-allocated": (["put", "88.118.5/X", "--value", "URL=https://e"], "not allocated"),
    "not-homed": (["put", "99.1/X", "--value", "URL=https://e"], "live here"),
    "value-without-equals": (["put", "88.118.8/X", "--value", "no-equals"], "--value"),
    "value-index-0": (["put", "88.118.8/X", "--value", "0:URL=https://e"], "index"),
    "duplicate-index": (["put", Y, "--value", "URL=a", "--value", "1:DESC=b"], "index"),
    "invalid-handle": (["put", "no-slash", "--value", "URL=https://e"], "/"),
    "no-data-dir": (["get", "88.118.8/Y", "--data", "/nonexistent/idnode"], r"^(?!88).*init"),
}


def test_errors_exit_2_with_message_and_change_nothing(node8: Path) -> None:
    before = export(node8)
    names = list(ERRORS)
    argvs = [a if "--data" in a else [*a, "--data", node8] for a, _ in ERRORS.values()]
    results = run_all(argvs)
    problems = {}
    for name, result in zip(names, results, strict=True):
        err = result.stderr
        if (
            result.returncode != 2
            or not err.startswith("idnode: ")
            or "Traceback" in err
            or not re.search(ERRORS[name][1], err.removeprefix("idnode: "), re.IGNORECASE)
        ):
            problems[name] = (result.returncode, result.stdout[-200:], err[-300:])
    assert problems == {}
    assert export(node8) == before


def test_value_with_non_numeric_index_is_refused(node8: Path) -> None:
    """``[INDEX:]TYPE=DATA`` with an INDEX that is not a number is a bad --value: it must not
    be stored as some other value (index and type silently changed)."""
    result = cli("put", "88.118.8/X", "--data", node8, "--value", "x:URL=https://e")
    assert (result.returncode, result.stderr[:8]) == (2, "idnode: "), (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    fails(cli("get", "88.118.8/X", "--data", node8))


# ------------------------------------------------------------------ export / import


def export(data: Path) -> str:
    result = cli("export", "--data", data)
    ok(result)
    assert re.search(r"exported \d+ records", result.stderr)
    return str(result.stdout)


def fresh_node_like(source: Path, target: Path) -> None:
    """A new, empty node with the source's configuration and keys (how a node is moved:
    sealed secrets only open under the key they were sealed with, and its signing keys are
    its identity)."""
    target.mkdir()
    shutil.copy2(source / "idnode.toml", target / "idnode.toml")
    shutil.copy2(source / "secrets.key", target / "secrets.key")
    shutil.copytree(source / "keys", target / "keys")


def opened(export_text: str, data: Path) -> list[dict[str, Any]]:
    """Export records with HS_SECKEY data unsealed (sealing draws a fresh nonce each time,
    so the same secret is sealed to different bytes on two nodes)."""
    sealer = Sealer.load_or_create(data)
    out = []
    for line in export_text.splitlines():
        rec = json.loads(line)
        for v in rec["values"]:
            if v["type"] == "HS_SECKEY":
                d = v["data"]
                raw = base64.b64decode(d["value"]) if d["format"] == "base64" else d["value"]
                raw = raw if isinstance(raw, bytes) else raw.encode()
                assert Sealer.is_sealed(raw), v  # exports hold secrets sealed only
                v["data"] = {"unsealed": sealer.unseal(raw).decode()}
        out.append(rec)
    return out


def client_part(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Export records without the node-managed values: its signatures (made afresh by each
    import, so they differ between nodes and imports) and its keys (each node has its own)."""
    return [{**r, "values": client_view(r["values"], r["handle"])} for r in records]


def assert_node_values(records: list[dict[str, Any]]) -> None:
    """Every exported record is signed by the node; its prefix handle publishes its keys."""
    for record in records:
        signed(record)
    node = next(r for r in records if r["handle"] == "0.NA/88.118")
    keys = [v for v in node["values"] if node_managed(v, node["handle"])]
    assert sorted((v["index"], v["type"]) for v in keys if v["type"] != "HS_SIGNATURE") == [
        (600, "HS_PUBKEY"),
        (601, "HS_PUBKEY"),
        (700, "HS_CERT"),
        (701, "HS_CERT"),
    ]


def source_lines() -> list[str]:
    lines = [
        {
            "handle": "0.NA/88.118.9",
            "values": [
                {
                    "index": 100,
                    "type": "HS_ADMIN",
                    "data": {
                        "format": "admin",
                        "value": {"handle": "0.NA/88.118.9", "index": 300, "permissions": ALL},
                    },
                },
                {"index": 300, "type": "HS_SECKEY", "data": "E9", "permissions": "1100"},
            ],
        },
        *(
            {
                "handle": f"88.118.8/R{i}",
                "values": [
                    {"index": 1, "type": "URL", "data": f"https://e/r{i}", "ttl": 60 + i},
                    {"index": 7, "type": "DESC", "data": f"record {i} ünïcode"},
                    {"index": 9, "type": "BIN", "data": {"format": "hex", "value": "00ff10"}},
                ],
            }
            for i in range(4)
        ),
        {"handle": "88.118.9/Q", "values": [{"index": 1, "type": "URL", "data": "https://e/q"}]},
    ]
    return [json.dumps(x, ensure_ascii=False) for x in lines]


ALL = "111111111111"


async def test_export_import_round_trip_and_idempotence(node8: Path, tmp_path: Path) -> None:
    src = tmp_path / "src.jsonl"
    src.write_text("\n".join(source_lines()) + "\n", encoding="utf-8")
    out = ok(cli("import", src, "--data", node8, "--quiet"))
    assert "6 created, 0 replaced, 0 unchanged" in out
    exported = export(node8)
    lines = exported.splitlines()
    assert len(lines) == 3 + 6  # 0.NA/88.118, 0.NA/88.118.8, 88.118.8/Y and the 6 above
    records = [json.loads(line) for line in lines]
    assert_node_values(records)  # imported records are signed like any other write
    # The secrets are exported sealed, never in clear text. (Searching the text for "E8"
    # would be flaky: random sealed bytes in base64 hold it now and then.)
    seckeys = [
        base64.b64decode(v["data"]["value"])
        for r in client_part(records)
        for v in r["values"]
        if v["type"] == "HS_SECKEY"
    ]
    assert len(seckeys) == 3  # the node admin's and the two enterprise admins'
    assert all(Sealer.is_sealed(data) for data in seckeys)
    clients = "\n".join(json.dumps(r, ensure_ascii=False) for r in client_part(records))
    assert '"E8"' not in clients and '"E9"' not in clients
    dump = tmp_path / "dump.jsonl"
    dump.write_text(exported, encoding="utf-8")

    target = tmp_path / "copy"
    fresh_node_like(node8, target)
    # Small batches: several, so worker processes prepare them.
    out = ok(cli("import", dump, "--data", target, "--quiet", "--batch-size", "2"))
    assert "9 created, 0 replaced, 0 unchanged" in out
    first = export(target)
    # Every record, value, timestamp and secret is reproduced; the copy signs the records
    # itself (new signatures).
    assert client_part(opened(first, target)) == client_part(opened(exported, node8))
    assert_node_values([json.loads(line) for line in first.splitlines()])

    out = ok(cli("import", dump, "--data", target, "--quiet", "--batch-size", "2"))
    assert "0 created, 0 replaced, 9 unchanged" in out
    assert export(target) == first  # byte for byte: nothing changed, not even timestamps

    assert await _secret_works(target, "0.NA/88.118.9", "E9")
    assert await _secret_works(target, "0.NA/88.118.8", "E8")


async def test_import_into_node_with_another_key_fails_cleanly(node8: Path, tmp_path: Path) -> None:
    dump = tmp_path / "dump.jsonl"
    dump.write_text(export(node8), encoding="utf-8")
    other = tmp_path / "other"
    init(other)
    err = fails(cli("import", dump, "--data", other, "--quiet"))
    assert "secrets.key" in err
    # The failed batch left nothing behind.
    assert ok(cli("prefix", "list", "--data", other)).split() == ["88.118"]
    assert await _secret_works(other, "0.NA/88.118", "S")


def test_import_bad_line_names_it_and_keeps_earlier_batches(node8: Path, tmp_path: Path) -> None:
    def line(n: int) -> str:
        return json.dumps(
            {"handle": f"88.118.8/L{n}", "values": [{"index": 1, "type": "URL", "data": f"u{n}"}]}
        )

    text = [line(n) for n in range(1, 5)] + ['{"handle": "88.118.8/L5", "values": [oops']
    text += [line(n) for n in range(6, 9)]
    dump = tmp_path / "bad.jsonl"
    dump.write_text("\n".join(text) + "\n", encoding="utf-8")
    err = fails(cli("import", dump, "--data", node8, "--quiet", "--batch-size", "2"))
    assert re.search(r"\bline 5\b", err), err
    handles = {json.loads(x)["handle"]: x for x in export(node8).splitlines()}
    for n in range(1, 5):
        record = json.loads(handles.pop(f"88.118.8/L{n}"))
        assert [
            (v["index"], v["data"]["value"])
            for v in client_view(record["values"], record["handle"])
        ] == [(1, f"u{n}")]
        signed(record)
    assert sorted(handles) == ["0.NA/88.118", "0.NA/88.118.8", Y]


# ------------------------------------------------------------------ serve and config


async def test_config_precedence_file_env_flag(base: Path) -> None:
    config = base / "idnode.toml"
    text = config.read_text(encoding="utf-8")
    assert 'http = "127.0.0.1:8000"' in text
    config.write_text(text.replace("127.0.0.1:8000", "127.0.0.2:0"), encoding="utf-8")
    env = {"IDNODE_HTTP": "127.0.0.3:0"}

    async with procs.serving(base, http=None) as served:
        assert served.host == "127.0.0.2"  # the file
    async with procs.serving(base, http=None, env=env) as served:
        assert served.host == "127.0.0.3"  # the environment beats the file
    async with procs.serving(base, http="127.0.0.1:0", env=env) as served:
        assert served.host == "127.0.0.1"  # the flag beats both
        assert served.port != 0
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{served.url}/api/handles/0.NA/88.118") as r,
        ):
            assert r.status == 200


async def test_demo_then_serve_quick_start(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    out = ok(await asyncio.to_thread(cli, "demo", "--data", data))
    assert "Demo node ready" in out
    async with procs.serving(data) as served, aiohttp.ClientSession() as session:
        async with session.get(served.api("88.118.8/JXDY2106023")) as r:
            assert r.status == 200, await r.text()
            body = await r.json()
        assert body["responseCode"] == 1
        urls = [v["data"]["value"] for v in body["values"] if v["type"] == "URL"]
        assert urls == ["https://example.com/products/JXDY2106023"]
        # The demo's documented enterprise credentials work for a write.
        auth = {"Authorization": basic("300:0.NA/88.118.8", "demo-enterprise-secret")}
        new = {"values": [{"index": 1, "type": "URL", "data": "https://example.com/new"}]}
        async with session.put(served.api("88.118.8/NEW-001"), json=new, headers=auth) as r:
            assert r.status == 201, await r.text()


# ------------------------------------------------------------------ help

COMMANDS = [
    [],
    ["init"],
    ["serve"],
    ["get"],
    ["put"],
    ["delete"],
    ["prefix"],
    ["prefix", "create"],
    ["prefix", "list"],
    ["import"],
    ["export"],
    ["demo"],
]


def test_help_for_every_command() -> None:
    results = run_all([[*c, "--help"] for c in COMMANDS])
    problems = {}
    for command, result in zip(COMMANDS, results, strict=True):
        usage = "usage: " + " ".join(["idnode", *command])
        if result.returncode != 0 or not result.stdout.startswith(usage) or result.stderr:
            problems[usage] = (result.returncode, result.stdout[:80], result.stderr[:200])
    assert problems == {}


def test_unreadable_and_unwritable_files_are_clear_errors(node8: Path, tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.jsonl")
    results = run_all(
        [
            ["put", "88.118.8/F", "--json", missing, "--data", node8],
            ["import", missing, "--data", node8],
            ["export", "-o", str(tmp_path / "no" / "dir.jsonl"), "--data", node8],
        ]
    )
    for result in results:
        assert "No such file or directory" in fails(result)


# ------------------------------------------------------------------ import reports (sync)


async def test_bulk_import_queues_its_reports_in_its_transactions(
    node8: Path, tmp_path: Path
) -> None:
    """The parallel import path reports like every other write: the enterprise prefixes it
    creates go to the outbox, and its identifiers are counted as registrations."""
    dump = tmp_path / "more.jsonl"
    prefix = {"handle": "0.NA/88.118.30", "values": [{"index": 1, "type": "DESC", "data": "p"}]}
    items = [
        {"handle": f"88.118.30/I{n}", "values": [{"index": 1, "type": "URL", "data": f"u{n}"}]}
        for n in range(25)
    ]
    dump.write_text("\n".join(json.dumps(x) for x in [prefix, *items]) + "\n", encoding="utf-8")
    done = cli("import", dump, "--data", node8, "--quiet", "--batch-size", "10")
    assert done.returncode == 0, done.stderr
    assert cli("import", dump, "--data", node8, "--quiet").returncode == 0  # unchanged: no-op
    node = await Node.open(load(node8))
    try:
        bodies = [i.body for i in await node.store.outbox_peek(100) if i.kind == "prefix"]
        totals = await node.store.stats_totals()
    finally:
        await node.close()
    assert {"op": "create", "prefix": "88.118.30"} in bodies
    assert len([b for b in bodies if b["prefix"] == "88.118.30"]) == 1
    assert totals["88.118.30"]["registrations"] == 25
    assert totals["88.118.30"]["updates"] == 0


def test_commands_that_never_fetch_do_not_load_the_http_client() -> None:
    """aiohttp's client loads the system's CA certificates when imported (~0.1 s): the store
    commands (get, put, import, ...) reach the resolver core, whose cross-node client must
    import it only when it first fetches."""
    code = (
        "import sys, resolver.cli, resolver.node;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'aiohttp'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=procs.ROOT
    )
    assert done.stdout.strip() == "[]"


def test_a_sqlite_store_in_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "not" / "there"
    where = missing / "registry.sqlite3"
    said = f"idnode: store: the directory of {where} does not exist: create {missing}"

    init = cli("init", "--data", tmp_path / "new", "--prefix", "88.7", "--store", where)
    assert init.returncode == 2, init.stderr
    assert init.stderr.startswith(said) and "Traceback" not in init.stderr, init.stderr
    assert not (tmp_path / "new").exists()  # refused before anything was written

    data = tmp_path / "node"
    made = cli("init", "--data", data, "--prefix", "88.7")
    assert made.returncode == 0, made.stderr
    for args in (("get", "88.7/x"), ("serve", "--http", "127.0.0.1:0")):
        run = cli(*args, "--data", data, env={"IDNODE_STORE": str(where)})
        assert run.returncode == 2, (args, run.stdout, run.stderr)
        assert run.stderr.startswith(said) and "Traceback" not in run.stderr, run.stderr
        assert run.stderr.count("\n") == 1, run.stderr  # one line
    assert not missing.exists()
