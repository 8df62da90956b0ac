"""The built-in standards, one module per concept; `BUILTIN` lists them all."""

from aipass_git.audit.standards import aipass_files, branches, claims, hygiene, ownership, plans, python_code, refs, secrets

BUILTIN = [
    *aipass_files.STANDARDS,
    *ownership.STANDARDS,
    *secrets.STANDARDS,
    *hygiene.STANDARDS,
    *refs.STANDARDS,
    *plans.STANDARDS,
    *branches.STANDARDS,
    *claims.STANDARDS,
    *python_code.STANDARDS,
]
