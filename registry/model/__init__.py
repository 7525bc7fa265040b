"""Pure model: identifiers, values, HS_ADMIN, codecs. No I/O lives here."""
