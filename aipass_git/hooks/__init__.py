"""Git hook entry points (`git aipass hook NAME`), behind the shell shims in hooks/."""
