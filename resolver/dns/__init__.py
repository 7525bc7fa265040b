"""The DNS front end's pure half: identifier ↔ DNS name mapping (``names``) and the records
an answer becomes (``records``). dnspython does the wire format; nothing here does I/O."""

# The zone `idnode dns-name` maps into when none is given (RFC 2606's reserved .example):
# here, so the command line can show it without importing dnspython.
DEFAULT_ZONE = "id.example."
