"""The node's configuration: one typed object built once from the data directory's file,
``IDNODE_*`` environment variables and command-line flags (flags win over the environment,
which wins over the file)."""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from registry.model.filters import MAX_FILTERS
from registry.store.factory import (
    SQLITE_SCHEME,
    URL,
    StoreConfigError,
    check_location,
    check_replicas,
    redact_location,
)

CONFIG_FILE = "idnode.toml"
STORE_FILE = "registry.sqlite3"
PLAIN_CREDENTIALS = ("loopback", "never", "any")
# Schemes whose URLs a browser runs as script or shows as a page of their own: never redirected to.
SCRIPT_SCHEMES = ("javascript", "data", "vbscript")
SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
SIGNING_ALGS = ("EdDSA", "ES256", "RS256")


class ConfigError(Exception):
    """The configuration is unusable; the message says what to fix."""


NATIVE_PORT = 2641  # the Handle protocol's port
DEFAULT_DNS_ZONE = "id.example."  # resolver.dns.DEFAULT_ZONE, without importing dnspython


def native_address(text: str) -> str:
    """``HOST:PORT``, or ``HOST`` alone for the Handle protocol's own port 2641."""
    try:
        split_hostport(text)
    except ConfigError:
        host = text.strip()
        bracketed = host.startswith("[") and host.endswith("]")  # an IPv6 address alone
        if not host or (":" in host and not bracketed):
            raise
        text = f"{host}:{NATIVE_PORT}"
        split_hostport(text)
    return text


