"""Agents: passports, templates and the registry of who exists in a repository."""
