"""Pull requests between agents' desks and the base branch, and the merge queue."""
