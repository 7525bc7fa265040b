"""The resolver: one resolution core and the transports that feed it."""

__version__ = "0.1.0"
