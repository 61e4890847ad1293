"""The W3C PROV-CONSTRAINTS rules dlprov checks: number -> name, as the Recommendation
numbers them (https://www.w3.org/TR/prov-constraints/, 2013-04-30)."""
from __future__ import annotations

#: Constraint number -> its name in the Recommendation. 0 is not a constraint: a statement
#: PROV-DM does not allow (a required argument left out), which no constraint can repair.
CONSTRAINTS: dict[int, str] = {
    0: "malformed-statement",
    22: "key-object",
    23: "key-properties",
    24: "unique-generation",
    25: "unique-invalidation",
    26: "unique-wasStartedBy",
    27: "unique-wasEndedBy",
    28: "unique-startTime",
    29: "unique-endTime",
    30: "start-precedes-end",
    31: "start-start-ordering",
    32: "end-end-ordering",
    33: "usage-within-activity",
    34: "generation-within-activity",
    35: "wasInformedBy-ordering",
    36: "generation-precedes-invalidation",
    37: "generation-precedes-usage",
    38: "usage-precedes-invalidation",
    39: "generation-generation-ordering",
    40: "invalidation-invalidation-ordering",
    41: "derivation-usage-generation-ordering",
    42: "derivation-generation-generation-ordering",
    43: "wasStartedBy-ordering",
    44: "wasEndedBy-ordering",
    45: "specialization-generation-ordering",
    46: "specialization-invalidation-ordering",
    47: "wasAssociatedWith-ordering",
    48: "wasAttributedTo-ordering",
    49: "actedOnBehalfOf-ordering",
    50: "typing",
    51: "impossible-unspecified-derivation-generation-use",
    52: "impossible-specialization-reflexive",
    53: "impossible-property-overlap",
    54: "impossible-object-property-overlap",
    55: "entity-activity-disjoint",
    56: "membership-empty-collection",
}

#: The families, for reports and docs.
FAMILIES: dict[str, tuple[int, ...]] = {
    "uniqueness": tuple(range(22, 30)),
    "ordering": tuple(range(30, 50)),
    "typing": (50,),
    "impossibility": (51, 52, 53, 54),
    "disjointness": (55, 56),
}


def name(number: int) -> str:
    """The Recommendation's name of constraint ``number``."""
    return CONSTRAINTS[number]
