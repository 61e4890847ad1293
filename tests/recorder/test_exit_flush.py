"""Records still queued when the interpreter exits are written by the exit handler."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap


def test_queued_records_are_written_at_interpreter_exit(store_path, sql):
    script = textwrap.dedent(f"""
        import dlprov
        run = dlprov.run("exiting", store={str(store_path)!r})
        task = run.task("train")
        for epoch in range(500):
            task.output("otrain", epoch=epoch, loss=1.0 / (epoch + 1))
        # no task.end(), no run.end(): the process just exits
    """)
    # The writer would wake only after a second: the short script is gone by then.
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "DLPROV_FLUSH_INTERVAL": "1.0"})
    assert result.returncode == 0, result.stderr
    assert sql("SELECT count(*), min(epoch), max(epoch) FROM exiting__otrain") == [(500, 0.0, 499.0)]
    assert sql("SELECT status FROM task") == [("running",)]
