"""`python -m orweb.serve` runs daphne on uvloop: the policy must be in place before daphne makes its loop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROBE = """
import sys
sys.argv = ["orweb.serve", "--help"]
from orweb import serve
try:
    serve.main()
except SystemExit:
    pass
import daphne.server
print(type(daphne.server.twisted_loop).__module__)
"""


def test_daphne_runs_its_reactor_on_uvloop():
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=Path(__file__).parent.parent, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "uvloop"
