"""The record cache: an in-process tier in front of Redis in front of the store.

Exactness comes from :mod:`registry.cache.generations`: every cached entry carries the
generation of its key's slot as it was *before* the store was read, and is served only while
that generation is unchanged. Writers bump the slot after commit and before acknowledging, so
no process can serve a record older than an acknowledged write — whichever tier holds it,
and whatever happened to Redis meanwhile.
"""
