"""The DfAnalyzer-compatible API: scripts written for the original DLProv's ``dfa_lib_python``
run with their imports changed to this module::

    from dlprov.dfa import Dataflow, Task, DataSet, Element

    df = Dataflow("alexnet", predefined=True, email="bob@example.com")
    df.save()
    t1 = Task(1, df, exec_tag, "LoadData")
    ...
    end_execution(exec_tag)   # optional: open executions end at interpreter exit

See :mod:`dlprov.capture.dfa` for how it maps onto :func:`dlprov.run`, and what it fixes.
"""
from dlprov.capture.dfa import Task, end_execution
from dlprov.capture.dfa_spec import (
    Attribute,
    AttributeType,
    Dataflow,
    DataSet,
    Dependency,
    Element,
    Set,
    SetType,
    TaskStatus,
    Transformation,
)

__all__ = [
    "Dataflow", "Transformation", "Set", "SetType", "Attribute", "AttributeType", "Task",
    "DataSet", "Element", "Dependency", "TaskStatus", "end_execution",
]
