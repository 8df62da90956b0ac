"""`git aipass triggers ...` and `git aipass daemon ...`: rules on events, schedules, sweeps."""

from __future__ import annotations

import subprocess
from dataclasses import asdict
from pathlib import Path

import typer

from aipass_git.cli.app import commands, group
from aipass_git.cli.output import emit_json, table
from aipass_git.core import program
from aipass_git.core.errors import RefusedError
from aipass_git.core.repo import discover
from aipass_git.core.text import for_terminal
from aipass_git.triggers import daemon as daemon_mod, engine, rules as rules_mod

app = commands()

triggers_app = group("triggers", "Rules in .aipass/triggers.yaml: what fires on which event or schedule.")
app.add_typer(triggers_app, name="triggers")
daemon_app = group("daemon", "One long-lived process per repository that fires rules and schedules as events happen.")
app.add_typer(daemon_app, name="daemon")

JSON = typer.Option(False, "--json", help="Print JSON for scripts and agents.")


@triggers_app.command("check")
def check(as_json: bool = JSON) -> None:
    """Validate .aipass/triggers.yaml and list its rules (exit 2, naming the line, when it is wrong)."""
    triggers = rules_mod.load(discover())
    rows = [{"name": r.name, "on": r.on, "when": r.when, "schedule": r.cron or (f"every {r.every} s" if r.every else None),
             "do": [next(k for k in ("dispatch", "mail", "plan", "run") if k in a) for a in r.do],
             "clone": r.clone, "limit": r.limit, "breaker": r.breaker} for r in triggers.rules]
    sweeps = {"inbox_unread_hours": triggers.inbox_hours, "inbox_skip": sorted(triggers.inbox_skip),
              "stale_dispatch_hours": triggers.stale_hours}
    if as_json:
        emit_json({"v": 1, "rules": rows, "sweeps": sweeps})
        return
    if not rows and triggers.inbox_hours is None and triggers.stale_hours is None:
        typer.echo(f"no rules ({rules_mod.FILE} is absent or empty); see: git aipass help triggers")
        return
    typer.echo(table(["RULE", "ON", "WHEN", "DO"],
                     [(for_terminal(r["name"]), r["on"] + (f" ({r['schedule']})" if r["schedule"] else ""),
                       ", ".join(f"{k}={v}" for k, v in r["when"].items()) or "-", ", ".join(r["do"])) for r in rows]))
    if triggers.inbox_hours is not None:
        typer.echo(f"inbox sweep: wake agents whose mail waits unread over {triggers.inbox_hours} h")
    if triggers.stale_hours is not None:
        typer.echo(f"stale-dispatch sweep: tell senders of dispatches waiting over {triggers.stale_hours} h")


@triggers_app.command("sweep")
def sweep(quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing (hooks and the supervisor run it so)."),
          as_json: bool = JSON) -> None:
    """Fire what happened since the last sweep, the schedules that are due, and the built-in sweeps.

    The supervisor, the merge queue, mail and the hooks run it when rules exist and no
    daemon runs; run it by hand to catch up."""
    fired = engine.sweep(discover())
    if as_json:
        emit_json({"v": 1, "fired": [asdict(f) for f in fired]})
    elif not quiet:
        for f in fired:
            what = f"held back: {f.skipped}" if f.skipped else "; ".join(
                f"{a['action']} {'ok' if a['ok'] else 'failed'} ({a['detail']})" for a in f.actions)
            typer.echo(f"{for_terminal(f.rule)} on {f.event}: {for_terminal(what)}")
        if not fired:
            typer.echo("nothing fired")


@daemon_app.command("run")
def run(poll: float = typer.Option(daemon_mod.POLL, "--poll", min=0.05, help="Seconds between looks for changes."),
        tick: float = typer.Option(daemon_mod.TICK, "--tick", min=1.0, help="Seconds between sweeps when nothing changed.")
        ) -> None:
    """Run the daemon in the foreground until stopped (SIGTERM, Ctrl-C or `daemon stop`)."""
    raise typer.Exit(daemon_mod.run(discover(), poll=poll, tick=tick, say=typer.echo))


@daemon_app.command("status")
def status(as_json: bool = JSON) -> None:
    """Whether the daemon runs (pid, since), whether a warm process listens, and the schedules' last firings."""
    found = daemon_mod.status(discover())
    if as_json:
        emit_json({"v": 1, **found})
        return
    if found["running"]:
        typer.echo(f"daemon: running, pid {found['pid']} since {found['since']}")
    else:
        typer.echo("daemon: not running (start it: git aipass daemon run, or install it: git aipass daemon install)")
    typer.echo("warm process: " + ("listening: commands go to it" if found["warm"] else
                                   "none (the next command starts one; AIPASS_NO_WARM=1 keeps every command in its own process)"))
    for name, last in sorted(found["schedules"].items()):
        typer.echo(f"schedule {for_terminal(name)}: last fired {last}")
    for name in sorted(found["tripped"]):
        typer.echo(f"rule {for_terminal(name)}: breaker open")


@daemon_app.command("stop")
def stop() -> None:
    """Stop the running daemon (it finishes the sweep in hand)."""
    found = daemon_mod.stop(discover())
    typer.echo(f"stopped the daemon (pid {found['pid']})" if found else "no daemon runs")


@daemon_app.command("install")
def install(
    cron: bool = typer.Option(False, "--cron", help="A crontab line instead of a systemd user unit."),
    apply: bool = typer.Option(False, "--apply", help="Install it (else it is only printed)."),
) -> None:
    """Print (or with --apply, install) what keeps the daemon running: a systemd user unit or a crontab line."""
    repo = discover()
    command = program.argv()
    if cron:
        line = daemon_mod.cron_line(repo, command)
        if not apply:
            typer.echo(line, nl=False)
            return
        current = subprocess.run(["crontab", "-l"], capture_output=True, text=True)
        existing = current.stdout if current.returncode == 0 else ""
        if line.splitlines()[0] in existing:
            typer.echo("the crontab already starts it")
            return
        done = subprocess.run(["crontab", "-"], input=existing + line, capture_output=True, text=True)
        if done.returncode != 0:
            raise RefusedError(f"crontab refused the line: {done.stderr.strip()}", "add it by hand: crontab -e")
        typer.echo("added to the crontab")
        return
    name, text = daemon_mod.unit(repo, command)
    folder = Path.home() / ".config" / "systemd" / "user"
    if not apply:
        typer.echo(f"# {folder / name}\n{text}", nl=False)
        typer.echo(f"# then: systemctl --user daemon-reload && systemctl --user enable --now {name}")
        return
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    enabled = subprocess.run(["systemctl", "--user", "enable", "--now", name], capture_output=True, text=True)
    typer.echo(f"wrote {folder / name}" + ("; enabled and started" if enabled.returncode == 0 else
                                             f"; systemctl said: {enabled.stderr.strip() or 'nothing'} "
                                             f"(start it by hand: systemctl --user enable --now {name})"))
