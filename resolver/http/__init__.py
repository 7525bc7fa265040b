"""The HTTP transport: the Handle JSON API, reverse lookup and proxy-style resolution."""
