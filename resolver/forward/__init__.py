"""Cross-node forwarding, part of the resolution path: a handle of a prefix this node is not
home for is resolved at the node that is (recursion), or the client is referred there.

- :mod:`.base`: what the core depends on — the :class:`~.base.Forwarder` protocol and its
  answers, the hop headers, the :class:`~.base.Upstream` (where the top-level is, the trust
  root) that configures forwarding;
- :mod:`.remote`: the forwarder — routing through the top-level's prefix records, forwarding,
  offline verification, the caches of routes and remote answers;
- :mod:`.peer`: the HTTP client that reads records from another node's Handle JSON API;
- :mod:`.ttl`: the bounded, expiring map those caches use;
- :mod:`.link`: the node's switch, which sync/ sets from the node's registration.
"""