@dataclass(frozen=True)
class Config:
    data_dir: Path
    prefixes: tuple[str, ...] = ()
    name: str = "idnode"
    http: str = "127.0.0.1:8000"
    native: str = ""  # native Handle protocol, UDP and TCP (HOST[:PORT], port 2641); "": off
    dns: str = ""  # DNS front end, UDP and TCP (HOST:PORT); "": off
    dns_zone: str = DEFAULT_DNS_ZONE  # the zone identifiers are named under
    workers: int = 1
    tls_cert: Path | None = None
    tls_key: Path | None = None
    plain_credentials: str = "loopback"  # where credentials are accepted without TLS
    max_body: int = 262_144  # bytes; the Handle protocol's message limit
    header_timeout: float = 10.0  # seconds to send a request's line and headers
    body_timeout: float = 30.0  # seconds to send a request's body
    keepalive_timeout: float = 75.0  # seconds an idle connection is kept between requests
    max_connections: int = 0  # open connections per worker (0: from the file limit)
    redirect_schemes: tuple[str, ...] = ("http", "https")  # URL schemes the proxy redirects to
    log_level: str = "info"
    log_format: str = "text"  # "json": one JSON object per line
    access_log: bool = False  # a line per request answered (see access_log_sample)
    access_log_sample: float = 1.0  # the fraction of requests the access log shows
    ready_timeout: float = 1.0  # seconds each readiness check may take
    ready_max_backlog: int = 1000  # outbox items not yet delivered that still count as ready
    ready_requires_redis: bool = True  # Redis down makes the node not ready (see README)
    otel_endpoint: str | None = None  # OTLP/HTTP traces URL: trace requests (the otel extra)
    store: str | None = None  # None: the SQLite file in the data directory (STORE_FILE)
    store_replicas: tuple[str, ...] = ()  # PostgreSQL read replicas (postgresql:// URLs)
    redis_url: str | None = None  # None: in-process cache only (the embedded default)
    redis_timeout: float = 0.25  # seconds any one Redis call may take
    cache_entries: int = 100_000  # in-process tier bound, entries (0 turns it off)
    cache_bytes: int = 64 << 20  # in-process tier bound, bytes
    cache_max_ttl: float = 3600.0  # cap on how long a record stays cached
    cache_negative_ttl: float = 5.0  # how long "not found" stays cached
    cache_lease: float = 4.0  # shared store: seconds a host caches without hearing the others
    signing_alg: str = "EdDSA"  # for keys made by init/rotate: EdDSA, ES256 or RS256
    signature_validity: int = 400 * 86400  # seconds a record signature stays valid
    key_passphrase: str | None = None  # encrypts the key files (prefer the environment)
    public_url: str | None = None  # the URL others reach this node at (None: from ``http``)
    recursion: bool = True  # resolve other nodes' prefixes for clients (else refer them)
    max_hops: int = 4  # how many times a query may be forwarded between nodes
    max_filters: int = MAX_FILTERS  # type and index filters one resolution may name
    stats_interval: int = 300  # seconds per statistics interval reported to the top-level
    heartbeat_interval: float = 60.0  # seconds between heartbeats to the top-level
    sync_poll: float = 1.0  # seconds between outbox checks (local writes wake it at once)
    sync_retry_max: float = 60.0  # longest wait between retries when the top-level fails
    audit_retention_days: int = 400  # audit log entries older than this are pruned
    console_idle: float = 1800.0  # seconds a console session lives without a request
    console_lifetime: float = 43200.0  # seconds a console session lives after sign-in
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def store_path(self) -> Path:
        """The embedded store's file (the default store)."""
        return self.data_dir / STORE_FILE

    @property
    def store_location(self) -> str:
        """What the store factory opens: ``store`` (a relative SQLite path is taken from the
        data directory), else the SQLite file in the data directory."""
        if not self.store:
            return str(self.store_path)
        return store_location(self.store, self.data_dir)

    @property
    def base_url(self) -> str:
        """Where this node's HTTP API is reached, as published to the top-level."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host, port = split_hostport(self.http)
        host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        host = f"[{host}]" if ":" in host else host
        scheme = "https" if self.tls_cert else "http"
        return f"{scheme}://{host}:{port}"

    @property
    def http_host(self) -> str:
        return split_hostport(self.http)[0]

    @property
    def http_port(self) -> int:
        return split_hostport(self.http)[1]


def store_location(raw: str, data_dir: Path) -> str:
    """``raw`` with a relative SQLite path resolved against ``data_dir``."""
    if URL.match(raw):
        return raw
    sqlite = raw.startswith(SQLITE_SCHEME)
    path = Path(raw[len(SQLITE_SCHEME) :] if sqlite else raw)
    return (SQLITE_SCHEME if sqlite else "") + str(data_dir / path)


def _store(raw: Any) -> str | None:
    text = str(raw).strip()
    if not text:
        return None
    try:
        check_location(text)
    except StoreConfigError as exc:
        raise ConfigError(f"store: {exc}") from None
    return text


def split_hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


_KEYS = {f.name for f in fields(Config)} - {"data_dir", "extra"}


def _coerce(name: str, raw: Any) -> Any:
    try:
        if name == "prefixes":
            items = raw.split(",") if isinstance(raw, str) else list(raw)
            return tuple(p.strip() for p in items if p.strip())
        if name == "redirect_schemes":
            return _schemes(raw)
        if name in ("recursion", "access_log", "ready_requires_redis"):
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text not in ("true", "false", "on", "off", "yes", "no", "1", "0"):
                raise ConfigError(f"{name} must be true or false")
            return text in ("true", "on", "yes", "1")
        if name == "access_log_sample":
            fraction = float(raw)
            if not 0 < fraction <= 1:
                raise ConfigError("access_log_sample must be more than 0 and at most 1")
            return fraction
        if name == "public_url":
            text = str(raw).strip()
            if text and not text.startswith(("http://", "https://")):
                raise ConfigError("public_url must start with http:// or https://")
            return text or None
        if name in (
            "workers",
            "max_body",
            "max_hops",
            "max_filters",
            "stats_interval",
            "audit_retention_days",
        ):
            value = int(raw)
            if value < 1:
                raise ConfigError(f"{name} must be at least 1")
            return value
        if name in ("cache_entries", "cache_bytes", "max_connections", "ready_max_backlog"):
            value = int(raw)
            if value < 0:
                raise ConfigError(f"{name} must not be negative")
            return value
        if name in ("redis_timeout", "cache_max_ttl", "cache_negative_ttl"):
            number = float(raw)
            if not number >= 0:
                raise ConfigError(f"{name} must not be negative")
            return number
        if name == "cache_lease":
            number = float(raw)
            if not number >= 0.5:
                raise ConfigError("cache_lease must be at least 0.5 seconds")
            return number
        if name in (
            "heartbeat_interval",
            "sync_poll",
            "sync_retry_max",
            "header_timeout",
            "body_timeout",
            "keepalive_timeout",
            "ready_timeout",
            "console_idle",
            "console_lifetime",
        ):
            number = float(raw)
            if not number > 0:
                raise ConfigError(f"{name} must be positive")
            return number
        if name == "signing_alg" and raw not in SIGNING_ALGS:
            raise ConfigError(f"signing_alg must be one of {', '.join(SIGNING_ALGS)}")
        if name == "signature_validity":
            seconds = int(raw)
            if seconds < 3600:
                raise ConfigError("signature_validity must be at least 3600 seconds")
            return seconds
        if name == "otel_endpoint":
            text = str(raw).strip()
            if text and not text.startswith(("http://", "https://")):
                raise ConfigError("otel_endpoint must be an http:// or https:// URL")
            return text or None
        if name == "key_passphrase":
            return str(raw) or None
        if name == "redis_url":
            return str(raw) or None
        if name == "store":
            return _store(raw)
        if name == "store_replicas":
            items = raw.split(",") if isinstance(raw, str) else list(raw)
            return tuple(str(r).strip() for r in items if str(r).strip())
        if name in ("tls_cert", "tls_key"):
            return Path(raw) if raw else None
        if name == "plain_credentials" and raw not in PLAIN_CREDENTIALS:
            raise ConfigError(f"plain_credentials must be one of {', '.join(PLAIN_CREDENTIALS)}")
        if name in ("http", "dns") and raw:
            split_hostport(str(raw))
        if name == "native" and raw:
            return native_address(str(raw))
        if name == "dns_zone" and not str(raw).strip(". "):
            raise ConfigError("dns_zone must name a zone, e.g. id.example.")
        if name == "log_level" and str(raw).lower() not in LOG_LEVELS:
            raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}")
        if name == "log_format" and str(raw).lower() not in LOG_FORMATS:
            raise ConfigError(f"log_format must be one of {', '.join(LOG_FORMATS)}")
        if name == "log_format":
            return str(raw).lower()
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad value for {name}: {raw!r} ({exc})") from None


def _schemes(raw: Any) -> tuple[str, ...]:
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    schemes = tuple(str(s).strip().lower() for s in items if str(s).strip())
    for scheme in schemes:
        if not SCHEME.fullmatch(scheme):
            raise ConfigError(f"redirect_schemes: {scheme!r} is not a URL scheme")
        if scheme in SCRIPT_SCHEMES:
            raise ConfigError(f"redirect_schemes: {scheme}: URLs are never redirected to")
    return schemes


def load(
    data_dir: Path, flags: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Build the configuration for the node in ``data_dir``."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    path = data_dir / CONFIG_FILE
    if not path.exists():
        raise ConfigError(f"{path} not found: run 'idnode init --data {data_dir}' first")
    try:
        with path.open("rb") as f:
            from_file = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    extra = {}
    for key, raw in from_file.items():
        if key in _KEYS:
            values[key] = _coerce(key, raw)
        else:
            extra[key] = raw
    for key in _KEYS:
        raw = env.get(f"IDNODE_{key.upper()}")
        if raw is not None and raw != "":
            values[key] = _coerce(key, raw)
    for key, raw in (flags or {}).items():
        if raw is not None:
            values[key] = _coerce(key, raw)
    if "otel_endpoint" not in values and (endpoint := _otel_endpoint(env)):
        values["otel_endpoint"] = endpoint
    if bool(values.get("tls_cert")) != bool(values.get("tls_key")):
        raise ConfigError("--tls-cert and --tls-key go together")
    if not values.get("prefixes"):
        raise ConfigError(f"{path} names no prefixes")
    if values.get("store_replicas"):
        try:
            check_replicas(values.get("store") or "", values["store_replicas"])
        except StoreConfigError as exc:
            raise ConfigError(f"store_replicas: {exc}") from None
    return Config(data_dir=data_dir, extra=extra, **values)


# Settings never recorded anywhere (the audit log's record of the configuration included).
SECRET_SETTINGS = ("key_passphrase",)


def recorded_settings(config: Config) -> dict[str, Any]:
    """The effective configuration as it may be written down (the audit log records it
    when it changes): secrets left out, passwords in locations masked."""
    out: dict[str, Any] = {}
    for f in fields(Config):
        if f.name in ("data_dir", "extra", *SECRET_SETTINGS):
            continue
        value = getattr(config, f.name)
        if f.name in ("store", "redis_url") and value:
            value = redact_location(value)
        out[f.name] = str(value) if isinstance(value, Path) else value
    out["store"] = redact_location(config.store_location)
    out["data_dir"] = str(config.data_dir)
    return out


def _otel_endpoint(env: Mapping[str, str]) -> str | None:
    """The traces URL OpenTelemetry's standard variables name (None: tracing not asked for,
    or turned off with ``OTEL_SDK_DISABLED``), as its OTLP/HTTP exporter reads them."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if traces := env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip():
        return traces
    if base := env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip():
        return base.rstrip("/") + "/v1/traces"
    return None


def write_initial(data_dir: Path, prefix: str, name: str, store: str | None = None) -> Path:
    """The config file ``idnode init`` writes (``store``: written as given; None leaves the
    default, the SQLite file in the data directory)."""
    path = data_dir / CONFIG_FILE
    store_line = (
        f"store = {json.dumps(store)}\n"
        if store
        else '# store = "postgresql://idnode@db.example:5432/idnode"\n'
    )
    path.write_text(
        "# idnode configuration. Environment variables IDNODE_<KEY> and flags override it.\n"
        f'name = "{name}"\n'
        f'prefixes = ["{prefix}"]\n'
        "# Where HTTP is served (HOST:PORT).\n"
        'http = "127.0.0.1:8000"\n'
        "workers = 1\n"
        '# Credentials over plain HTTP: "loopback" (default), "never" or "any".\n'
        'plain_credentials = "loopback"\n'
        "# Largest request body in bytes.\n"
        "max_body = 262144\n"
        '# tls_cert = "/path/to/cert.pem"\n'
        '# tls_key = "/path/to/key.pem"\n'
        "# The registry store (default: registry.sqlite3 here); passwords go in PGPASSWORD.\n"
        + store_line,
        encoding="utf-8",
    )
    return path
