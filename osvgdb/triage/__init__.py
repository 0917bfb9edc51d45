"""Crash triage for CI: `osvgdb triage` (command.py).

live.py boots and stops the guest at the moment things go wrong, collect.py
reads the state through the kernel model (live over GDB's MI, or a saved dump),
report.py classifies it (outcome.py; a runtime's report read off the console by
console.py and checked against the state by runtime.py) and names it
(signature.py), render.py
writes Markdown and JUnit, store.py keeps one directory per distinct crash.
"""
