"""Stores: the registry's durable source of truth, behind one async interface."""
