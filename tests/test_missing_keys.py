"""A data directory that lost ``secrets.key`` or ``keys/``: every command but ``init`` (and
``demo`` on the directory it creates) refuses, naming the missing file, and writes nothing.
New keys in their place would lock every admin out (their secrets are sealed under the old
key) and break every signature (made with the old keys)."""

from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from registry.keyring import KEYS_DIR
from registry.secrets import KEY_FILE
from resolver.config import ConfigError, load
from resolver.node import Node
from tests import procs
from tests.conftest import free_port
from tests.procs import cli


def _commands(data: Path, tmp: Path) -> list[list[str | Path]]:
    lines = tmp / "one.jsonl"
    lines.write_text(
        '{"handle": "88.118/I", "values": [{"index": 1, "type": "URL", "data": "u"}]}\n',
        encoding="utf-8",
    )
    d: list[str | Path] = ["--data", data]
    return [
        ["get", "88.118/x", *d],
        ["put", "88.118/x", "--value", "URL=https://e/x", *d],
        ["delete", "0.NA/88.118", *d],
        ["prefix", "create", "88.118.7", "--admin-secret", "E7", *d],
        ["prefix", "list", *d],
        ["import", lines, "--quiet", *d],
        ["export", *d],
        ["keys", "show", *d],
        ["keys", "rotate", "--quiet", *d],
        ["verify", "0.NA/88.118", *d],
        ["sync", "status", *d],
        ["sync", "register", "--toplevel", "http://127.0.0.1:9", "--app-id", "a", *d],
        ["demo", *d],
    ]


def _snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every entry under ``root``: its mode and, for a file, its bytes."""
    return {
        str(p.relative_to(root)): (p.stat().st_mode, p.read_bytes() if p.is_file() else b"")
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture(scope="module")
def initialised(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("template") / "node"
    done = cli("init", "--data", data, "--prefix", "88.118", "--admin-secret", "S")
    assert done.returncode == 0, done.stderr
    return data


def _without(initialised: Path, target: Path, lost: str) -> Path:
    data = Path(shutil.copytree(initialised, target))
    path = data / lost
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()
    return data


@pytest.mark.parametrize("lost", [KEY_FILE, KEYS_DIR, f"{KEYS_DIR}/state.json"])
def test_every_command_refuses_and_writes_nothing(
    initialised: Path, tmp_path: Path, lost: str
) -> None:
    cases = []
    for n, args in enumerate(_commands(Path("DATA"), tmp_path)):
        data = _without(initialised, tmp_path / f"node{n}", lost)
        cases.append(([data if a == Path("DATA") else a for a in args], data))
    before = _snapshot(cases[0][1])

    def run(case: tuple[list[str | Path], Path]) -> subprocess.CompletedProcess[str]:
        return cli(*case[0])

    with ThreadPoolExecutor(max_workers=2) as pool:  # two cores
        results = list(pool.map(run, cases))
    for (args, data), result in zip(cases, results, strict=True):
        command = " ".join(str(a) for a in args[:2])
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert result.stderr == _refusal(data, lost), command  # one line, naming the file
        assert "Traceback" not in result.stdout, command
        assert _snapshot(data) == before, command  # nothing created, changed or removed


def _refusal(data: Path, lost: str) -> str:
    what = (
        "the key that seals the admins' secrets" if lost == KEY_FILE else "the node's signing keys"
    )
    return (
        f"idnode: {data / lost} is missing ({what}): restore it from a backup of "
        "the data directory; only 'idnode init' creates keys\n"
    )


@pytest.mark.parametrize("lost", [KEY_FILE, KEYS_DIR])
@pytest.mark.parametrize("workers", [1, 2])
async def test_serve_refuses_to_start(
    initialised: Path, tmp_path: Path, lost: str, workers: int
) -> None:
    data = _without(initialised, tmp_path / "node", lost)
    before = _snapshot(data)
    port = 0 if workers == 1 else free_port()  # workers share a fixed port
    try:
        served = await procs.start(
            "serve", "--data", data, "--http", f"127.0.0.1:{port}", "--workers", str(workers)
        )
    except RuntimeError as exc:  # it exited before listening: say why, once
        assert str(exc).endswith(
            f"exited with 2 before listening; stdout: []; stderr: {_refusal(data, lost)}"
        ), exc
    else:
        await procs.stop(served)
        pytest.fail(f"served without {lost}")
    assert _snapshot(data) == before


@pytest.mark.parametrize("lost", [KEY_FILE, KEYS_DIR])
async def test_opening_the_node_refuses_before_writing(
    initialised: Path, tmp_path: Path, lost: str
) -> None:
    """What a served worker does (``make_app`` opens the node itself)."""
    data = _without(initialised, tmp_path / "node", lost)
    before = _snapshot(data)
    with pytest.raises(ConfigError, match=f"^{data / lost} is missing"):
        await Node.open(load(data))
    assert _snapshot(data) == before


def test_a_truncated_sealing_key_is_named(initialised: Path, tmp_path: Path) -> None:
    data = Path(shutil.copytree(initialised, tmp_path / "node"))
    key = data / KEY_FILE
    key.write_bytes(key.read_bytes()[:5])
    result = cli("get", "88.118/x", "--data", data)
    assert result.returncode == 2
    assert result.stderr == f"idnode: {key}: sealing key must be 32 bytes\n"


def test_demo_makes_keys_only_for_the_directory_it_creates(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    assert cli("demo", "--data", data).returncode == 0
    keys = _snapshot(data / KEYS_DIR), (data / KEY_FILE).read_bytes()
    again = cli("demo", "--data", data)  # a demo directory is made again, with its keys
    assert again.returncode == 0, again.stderr
    assert (_snapshot(data / KEYS_DIR), (data / KEY_FILE).read_bytes()) == keys
