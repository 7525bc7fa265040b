"""The admin console, served under ``/admin/`` by the node's HTTP app: server-rendered pages
for the node admin (enterprise prefixes, the top-level link, statistics) and enterprise
admins (their identifiers, imports, signatures), with no build step and no script but the
import page's progress poller.

Invariants: the console authenticates as HTTP Basic does (same authenticator, same
throttle) and then holds only a random session id; every change is a POST carrying the
session's CSRF token; and every read or write is a call of the registry, listings or
resolver that the HTTP API makes, with the signed-in principal — the console holds no rule
of its own about who may do what.
"""
