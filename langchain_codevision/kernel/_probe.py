"""Jail probe: proves a new jail can run Python and write in its own area (run by path)."""

with open("/run/cv/work/ok", "w", encoding="utf-8") as handle:
    handle.write("ok")
