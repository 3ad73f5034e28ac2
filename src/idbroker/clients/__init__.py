"""Registered client applications: metadata validation and the registry service."""
