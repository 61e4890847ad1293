"""Importing a large PROV-JSON document takes bounded memory: ``prov`` builds the objects of a
few thousand records at a time and the rows are stored batch by batch (see
:mod:`dlprov.prov.provjson`). The import runs in a child process whose peak resident memory is
measured; ``benchmarks/imports.py`` measures a million entities the same way."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

#: the child imports, then prints its nodes and relations; the middle process reports the peak
#: resident memory of its one child (RUSAGE_CHILDREN: not the test runner's other children)
_IMPORT = ("import sys; from dlprov.prov.imports import import_document; "
           "r = import_document(sys.argv[1], store=sys.argv[2]); print(r.nodes, r.relations)")
_MEASURE = textwrap.dedent("""
    import resource, subprocess, sys
    done = subprocess.run([sys.executable, "-c", sys.argv[1], *sys.argv[2:]],
                          capture_output=True, text=True)
    sys.stderr.write(done.stderr)
    print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024,
          done.stdout.strip())
""")


def write_document(path: Path, entities: int) -> Path:
    """A PROV-JSON document of ``entities`` entities, each naming a record, one activity, a
    generation for every tenth entity, and a bundle declaring the first entity again (merged
    into one node)."""
    with open(path, "w") as out:
        out.write('{"prefix": {"ex": "http://example.org/prep#"}, "entity": {')
        out.write(", ".join(f'"ex:e{i}": {{"ex:record_id": "rec-{i}"}}'
                            for i in range(entities)))
        out.write('}, "activity": {"ex:clean": {}}, "wasGeneratedBy": {')
        out.write(", ".join(f'"_:g{i}": {{"prov:entity": "ex:e{i}", "prov:activity": '
                            f'"ex:clean"}}' for i in range(0, entities, 10)))
        out.write('}, "bundle": {"ex:b": {"entity": {"ex:e0": {"prov:label": "first"}}}}}')
    return path


def import_measured(document: Path, store: Path) -> tuple[int, str]:
    """(peak resident MB of the importing process, what it printed)."""
    done = subprocess.run([sys.executable, "-c", _MEASURE, _IMPORT, str(document), str(store)],
                          capture_output=True, text=True, timeout=900)
    rc, peak, output = done.stdout.split(" ", 2)
    assert rc == "0", done.stderr
    return int(peak), output.strip()


def test_a_100k_entity_document_imports_in_bounded_memory(tmp_path):
    entities = 100_000
    document = write_document(tmp_path / "big.json", entities)
    peak, output = import_measured(document, tmp_path / "dlprov.db")
    relations = entities // 10
    assert output == f"{entities + 1} {relations}"  # the bundle's entity is merged, not added
    # read whole by prov, this document took 284 MB; batch by batch about 115 MB
    assert peak < 200, f"importing {entities:,} entities took {peak} MB"
    with sqlite3.connect(tmp_path / "dlprov.db") as conn:
        label, attributes, record_id, bundle = conn.execute(
            "SELECT label, attributes, record_id, bundle FROM prov_node "
            "WHERE name = 'ex:e0'").fetchone()
        counts = conn.execute("SELECT node_count, relation_count, bundle_count "
                              "FROM prov_document").fetchone()
    conn.close()
    assert (label, record_id, bundle) == ("first", "rec-0", None)
    assert json.loads(attributes) == {"ex:record_id": "rec-0", "prov:label": "first"}
    assert counts == (entities + 1, relations, 1)
