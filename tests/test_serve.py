"""`idnode serve` as users run it: HTTPS with --tls-cert/--tls-key, and --workers N."""

from __future__ import annotations

import asyncio
import datetime
import gc
import ipaddress
import os
import re
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from resolver import server
from resolver.native import client as native_client
from tests.conftest import ENT8_ADMIN, JSON, free_port, init_node
from tests.procs import LISTENING, serving

BODY = {"values": [{"index": 1, "type": "URL", "data": "https://example.org/tls"}]}


def self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idnode test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_https_carries_credentials_that_plain_http_may_not(tmp_path: Path) -> None:
    # Credentials over plain HTTP are refused even from loopback: only TLS can carry them.
    data = tmp_path / "node"
    await init_node(data, plain_credentials="never")
    cert, key = self_signed(tmp_path)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    async with serving(data, "--tls-cert", str(cert), "--tls-key", str(key)) as served:
        assert served.scheme == "https"
        async with aiohttp.ClientSession() as session:
            async with session.put(
                served.api("88.118.8/TLS"),
                json=BODY,
                headers={**ENT8_ADMIN, **JSON},
                ssl=client_ctx,
            ) as r:
                assert r.status == 201, await r.text()
            async with session.get(served.api("88.118.8/TLS"), ssl=client_ctx) as r:
                body = await r.json()
            assert body["values"][0]["data"]["value"] == "https://example.org/tls"
            # The same port does not speak plain HTTP.
            with pytest.raises(aiohttp.ClientError):
                async with session.get(f"http://127.0.0.1:{served.port}/api/site") as r:
                    await r.read()


async def test_plain_http_refuses_credentials_when_configured(tmp_path: Path) -> None:
    data = tmp_path / "node"
    await init_node(data, plain_credentials="never")
    async with serving(data) as served, aiohttp.ClientSession() as session:
        async with session.put(
            served.api("88.118.8/PLAIN"), json=BODY, headers={**ENT8_ADMIN, **JSON}
        ) as r:
            assert r.status == 403
            assert (await r.json())["responseCode"] == 402
        async with session.get(served.api("88.118.8/PLAIN")) as r:
            assert r.status == 404


def children(pid: int) -> set[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return {int(p) for p in out.stdout.split()}


async def test_workers_share_one_port_and_store(tmp_path: Path) -> None:
    data = tmp_path / "node"
    await init_node(data)
    port = free_port()
    async with serving(data, "--workers", "2", http=f"127.0.0.1:{port}") as served:
        assert served.proc.stdout is not None
        # Both workers announce the same port.
        second = await asyncio.wait_for(served.proc.stdout.readline(), 20)
        match = LISTENING.match(second.decode().strip())
        assert match and int(match.group(3)) == port == served.port
        workers = children(served.proc.pid)
        assert len(workers) == 2
        # New connections are spread by the kernel; every one is answered from the shared
        # store, including records written through the other worker.
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            for i in range(20):
                handle = f"88.118.8/W{i}"
                async with session.put(
                    served.api(handle), json=BODY, headers={**ENT8_ADMIN, **JSON}
                ) as r:
                    assert r.status == 201
                for _ in range(3):
                    async with session.get(served.api(handle)) as r:
                        assert r.status == 200
    # Stopping the parent stops every worker.
    assert all(_gone(pid) for pid in workers)


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except FileNotFoundError:
        return True


def test_listening_line_is_one_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers share their parent's stdout: each line must reach it in a single write,
    or two workers announcing at once (``print`` under PYTHONUNBUFFERED writes the newline
    separately) merge into one unreadable line."""
    writes: list[tuple[int, bytes]] = []
    monkeypatch.setattr(os, "write", lambda fd, data: writes.append((fd, data)))
    server.announce("idnode listening on http://127.0.0.1:8000")
    assert writes == [(sys.stdout.fileno(), b"idnode listening on http://127.0.0.1:8000\n")]


def test_settled_heap_is_frozen_and_collected_less_often() -> None:
    """What start-up leaves lives as long as the process: frozen out of the collector's
    walks, and serving's own collections come at the serving thresholds, not CPython's."""
    before = gc.get_threshold()
    try:
        server.settle_heap()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == server.SERVING_GC_THRESHOLDS
        assert server.SERVING_GC_THRESHOLDS[0] > before[0]
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def datagram_port() -> int:
    """A port free for UDP and TCP alike (the native listener binds both)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port: int = udp.getsockname()[1]
            with socket.socket() as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port


async def worker_figures(url: str) -> dict[str, float]:
    """Each worker's native resolutions, by its start time: new connections until /metrics
    came from two processes (the kernel spreads them)."""
    seen: dict[str, float] = {}
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(200):
            async with session.get(f"{url}/metrics") as r:
                text = await r.text()
            started = re.search(r"^idnode_process_start_time_seconds (\S+)$", text, re.M)
            count = re.search(
                r'^idnode_requests_total\{transport="native",op="resolve",code="1"\} (\d+)$',
                text,
                re.M,
            )
            assert started
            seen[started.group(1)] = float(count.group(1)) if count else 0.0
            if len(seen) == 2:
                break
    return seen


async def test_two_workers_both_answer_native_requests_on_one_port(tmp_path: Path) -> None:
    data = tmp_path / "node"
    await init_node(data)
    port = datagram_port()
    async with serving(
        data, "--workers", "2", "--native", f"127.0.0.1:{port}", http=f"127.0.0.1:{free_port()}"
    ) as served:
        assert served.proc.stdout is not None
        lines = [await asyncio.wait_for(served.proc.stdout.readline(), 20) for _ in range(5)]
        assert sum(f"hdl-udp://127.0.0.1:{port}" in line.decode() for line in lines) == 2
        async with (
            aiohttp.ClientSession() as session,
            session.put(served.api("88.118.8/N"), json=BODY, headers={**ENT8_ADMIN, **JSON}) as r,
        ):
            assert r.status == 201
        # Each request from its own socket: SO_REUSEPORT picks a worker by the source port.
        sent = 40
        for _ in range(sent):
            reply = await native_client.resolve("127.0.0.1", port, "88.118.8/N")
            assert reply.header.response_code == 1
        figures = await worker_figures(served.url)
        assert len(figures) == 2 and sum(figures.values()) == sent
        assert all(n > 0 for n in figures.values()), figures  # both answered
