"""The registry: identifier and value model, stores, authorisation and the write service."""
