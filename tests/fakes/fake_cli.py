#!/usr/bin/env python3
"""A stand-in for claude, codex and gemini in tests.

It records its argv, cwd, standard input and AIPASS_*/GIT_* environment to
$FAKE_CLI_DIR/calls.jsonl, then acts per the next word of $FAKE_CLI_DIR/plan-<agent>
(the last word repeats):
  ok      print a JSON result and exit 0        reply   answer the dispatch, then ok
  commit  commit a file on the desk, then ok    crash   write to stderr, exit 3
  ratelimit  say "rate limit exceeded (429)", exit 1
  hang    print nothing and sleep
  stuck   print, then sleep for an hour         error   print {"is_error": true}, exit 0
  said    print a result with final words       turns   print claude's max-turns result
  stall   print one line, then sleep silently   apierror  claude's API error on stdout, exit 1
  tool-ok     start a tool process in its own session (it sleeps), then ok
  tool-stuck  start such a tool process, print, then sleep for an hour
  reply-stuck answer the dispatch, print, then sleep for an hour
  gated   print, then wait for the file $FAKE_CLI_DIR/release-<agent>, then ok
Pids of tool processes go to $FAKE_CLI_DIR/tools-<agent>, a stuck CLI's to stuck-<agent>.pid.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

root = Path(os.environ["FAKE_CLI_DIR"])
agent = os.environ.get("AIPASS_AGENT", "unknown")
plan_path = root / f"plan-{agent}"
words = plan_path.read_text().split() if plan_path.exists() else ["ok"]
mode = words[0]
if len(words) > 1:
    plan_path.write_text(" ".join(words[1:]))
stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
record = {
    "program": Path(sys.argv[0]).name, "argv": sys.argv[1:], "cwd": os.getcwd(), "mode": mode,
    "env": {k: v for k, v in os.environ.items() if k.startswith(("AIPASS_", "GIT_"))}, "pid": os.getpid(),
    "stdin": stdin, "start": time.time(),
}


def save() -> None:
    with open(root / "calls.jsonl", "a") as fh:
        fh.write(json.dumps(record) + "\n")


def finish(code: int, result: dict | None = None) -> None:
    record["end"] = time.time()
    save()
    if result is not None:
        print(json.dumps(result), flush=True)
    sys.exit(code)


def stay() -> None:
    record["end"] = None
    save()
    print(json.dumps({"type": "system", "subtype": "init"}), flush=True)
    with open(root / f"stuck-{agent}.pid", "w") as fh:
        fh.write(str(os.getpid()))
    time.sleep(3600)


def start_tool() -> None:
    # as Claude's Bash tool does: a session of its own, out of reach of a process-group kill
    tool = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"], start_new_session=True)
    with open(root / f"tools-{agent}", "a") as fh:
        fh.write(f"{tool.pid}\n")


def reply() -> None:
    subprocess.run(["git", "aipass", "reply", os.environ["AIPASS_DISPATCH"], "fake reply"], check=True)


OK = {"type": "result", "subtype": "success", "is_error": False, "result": "all done"}
if mode == "ok":
    finish(0, OK)
elif mode == "reply":
    reply()
    finish(0, OK)
elif mode == "commit":
    Path("fake-work.txt").write_text(f"work for {os.environ['AIPASS_DISPATCH']}\n")
    subprocess.run(["git", "add", "fake-work.txt"], check=True)
    subprocess.run(["git", "commit", "-qm", "fake work"], check=True)
    finish(0, OK)
elif mode == "leak":  # commit a credential past the hook, as a careless agent might
    Path("leaked.txt").write_text("aws_access_key_id = AKIA" + "ABCDEFGHIJKLMNOP\n")
    subprocess.run(["git", "add", "leaked.txt"], check=True)
    subprocess.run(["git", "commit", "-q", "--no-verify", "-m", "config"], check=True)
    finish(0, OK)
elif mode == "traceback":  # a tool of the agent's failed; the run itself ends well
    sys.stderr.write('Traceback (most recent call last):\n  File "/work/tool.py", line 12, in main\n    parse(data)\n'
                     f"ValueError: bad input '{os.environ['AIPASS_DISPATCH']}'\n"
                     "warning: disk almost full\nerror: harmless noise 42\n")
    finish(0, OK)
elif mode == "claim":  # claims what it is about to change, then ends
    subprocess.run(["git", "aipass", "claim", "src/**", "--reason", "working"], check=True)
    finish(0, OK)
elif mode == "pr":  # commit, then open a PR from the desk, as an agent finishing a build does
    Path(f"fake-work-{agent}.txt").write_text(f"work for {os.environ['AIPASS_DISPATCH']}\n")
    subprocess.run(["git", "add", f"fake-work-{agent}.txt"], check=True)
    subprocess.run(["git", "commit", "-qm", "fake work"], check=True)
    subprocess.run(["git", "aipass", "pr", "open"], check=True)
    finish(0, OK)
elif mode == "crash":
    sys.stderr.write("fatal: the fake crashed\n")
    finish(3)
elif mode == "ratelimit":
    sys.stderr.write("Error: rate limit exceeded (429)\n")
    finish(1)
elif mode == "apierror":
    finish(1, {"type": "result", "subtype": "success", "is_error": True,
               "result": 'API Error: 429 {"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}'})
elif mode == "error":
    finish(0, {"type": "result", "is_error": True, "result": "model refused"})
elif mode == "said":
    finish(0, {"type": "result", "subtype": "success", "is_error": False, "result": "I fixed the parser; tests pass."})
elif mode == "turns":
    finish(0, {"type": "result", "subtype": "error_max_turns", "is_error": False, "num_turns": 3})
elif mode == "stall":
    print("working", flush=True)
    time.sleep(3600)
elif mode == "tool-ok":
    start_tool()
    finish(0, OK)
elif mode == "tool-stuck":
    start_tool()
    stay()
elif mode == "reply-stuck":
    reply()
    stay()
elif mode == "stuck":
    stay()
elif mode == "gated":
    print("working", flush=True)
    while not (root / f"release-{agent}").exists():
        time.sleep(0.01)
    finish(0, OK)
elif mode == "hang":
    time.sleep(3600)
