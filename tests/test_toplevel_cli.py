"""``idnode toplevel ...``: init, keys, apps, help, and clean errors. Commands run as
subprocesses, except the many argument and usage checks, which call ``idnode``'s main
in-process (the same code, without an interpreter start each)."""

from __future__ import annotations

import json
import socket
import stat
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from registry.signing.keys import jwk_thumbprint
from resolver.cli import main
from tests import procs
from tests.procs import cli
from tests.toplevel_support import LISTENING, fails, init, new_app, ok

HELP = [
    ["toplevel"],
    ["toplevel", "init"],
    ["toplevel", "root"],
    ["toplevel", "serve"],
    ["toplevel", "app"],
    ["toplevel", "app", "create"],
    ["toplevel", "app", "list"],
    ["toplevel", "prefix"],
    ["toplevel", "prefix", "approve"],
    ["toplevel", "prefix", "list"],
]


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> CompletedProcess[str]:
    """``idnode ARGS`` in this process, as :func:`tests.procs.cli` reports a subprocess."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse: --help, usage errors
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return CompletedProcess(list(map(str, args)), code, out, err)


@pytest.mark.parametrize("command", HELP, ids=" ".join)
def test_help(capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    out = ok(run(capsys, *command, "--help"))
    assert out.startswith("usage: idnode " + " ".join(command))


def test_help_in_a_process() -> None:
    assert "--error-rate" in ok(cli("toplevel", "serve", "--help"))


def test_bare_groups_print_usage(capsys: pytest.CaptureFixture[str]) -> None:
    for group in (["toplevel"], ["toplevel", "app"], ["toplevel", "prefix"]):
        result = run(capsys, *group)
        assert result.returncode == 2 and "usage:" in result.stdout, result


def test_init_is_idempotent_and_keeps_the_key(tmp_path: Path) -> None:
    data = tmp_path / "tl"
    out = ok(cli("toplevel", "init", "--data", data, "--signing-alg", "ES256"))
    assert "Initialised" in out and "ES256" in out
    jwk = json.loads(ok(cli("toplevel", "root", "--data", data)))
    assert jwk["kty"] == "EC"
    assert json.dumps(jwk) in out
    assert f"Trust root thumbprint: {jwk_thumbprint(jwk)}" in out
    again = ok(cli("toplevel", "init", "--data", data, "--signing-alg", "RS256"))
    assert "already initialised" in again and "ES256" in again
    assert json.loads(ok(cli("toplevel", "root", "--data", data))) == jwk
    assert stat.S_IMODE((data / "root.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE(data.stat().st_mode) == 0o700


def test_passphrase_encrypts_the_root_key(tmp_path: Path) -> None:
    data = tmp_path / "tl"
    ok(cli("toplevel", "init", "--data", data, env={"IDNODE_KEY_PASSPHRASE": "s3cret"}))
    assert b"ENCRYPTED" in (data / "root.pem").read_bytes()
    ok(cli("toplevel", "root", "--data", data, env={"IDNODE_KEY_PASSPHRASE": "s3cret"}))
    assert "passphrase" in fails(cli("toplevel", "root", "--data", data))
    wrong = {"IDNODE_KEY_PASSPHRASE": "nope"}
    assert "wrong passphrase" in fails(cli("toplevel", "root", "--data", data, env=wrong))
    assert "passphrase" in fails(
        cli("toplevel", "serve", "--data", data, "--http", "127.0.0.1:0", env=wrong)
    )


def test_apps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "tl"
    init(data)
    first = new_app(data)
    second = new_app(data, prefix="88.200", approval="manual")
    assert first != second
    listed = json.loads(ok(run(capsys, "toplevel", "app", "list", "--data", data, "--json")))
    assert [(a["app_id"], a["prefix"], a["approval"], a["registered"]) for a in listed] == [
        (first, "88.118", "auto", False),
        (second, "88.200", "manual", False),
    ]
    text = ok(run(capsys, "toplevel", "app", "list", "--data", data))
    assert f"{first}  88.118  auto  not registered" in text
    # Prefixes of two apps never nest, so every identifier routes to one node.
    for prefix in ("88.118", "88.118.8", "88", "88.200.1"):
        error = fails(run(capsys, "toplevel", "app", "create", "--data", data, "--prefix", prefix))
        assert "overlaps" in error
    assert "invalid prefix" in fails(
        run(capsys, "toplevel", "app", "create", "--data", data, "--prefix", "88..1")
    )
    assert ok(run(capsys, "toplevel", "prefix", "list", "--data", data)) == ""


def test_clean_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "tl"
    missing = tmp_path / "missing"
    for args in (
        ["serve", "--data", missing],
        ["app", "create", "--data", missing, "--prefix", "88.118"],
        ["app", "list", "--data", missing],
        ["prefix", "list", "--data", missing],
        ["root", "--data", missing],
    ):
        assert "not a top-level data directory" in fails(run(capsys, "toplevel", *args))
    assert not missing.exists()
    assert "--data" in fails(run(capsys, "toplevel", "init"))
    init(data)
    assert "no prefix 88.118.8" in fails(
        run(capsys, "toplevel", "prefix", "approve", "--data", data, "88.118.8")
    )
    for args in (
        ["serve", "--data", data, "--error-rate", "2"],
        ["serve", "--data", data, "--latency-ms", "-1"],
        ["serve", "--data", data, "--latency-ms", "x"],
        ["serve", "--data", data, "--down-after", "1"],
        ["serve", "--data", data, "--http", "nowhere"],
        ["app", "create", "--data", data, "--prefix", "88.1", "--approval", "sometimes"],
        ["app", "create", "--data", data],
        ["prefix", "approve", "--data", data],
        ["init", "--data", data, "--signing-alg", "HS256"],
    ):
        fails(run(capsys, "toplevel", *args))
    # Unknown options are reported by idnode's own top parser, in argparse's usual form.
    unknown = run(capsys, "toplevel", "serve", "--data", data, "--bogus")
    assert unknown.returncode == 2 and "unrecognized arguments: --bogus" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    (data / "toplevel.sqlite3").write_bytes(b"not a database, not at all" * 100)
    assert "toplevel.sqlite3" in fails(cli("toplevel", "app", "list", "--data", data))  # a process


async def test_busy_port_is_a_clean_error(tmp_path: Path) -> None:
    data = tmp_path / "tl"
    init(data)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        fails(cli("toplevel", "serve", "--data", data, "--http", f"127.0.0.1:{port}"))
    served = await procs.start(
        "toplevel", "serve", "--data", data, "--http", "127.0.0.1:0", listening=LISTENING
    )
    await procs.stop(served)
    assert served.proc.returncode == 0
