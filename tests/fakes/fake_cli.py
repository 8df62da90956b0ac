#!/usr/bin/env python3
"""A stand-in for claude, codex and gemini in tests.

It records its argv, cwd and AIPASS_* environment to $FAKE_CLI_DIR/calls.jsonl, then acts
per the next word of $FAKE_CLI_DIR/plan-<agent> (the last word repeats):
  ok      print a JSON result and exit 0        reply   answer the dispatch, then ok
  commit  commit a file on the desk, then ok    crash   write to stderr, exit 3
  ratelimit  say "rate limit exceeded (429)", exit 1
  hang    print nothing and sleep               busy    print, sleep 1.5 s, then ok
  stuck   print, then sleep for an hour         error   print {"is_error": true}, exit 0
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
record = {
    "program": Path(sys.argv[0]).name, "argv": sys.argv[1:], "cwd": os.getcwd(), "mode": mode,
    "env": {k: v for k, v in os.environ.items() if k.startswith("AIPASS_")}, "pid": os.getpid(),
    "start": time.time(),
}


def finish(code: int, result: dict | None = None) -> None:
    record["end"] = time.time()
    with open(root / "calls.jsonl", "a") as fh:
        fh.write(json.dumps(record) + "\n")
    if result is not None:
        print(json.dumps(result), flush=True)
    sys.exit(code)


if mode == "ok":
    finish(0, {"type": "result", "is_error": False})
elif mode == "reply":
    subprocess.run(["git", "aipass", "reply", os.environ["AIPASS_DISPATCH"], "fake reply"], check=True)
    finish(0, {"type": "result", "is_error": False})
elif mode == "commit":
    Path("fake-work.txt").write_text(f"work for {os.environ['AIPASS_DISPATCH']}\n")
    subprocess.run(["git", "add", "fake-work.txt"], check=True)
    subprocess.run(["git", "commit", "-qm", "fake work"], check=True)
    finish(0, {"type": "result", "is_error": False})
elif mode == "crash":
    sys.stderr.write("fatal: the fake crashed\n")
    finish(3)
elif mode == "ratelimit":
    sys.stderr.write("Error: rate limit exceeded (429)\n")
    finish(1)
elif mode == "error":
    finish(0, {"type": "result", "is_error": True, "result": "model refused"})
elif mode == "busy":
    print("working", flush=True)
    time.sleep(1.5)
    finish(0, {"type": "result", "is_error": False})
elif mode == "stuck":
    print("working", flush=True)
    with open(root / f"stuck-{agent}.pid", "w") as fh:
        fh.write(str(os.getpid()))
    time.sleep(3600)
elif mode == "hang":
    time.sleep(3600)
