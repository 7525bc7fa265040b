"""``idnode dns-name``: print the DNS name of a handle, or the handle of a DNS name."""

from __future__ import annotations

import argparse

from resolver.dns import DEFAULT_ZONE


def cmd_dns_name(args: argparse.Namespace) -> int:
    # dnspython is imported here: importing the command line must stay cheap.
    import dns.exception
    import dns.name

    from resolver.config import ConfigError
    from resolver.dns.names import NameMap, zone_name

    names = NameMap(zone_name(args.zone))
    if not args.reverse:
        print(names.to_name(args.handle).to_text())
        return 0
    try:
        name = dns.name.from_text(args.handle)
    except (dns.exception.DNSException, UnicodeError) as exc:
        raise ConfigError(f"{args.handle!r} is not a DNS name: {exc}") from None
    print(names.to_handle(name))
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``dns-name`` to the ``idnode`` subcommands."""
    p = sub.add_parser(
        "dns-name",
        help="map a handle to its DNS name, or back",
        description="Print the DNS name HANDLE has in the zone (README 'DNS names': prefix "
        "labels reversed, '_' before the suffix, base32hex for what a label cannot hold), "
        "or with --reverse the handle a DNS name stands for (ASCII letters upper-cased, "
        "the form handles are matched in).",
    )
    p.add_argument("handle", metavar="HANDLE|NAME", help="a handle, or with --reverse a DNS name")
    p.add_argument("--reverse", action="store_true", help="map the DNS name NAME to its handle")
    p.add_argument("--zone", default=DEFAULT_ZONE, help=f"the DNS zone (default {DEFAULT_ZONE})")
    p.set_defaults(fn=cmd_dns_name)
