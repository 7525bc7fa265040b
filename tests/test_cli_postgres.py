"""The ``store`` setting and ``--store``: a node on PostgreSQL from ``idnode init`` on, the
setting from the file, the environment or the flag, and the failures an operator meets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from resolver.config import ConfigError, load
from tests.pgserver import fresh_database
from tests.procs import cli
from tests.test_cli import fails, ok

HANDLE = "88.118/ITEM-1"


@pytest.fixture
def dsn() -> Iterator[str]:
    with fresh_database() as location:
        yield location


def with_password(dsn: str, password: str) -> str:
    """``dsn`` with a password (the test server trusts local connections: any will do)."""
    parts = urlsplit(dsn)
    netloc = f"{parts.username}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


async def count_rows(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM handles"))
    finally:
        await conn.close()


async def test_init_on_postgresql_then_every_command_uses_it(dsn: str, tmp_path: Path) -> None:
    data = tmp_path / "node"
    out = ok(
        await asyncio.to_thread(
            cli, "init", "--data", data, "--prefix", "88.118", "--admin-secret", "S", "--store", dsn
        )
    )
    assert f"Store: {dsn}" in out
    assert not (data / "registry.sqlite3").exists()  # the records are in the database
    assert load(data, env={}).store == dsn  # written to the config file
    assert await count_rows(dsn) == 1  # the prefix handle
    ok(await asyncio.to_thread(cli, "put", HANDLE, "--data", data, "--value", "URL=https://e/1"))
    got = json.loads(ok(await asyncio.to_thread(cli, "get", HANDLE, "--data", data)))
    assert [v["data"]["value"] for v in got["values"] if v["type"] == "URL"] == ["https://e/1"]
    assert await count_rows(dsn) == 2


async def test_init_keeps_the_password_out_of_the_config_file(dsn: str, tmp_path: Path) -> None:
    data = tmp_path / "node"
    secret_url = with_password(dsn, "pg-s3cret")
    out = ok(
        await asyncio.to_thread(
            cli, "init", "--data", data, "--prefix", "88.118", "--store", secret_url
        )
    )
    assert "pg-s3cret" not in out and "PGPASSWORD" in out
    text = (data / "idnode.toml").read_text("utf-8")
    assert "pg-s3cret" not in text
    assert load(data, env={}).store == dsn  # the user stays, the password does not


async def test_init_refuses_a_database_that_holds_a_registry(dsn: str, tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    ok(await asyncio.to_thread(cli, "init", "--data", first, "--prefix", "88.118", "--store", dsn))
    err = fails(
        await asyncio.to_thread(cli, "init", "--data", second, "--prefix", "88.119", "--store", dsn)
    )
    assert "already holds a registry" in err and "copy the data directory" in err
    assert not second.exists()  # refused before anything was written
    assert await count_rows(dsn) == 1


async def test_the_store_from_the_environment_or_the_flag(dsn: str, tmp_path: Path) -> None:
    """A data directory made on SQLite, pointed at a PostgreSQL registry by IDNODE_STORE or
    --store (the flag wins), without touching its own file."""
    pg, lite = tmp_path / "pg", tmp_path / "lite"
    ok(await asyncio.to_thread(cli, "init", "--data", pg, "--prefix", "88.118", "--store", dsn))
    ok(await asyncio.to_thread(cli, "put", HANDLE, "--data", pg, "--value", "URL=https://pg"))
    ok(await asyncio.to_thread(cli, "init", "--data", lite, "--prefix", "88.118"))
    fails(await asyncio.to_thread(cli, "get", HANDLE, "--data", lite))  # not in its SQLite file
    # The keys are the pg node's (a host of that registry shares its data directory).
    for name in ("secrets.key", "keys"):
        (lite / name).rename(tmp_path / f"old-{name}")
        (pg / name).rename(lite / name)
    env = {"IDNODE_STORE": dsn}
    got = json.loads(ok(await asyncio.to_thread(cli, "get", HANDLE, "--data", lite, env=env)))
    assert got["handle"] == HANDLE
    sqlite = f"sqlite:{lite / 'registry.sqlite3'}"
    fails(await asyncio.to_thread(cli, "get", HANDLE, "--data", lite, "--store", sqlite, env=env))
    flag = ["--store", dsn]
    got = json.loads(ok(await asyncio.to_thread(cli, "get", HANDLE, "--data", lite, *flag)))
    assert got["handle"] == HANDLE


def test_an_unreachable_or_unknown_store_is_one_line(tmp_path: Path) -> None:
    data = tmp_path / "node"
    ok(cli("init", "--data", data, "--prefix", "88.118"))
    err = fails(cli("get", HANDLE, "--data", data, "--store", "postgresql://u:pw@127.0.0.1:1/x"))
    assert "Cannot reach the registry database" in err and "pw@" not in err
    err = fails(cli("get", HANDLE, "--data", data, "--store", "mysql://db/x"))
    assert "unknown store scheme 'mysql'" in err
    err = fails(cli("init", "--data", tmp_path / "n2", "--prefix", "88.1", "--store", "pg://x"))
    assert "unknown store scheme" in err and not (tmp_path / "n2").exists()


def test_a_relative_sqlite_store_is_in_the_data_directory(tmp_path: Path) -> None:
    data = tmp_path / "node"
    ok(cli("init", "--data", data, "--prefix", "88.118", "--store", "sqlite:other.db"))
    assert (data / "other.db").is_file() and not (data / "registry.sqlite3").exists()
    assert load(data, env={}).store_location == f"sqlite:{data / 'other.db'}"
    assert load(data, {"store": "plain.db"}, env={}).store_location == str(data / "plain.db")
    with pytest.raises(ConfigError, match="store: sqlite: needs a file path"):
        load(data, {"store": "sqlite:"}, env={})


def test_read_replicas_from_the_file_the_environment_or_the_flag(tmp_path: Path) -> None:
    data = tmp_path / "node"
    ok(cli("init", "--data", data, "--prefix", "88.118"))
    pg = "postgresql://idnode@db:5432/idnode"
    r1, r2 = "postgresql://idnode@r1:5432/idnode", "postgresql://idnode@r2:5432/idnode"
    config = data / "idnode.toml"
    config.write_text(config.read_text() + f'store = "{pg}"\nstore_replicas = ["{r1}"]\n', "utf-8")
    assert load(data, env={}).store_replicas == (r1,)
    env = {"IDNODE_STORE_REPLICAS": f"{r1}, {r2}"}
    assert load(data, env=env).store_replicas == (r1, r2)
    assert load(data, {"store_replicas": r2}, env=env).store_replicas == (r2,)
    with pytest.raises(ConfigError, match="store_replicas: read replicas need a PostgreSQL"):
        load(data, {"store": "plain.db"}, env={})
    with pytest.raises(ConfigError, match="a read replica is a postgresql:// URL") as refused:
        load(data, {"store_replicas": "mysql://u:secret@r/x"}, env={})
    assert "secret" not in str(refused.value)
    err = fails(cli("serve", "--data", data, "--store", "x.db", "--store-replicas", r1))
    assert "read replicas need a PostgreSQL store" in err


async def test_signing_and_key_rotation_on_postgresql(dsn: str, tmp_path: Path) -> None:
    """Every record re-signed by `idnode keys rotate` (batches of the store's bulk path),
    and each verifies against the node's root afterwards."""
    data = tmp_path / "node"
    ok(await asyncio.to_thread(cli, "init", "--data", data, "--prefix", "88.118", "--store", dsn))
    ok(await asyncio.to_thread(cli, "prefix", "create", "88.118.8", "--data", data))
    lines = "".join(
        json.dumps(
            {
                "handle": f"88.118.8/R{i}",
                "values": [{"index": 1, "type": "URL", "data": f"https://e/{i}"}],
            }
        )
        + "\n"
        for i in range(90)
    )
    ok(await asyncio.to_thread(cli, "import", "-", "--data", data, "--quiet", stdin=lines))

    def issuer(handle: str) -> str:
        report = json.loads(ok(cli("verify", handle, "--data", data, "--json")))
        assert report["ok"], report
        (signature,) = report["signatures"]
        return str(signature["issuer"])

    assert await asyncio.to_thread(issuer, "88.118.8/R7") == "601:0.NA/88.118"
    ok(
        await asyncio.to_thread(
            cli, "keys", "rotate", "--data", data, "--batch-size", "40", "--quiet"
        )
    )
    for handle in ("88.118.8/R7", "88.118.8/R89", "0.NA/88.118.8"):
        assert await asyncio.to_thread(issuer, handle) == "602:0.NA/88.118"
