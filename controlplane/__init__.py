"""Yunguan's control plane: the core vocabulary, topology, settings, database and CLI."""
