"""Agents' memory: bounded working memory, archives in git, an index that finds by meaning."""
