"""``idnode serve`` with every transport: HTTP, the native Handle protocol and DNS started by
the serving shell over one node, each answering the same record from the same core."""

from __future__ import annotations

import re
from pathlib import Path

import dns.asyncquery
import dns.message
import dns.rcode
import dns.rdatatype

from resolver.config import ConfigError, load, native_address
from resolver.dns.names import NameMap, zone_name
from resolver.native import client
from resolver.native.messages import ResolutionResponse
from tests.conftest import ENT8, init_node
from tests.procs import Served, cli, serving

ZONE = "id.test."
LINE = re.compile(r"^idnode listening on ([a-z-]+)://(\S+):(\d+)$")


async def _lines(served: Served, count: int) -> dict[str, tuple[str, int]]:
    """The announce lines after the HTTP one: scheme -> (host, port)."""
    assert served.proc.stdout is not None
    found = {}
    for _ in range(count):
        m = LINE.match((await served.proc.stdout.readline()).decode().strip())
        assert m, "an announce line per listener address"
        found[m.group(1)] = (m.group(2), int(m.group(3)))
    return found


async def test_serve_starts_native_and_dns_over_the_same_node(tmp_path: Path) -> None:
    data = tmp_path / "node"
    await init_node(data)
    handle = f"{ENT8}/ALL-TRANSPORTS"
    done = cli("put", handle, "--data", data, "--value", "URL=https://example.com/all")
    assert done.returncode == 0, done.stderr
    extra = ("--native", "127.0.0.1:0", "--dns", "127.0.0.1:0", "--dns-zone", ZONE)
    async with serving(data, *extra) as served:
        lines = await _lines(served, 4)
        assert set(lines) == {"hdl-udp", "hdl-tcp", "dns-udp", "dns-tcp"}
        host, port = lines["hdl-udp"]
        assert lines["hdl-tcp"] == (host, port)  # one port for both, as the reference

        for tcp in (False, True):
            reply = await client.resolve(host, port, handle, tcp=tcp)
            assert isinstance(reply.body, ResolutionResponse)
            urls = [v.data for v in reply.body.values if v.type == "URL"]
            assert urls == [b"https://example.com/all"]

        dns_host, dns_port = lines["dns-udp"]
        name = NameMap(zone_name(ZONE)).to_name(handle)
        query = dns.message.make_query(name, dns.rdatatype.URI)
        answer = await dns.asyncquery.udp(query, dns_host, port=dns_port, timeout=5)
        assert answer.rcode() == dns.rcode.NOERROR
        targets = [r.target for rrset in answer.answer for r in rrset]
        assert targets == [b"https://example.com/all"]


def test_native_address_defaults_to_the_handle_port(tmp_path: Path) -> None:
    assert native_address("127.0.0.1") == "127.0.0.1:2641"
    assert native_address("0.0.0.0:2642") == "0.0.0.0:2642"
    assert native_address("[::1]") == "[::1]:2641"


async def test_bad_transport_addresses_are_configuration_errors(tmp_path: Path) -> None:
    data = tmp_path / "node"
    await init_node(data)
    for key, bad in (("dns", "nowhere"), ("native", "host:99999"), ("dns_zone", ".")):
        try:
            load(data, env={f"IDNODE_{key.upper()}": bad})
        except ConfigError as exc:
            assert key in str(exc) or bad in str(exc)
        else:
            raise AssertionError(f"{key}={bad!r} was accepted")
    done = cli("serve", "--data", data, "--dns", "nowhere")
    assert done.returncode == 2
    assert "HOST:PORT" in done.stderr and "Traceback" not in done.stderr
