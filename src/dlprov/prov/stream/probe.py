"""A small document of every kind of record and value the exporter writes: the writers of this
package check themselves against ``prov``'s own serializers on it, once per process."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from prov.constants import PROV, XSD_DOUBLE
from prov.model import Literal, ProvDocument

from dlprov.prov.ids import DLPROV


def probe_document() -> ProvDocument:
    """A plan at the top, and a bundle with elements, relations and values of each type."""
    doc = ProvDocument()
    doc.add_namespace(DLPROV)
    plan = DLPROV["probe/plan"]
    doc.entity(plan, [(PROV["type"], PROV["Plan"]), (DLPROV["df_tag"], "probe")])
    bundle = doc.bundle(DLPROV["probe/bundle"])
    bundle.add_namespace(DLPROV)
    e, s, a = DLPROV["probe/e"], DLPROV["probe/s"], DLPROV["probe/a"]
    user, machine = DLPROV["probe/user"], DLPROV["probe/machine"]
    bundle.entity(e, [
        (PROV["type"], DLPROV["Thing"]), (DLPROV["text"], 'x "y"\n\\ ünï ✓'),
        (DLPROV["n"], 1), (DLPROV["n"], -7), (DLPROV["long"], 2 ** 40), (DLPROV["big"], 2 ** 70),
        (DLPROV["f"], 0.1), (DLPROV["f"], 1e300), (DLPROV["inf"], float("inf")),
        (DLPROV["nan"], float("nan")), (DLPROV["nan_literal"], Literal("NaN", XSD_DOUBLE)),
        (DLPROV["b"], True), (DLPROV["b"], False), (PROV["label"], "probe"),
        (DLPROV["t"], datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
        (DLPROV["t"], datetime(2024, 1, 2, 3, 4, 5, 123456,
                               tzinfo=timezone(timedelta(hours=-3)))),
        (DLPROV["naive"], datetime(2024, 1, 2, 3, 4, 5, 6))])
    bundle.entity(e, [(DLPROV["again"], "same identifier, a second record")])
    bundle.entity(s, [(DLPROV["ds_tag"], "iset"), (DLPROV["id"], 3)])
    bundle.activity(a, datetime(2024, 1, 2), datetime(2024, 1, 3), [(DLPROV["k"], "v")])
    bundle.activity(DLPROV["probe/run"], datetime(2024, 1, 1), None, [])
    bundle.agent(user, [(PROV["type"], PROV["Person"])])
    bundle.agent(machine, [(PROV["type"], PROV["SoftwareAgent"]), (DLPROV["cpus"], 2)])
    bundle.used(a, s)
    bundle.used(DLPROV["probe/run"], plan)
    bundle.wasGeneratedBy(e, a)
    bundle.wasDerivedFrom(e, s, a)
    bundle.wasInformedBy(a, DLPROV["probe/run"])
    bundle.wasAssociatedWith(DLPROV["probe/run"], user, plan)
    bundle.actedOnBehalfOf(machine, user, DLPROV["probe/run"])
    model = DLPROV["model/probe"]
    bundle.entity(model, [(PROV["type"], DLPROV["TrainedModel"]), (DLPROV["size"], 10)])
    bundle.wasGeneratedBy(model, a, datetime(2024, 1, 2, 12))
    bundle.wasAttributedTo(model, user)
    bundle.alternateOf(model, e)
    return doc
