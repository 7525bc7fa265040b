"""One node's resources — store, sealing key, registry, resolver, forwarding — opened and
closed in one place (the serving shell, :mod:`resolver.shell`, or a CLI command), never at
import time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from registry.auth import FailureThrottle
from registry.cache.coherence import HostCache
from registry.cache.generations import GenerationTable
from registry.cache.records import RecordCache
from registry.cache.redis_tier import RedisConfigError, RedisTier
from registry.enterprises import Enterprises
from registry.keyring import CERT_OFFSET, ROOT_INDEX, Keyring
from registry.listing import Listings
from registry.model.identifiers import handle_key
from registry.secrets import KEY_FILE as SEALING_KEY
from registry.secrets import Sealer
from registry.service import Registry
from registry.sessions import Sessions
from registry.signer import RecordSigner
from registry.signing.keys import KeyFileError
from registry.store.base import SharedStore, Store, StoreDamaged
from registry.store.factory import StoreConfigError, check_location, open_store
from registry.templates import Templates
from resolver.config import Config, ConfigError
from resolver.core import Resolver
from resolver.forward.link import Forwarding
from resolver.metrics import Telemetry, replica_lines
from resolver.timedstore import timed

if TYPE_CHECKING:
    from resolver.tracing import Tracing

# Figures for /metrics from parts of the process the node does not know of (the sync agent
# adds its link to the top-level): lines in the Prometheus text format.
MetricsSource = Callable[[], Awaitable[Sequence[str]]]


@dataclass
class Node:
    config: Config
    store: Store
    registry: Registry
    resolver: Resolver
    listings: Listings
    throttle: FailureThrottle
    cache: RecordCache
    keyring: Keyring
    forwarding: Forwarding
    metrics: list[MetricsSource] = field(default_factory=list)
    telemetry: Telemetry = field(default_factory=Telemetry)  # requests and store latency
    tracing: Tracing | None = None  # None: not traced, and resolver.tracing never imported
    sessions: Sessions = field(default_factory=Sessions)  # Handle public-key logins (HTTP)
    enterprises: Enterprises = field(init=False)  # the enterprise prefix lifecycle
    templates: Templates = field(init=False)  # metadata templates

    def __post_init__(self) -> None:
        self.enterprises = Enterprises(self.registry)
        self.templates = Templates(self.registry)

    @classmethod
    async def open(
        cls,
        config: Config,
        *,
        create_keys: bool = False,
        serving: bool = True,
        tracing: Tracing | None = None,
    ) -> Node:
        """The node of ``config``. Its keys must be there unless ``create_keys`` (``idnode
        init`` and ``idnode demo``): new ones in place of lost ones would lock every admin
        out (their secrets are sealed under ``secrets.key``) and break every signature (made
        with ``keys/``). They are checked before anything is opened: a refusal writes nothing.

        On a store several hosts share, a ``serving`` process keeps its cache in step with
        the other hosts' writes (or suspends it); any other (a CLI command) never caches.
        A serving process traces its requests when ``config.otel_endpoint`` is set, or into
        ``tracing`` if given.
        Either way its own writes return once every other host has them."""
        passphrase = config.key_passphrase.encode() if config.key_passphrase else None
        keyring = Keyring(config.data_dir, config.prefixes, passphrase)
        try:
            if create_keys:
                sealer = Sealer.load_or_create(config.data_dir)
                keyring.create(config.signing_alg)
            else:
                require_keys(config)
                sealer = _existing_sealer(config.data_dir)
            signer = RecordSigner(keyring, config.signature_validity)
        except KeyFileError as exc:
            raise ConfigError(f"signing key: {exc}") from None
        try:
            store = await open_store(config.store_location, replicas=config.store_replicas)
        except StoreConfigError as exc:
            raise ConfigError(f"store: {exc}") from None
        except StoreDamaged as exc:  # what to do is the operator's call: say what is wrong
            raise ConfigError(str(exc)) from None
        telemetry = Telemetry()
        if tracing is None and serving and config.otel_endpoint:
            tracing = await _exporting(config, store)
        if tracing is None:
            store = timed(store, telemetry.store)  # whatever the backend: timed alike
        else:
            from resolver.tracing import traced

            store = traced(store, telemetry.store, tracing, check_location(config.store_location))
        gens = GenerationTable.open(config.data_dir)
        cache = RecordCache(
            store,
            gens,
            max_entries=config.cache_entries,
            max_bytes=config.cache_bytes,
            max_ttl=config.cache_max_ttl,
            negative_ttl=config.cache_negative_ttl,
        )
        shared = isinstance(store, SharedStore)
        if config.redis_url:
            # A shared store's hosts keep apart in Redis, even with copied data directories.
            namespace = format(gens.host if shared else gens.epoch, "016x")
            try:
                cache.redis = RedisTier(
                    config.redis_url, namespace, config.redis_timeout, cache.stats
                )
            except RedisConfigError as exc:
                await cache.close()
                await store.close()
                raise ConfigError(f"redis: {exc}") from None
        registry = Registry(
            store,
            sealer,
            config.prefixes,
            cache,
            signer=signer,
            stats_seconds=config.stats_interval,
        )
        resolver = Resolver(registry, config.max_filters)
        throttle = FailureThrottle()
        throttle.on_failure = registry.login_failed  # each failure in the audit log
        node = cls(
            config,
            store,
            registry,
            resolver,
            Listings(registry),
            throttle,
            cache,
            keyring,
            Forwarding(resolver, config, () if tracing is None else (tracing.client_trace(),)),
            telemetry=telemetry,
            tracing=tracing,
        )
        try:
            if isinstance(store, SharedStore):
                await _share(store, node, serving)
            await node.ensure_keys_published()
        except StoreDamaged as exc:  # a damaged page, found by the first read
            await node.close()
            raise ConfigError(str(exc)) from None
        except BaseException:
            await node.close()
            raise
        return node

    async def ensure_keys_published(self) -> None:
        """The node's prefix handle must publish the root and every key whose signatures may
        still be out there (current, retired, rotating-to). No-op before the handle exists."""
        record = await self.store.get(handle_key(self.keyring.handle))
        if record is None:
            return
        state = self.keyring.load_state()
        numbers = sorted(
            {state.current, *(r["n"] for r in state.retired)}
            | ({int(state.rotation["to"])} if state.rotation else set())
        )
        wanted = {ROOT_INDEX, ROOT_INDEX + CERT_OFFSET}
        wanted |= {ROOT_INDEX + n for n in numbers} | {
            ROOT_INDEX + CERT_OFFSET + n for n in numbers
        }
        have = {v.index for v in record.values if Keyring.is_key_value(v)}
        registered = self.keyring.registered_root_cert()
        root_cert = next((v for v in record.values if v.index == ROOT_INDEX + CERT_OFFSET), None)
        stale_root = registered is not None and (
            root_cert is None or root_cert.data != registered.encode("utf-8")
        )
        if have != wanted or stale_root:
            now = int(time.time())
            await self.registry.publish_keys(self.keyring.published_values(now, numbers))

    async def close(self) -> None:
        await self.forwarding.close()
        await self.store.close()  # first: a shared store's news must not reach a closed cache
        await self.cache.close()
        if self.tracing is not None:  # the last spans go out (the SDK blocks: a thread)
            await asyncio.to_thread(self.tracing.shutdown)


async def _exporting(config: Config, store: Store) -> Tracing:
    """The tracing ``otel_endpoint`` asks for; a ConfigError (the store closed) when the
    ``otel`` extra is not installed."""
    try:
        from resolver.tracing import Tracing, exporting
    except ImportError as exc:
        await store.close()
        raise ConfigError(
            f"otel_endpoint is set ({config.otel_endpoint}) but OpenTelemetry is not "
            f"installed ({exc.name} missing): pip install 'idnode[otel]', or unset it"
        ) from None
    return Tracing(exporting(config))


async def _share(store: SharedStore, node: Node, serving: bool) -> None:
    """Join the hosts of ``store``: a serving process as a member (see
    :mod:`registry.store.postgres.channel`), reporting its state in /metrics."""
    cache = node.cache
    cache.coherent = False  # until the process is in step with the others (if ever)
    # The generation table holds the host's write position: its writes raise it either way.
    gens = cache.gens
    if not serving:  # it would not hear other hosts' writes: it never caches
        await store.share(gens.host, node.config.cache_lease, None, gens)
        return
    await store.share(gens.host, node.config.cache_lease, HostCache(cache), gens)

    async def coherent() -> list[str]:
        metric = "idnode_cache_coherent"
        return [f"# TYPE {metric} gauge", f"{metric} {int(cache.coherent)}"]

    node.metrics.append(coherent)
    if node.config.store_replicas:

        async def replicas() -> list[str]:
            return replica_lines(store.replicas())

        node.metrics.append(replicas)


def require_keys(config: Config) -> None:
    """Refuse, naming the file, a data directory whose sealing key or signing keys are
    missing (see :meth:`Node.open`)."""
    sealing = config.data_dir / SEALING_KEY
    if not sealing.exists():
        raise _missing(sealing, "the key that seals the admins' secrets")
    missing = Keyring(config.data_dir, config.prefixes).missing()
    if missing is not None:
        raise _missing(missing, "the node's signing keys")


def _missing(path: Path, what: str) -> ConfigError:
    return ConfigError(
        f"{path} is missing ({what}): restore it from a backup of the data directory; "
        "only 'idnode init' creates keys"
    )


def _existing_sealer(data_dir: Path) -> Sealer:
    try:
        return Sealer.load(data_dir)
    except ValueError as exc:  # not a key: say which file, not just why
        raise ConfigError(f"{data_dir / SEALING_KEY}: {exc}") from None
