"""Who may do what: every permission rule of aipass-git, in one place, for the command
line and the Python API alike. Each `require_*` refuses (exit 2) with what was asked,
by whom, and who may do it instead."""

from __future__ import annotations

from aipass_git.core.errors import RefusedError
from aipass_git.core.names import HUMAN


def require_may_act_as(speaker: str, target: str, orchestrator: str) -> None:
    """`--as @agent`: only the human and the orchestrator act for another agent."""
    if speaker not in (HUMAN, orchestrator):
        raise RefusedError(f"--as is refused for @{speaker}", "only the human and the orchestrator may act for another agent")
    if target == HUMAN:
        raise RefusedError("--as @human is not allowed", "the human speaks for themself: drop --as")


def require_may_write_memory(speaker: str, owner: str, orchestrator: str) -> None:
    """Agents record their own memory; the human and the orchestrator may write anyone's."""
    if owner != speaker and speaker not in (HUMAN, orchestrator):
        raise RefusedError(f"@{speaker} may not write @{owner}'s memory", "agents record their own memory")


def may_merge(who: str | None, orchestrator: str) -> bool:
    """Agents never merge their own work: only the orchestrator and the human merge."""
    return who in (HUMAN, orchestrator)


def require_may_merge(speaker: str, orchestrator: str) -> None:
    """`may_merge`, refused with who may instead."""
    if not may_merge(speaker, orchestrator):
        raise RefusedError(f"@{speaker} may not merge: agents never merge their own work",
                           f"open a PR (git aipass pr open); @{orchestrator} or the human merges it")


def require_may_close_pr(speaker: str, author: str, orchestrator: str) -> None:
    """A PR is closed by its author, the orchestrator or the human."""
    if speaker not in (author, HUMAN, orchestrator):
        raise RefusedError(f"@{speaker} may not close @{author}'s PR", "its author, the orchestrator or the human may")


def require_may_dispatch(speaker: str, agent: str) -> None:
    """An agent does not wake itself."""
    if speaker == agent:
        raise RefusedError(f"@{agent} cannot dispatch to itself",
                           "an agent does not wake itself; do the work in this session, or send mail instead")


def require_may_cancel(speaker: str, sender: str, dispatch_id: str, orchestrator: str) -> None:
    """A dispatch is cancelled by its sender, the human or the orchestrator."""
    if speaker not in (sender, HUMAN, orchestrator):
        raise RefusedError(f"@{speaker} may not cancel {dispatch_id}: it was sent by @{sender}",
                           f"ask @{sender}, the human or the orchestrator @{orchestrator}")


def require_may_manage_keys(speaker: str) -> None:
    """Keys are the authority to speak as someone: only the human makes or changes them."""
    if speaker != HUMAN:
        raise RefusedError(f"@{speaker} may not change signing keys", "the human runs `git aipass key ...`, outside any desk")


def may_sign_for(sender: str, signer: str | None, orchestrator: str) -> bool:
    """Whether an event by SIGNER (an agent name, HUMAN, or None for nobody known) may carry
    SENDER's name: its own, or, acting for an agent (--as), the human's or the orchestrator's."""
    if signer is None:
        return False
    if signer == sender:
        return True
    return sender != HUMAN and signer in (HUMAN, orchestrator)


def require_may_end_phase(speaker: str, owner: str, orchestrator: str, *, approve: bool = False) -> None:
    """A phase is approved by the human; marked done or failed by its owner, the human or
    the orchestrator."""
    if approve and speaker != HUMAN:
        raise RefusedError(f"@{speaker} may not approve a phase", "approval is the human's")
    if not approve and speaker not in (owner, HUMAN, orchestrator):
        raise RefusedError(f"@{speaker} may not end @{owner}'s phase", f"@{owner}, the human or @{orchestrator} may")


def require_may_retry_phase(speaker: str, plan_owner: str, orchestrator: str, plan_id: str) -> None:
    """A failed phase is run again by the human, the orchestrator or the plan's owner."""
    if speaker not in (HUMAN, orchestrator, plan_owner):
        raise RefusedError(f"@{speaker} may not retry a phase of plan {plan_id[:12]}",
                           f"the human, @{orchestrator} or the plan's owner @{plan_owner} may")


def require_may_end_plan(speaker: str, orchestrator: str, verb: str) -> None:
    """A plan is closed or cancelled (VERB) by the human or the orchestrator."""
    if speaker not in (HUMAN, orchestrator):
        raise RefusedError(f"@{speaker} may not {verb} a plan", "the human or the orchestrator may")


def may_force_claim(speaker: str, orchestrator: str) -> bool:
    """Whether SPEAKER may take over others' overlapping exclusive claims (`claim --force`)."""
    return speaker in (HUMAN, orchestrator)
