"""The records that capture hands to the recorder and the recorder writes to a store.

Plain tuples, cheap to build on the training thread and to spool as JSON: ``(kind, key, ...)``.
Keys are UUID hex strings made by capture, so nothing waits for a database id.
"""
from __future__ import annotations

SPEC = "spec"              # (SPEC, df_tag, spec_dict)
EXEC_START = "exec_start"  # (EXEC_START, exec_key, fields)
EXEC_END = "exec_end"      # (EXEC_END, exec_key, fields)
TASK_START = "task_start"  # (TASK_START, task_key, fields)  fields["depends_on"]: task keys
TASK_END = "task_end"      # (TASK_END, task_key, fields)
ELEMENT = "element"        # (ELEMENT, task_key, set_tag, values)
USE = "use"                # (USE, consumer_task_key, producer_task_key, [set_tag, ...])
ENVIRONMENT = "environment"  # (ENVIRONMENT, exec_key, fields)
MODEL = "model"            # (MODEL, task_key, fields)  the writer adds size and sha256
# Tags and notes given after the start: fields {"tags": {key: text or None (remove)},
# "notes": text, "append": bool}. Keyed by the exec tag, which a user knows (dlprov tag RUN).
ANNOTATION = "annotation"  # (ANNOTATION, exec_tag, fields)

# A warning kept with a task in its output_msg (the lenient DfAnalyzer protocol stores what the
# original took, and says what it had to assume); `dlprov tasks` shows these lines.
TASK_WARNING = "[dlprov warning] "

KINDS = frozenset({SPEC, EXEC_START, EXEC_END, TASK_START, TASK_END, ELEMENT, USE, ENVIRONMENT,
                   MODEL, ANNOTATION})
