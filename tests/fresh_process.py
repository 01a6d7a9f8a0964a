"""Run a probe script in a fresh interpreter and read the JSON it prints last."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any


def probe_json(code: str, env: dict[str, str], drop: tuple[str, ...] = ()) -> Any:
    """The last stdout line of ``python -c code``, as JSON.

    The environment is this one, less every variable whose name starts with one of
    ``drop``, plus ``env``; a failing probe raises with its output.
    """
    clean = {k: v for k, v in os.environ.items() if not (drop and k.startswith(drop))}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])
