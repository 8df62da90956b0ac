"""A live view of the team at work (`git aipass monitor`)."""
