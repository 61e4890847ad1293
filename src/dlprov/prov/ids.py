"""The ``dlprov`` namespace and the identifiers of exported PROV records.

Every identifier is derived from what the store already holds (a dataflow tag, an execution or
task uuid, a set element's row id, a model id), so two exports of one store name the same
things the same way, and exporting never writes to the store (the original exporter stamped
uuids into its tables to get there). Local parts are percent-encoded where they come from
free text (a user name), which PROV-N, PROV-XML, PROV-JSON and RDF all accept.
"""
from __future__ import annotations

from urllib.parse import quote

from prov.identifier import Namespace, QualifiedName

#: The original's property names (``dlprov:ds_tag``, ``dlprov:loss``, ...) live here; the
#: original used the bare prefix ``DLProv``, which is not a URI.
DLPROV = Namespace("dlprov", "https://dlprov.dev/ns#")


def _safe(text: object) -> str:
    return quote(str(text), safe="-._~")


def plan_id(df_tag: str) -> QualifiedName:
    """The dataflow (the prov:Plan every execution follows)."""
    return DLPROV[f"dataflow/{df_tag}"]


def execution_id(exec_uuid: str) -> QualifiedName:
    return DLPROV[f"execution/{exec_uuid}"]


def bundle_id(exec_uuid: str) -> QualifiedName:
    """The bundle holding one execution's records."""
    return DLPROV[f"bundle/{exec_uuid}"]


def task_id(task_uuid: str) -> QualifiedName:
    return DLPROV[f"task/{task_uuid}"]


def element_id(df_tag: str, set_tag: str, row_id: int) -> QualifiedName:
    """An element: the row ``row_id`` of set ``set_tag`` of dataflow ``df_tag``."""
    return DLPROV[f"{df_tag}/{set_tag}/{row_id}"]


def model_id(model_uuid: str) -> QualifiedName:
    """A trained model (a ``trained_model`` row)."""
    return DLPROV[f"model/{_safe(model_uuid)}"]


def user_id(name: str) -> QualifiedName:
    """The person who ran executions: one agent per user name (or e-mail), across runs."""
    return DLPROV[f"user/{_safe(name)}"]


def machine_id(exec_uuid: str) -> QualifiedName:
    """The computational environment of one execution (host, OS, Python, GPUs, ...)."""
    return DLPROV[f"machine/{exec_uuid}"]
