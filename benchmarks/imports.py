"""Peak memory and time of ``dlprov import`` for a large PROV-JSON document.

A document of N entities (each naming a record), one activity and a generation for every tenth
entity is written to a temporary folder and imported into a fresh SQLite store by a child
process; its peak resident memory (RUSAGE_CHILDREN of a middle process that has only that child)
and wall time are printed. Target: a million entities in under 1 GB (read whole by ``prov``, the
same document took 2.2 GB).

A report, not a test: it exits 0 whether the target is met or not.

    python benchmarks/imports.py                    # 1,000,000 entities
    python benchmarks/imports.py --entities 100000
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.prov.test_import_memory import import_measured, write_document  # noqa: E402

TARGET_MB = 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=1_000_000)
    parser.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dlprov-bench-") as tmp:
        document = write_document(Path(tmp) / "big.json", args.entities)
        size_mb = document.stat().st_size / 1024 ** 2
        start = time.perf_counter()
        peak, output = import_measured(document, Path(tmp) / "dlprov.db")
        seconds = time.perf_counter() - start
    nodes, relations = output.split()
    verdict = ("" if args.entities != 1_000_000 else
               f" (target < {TARGET_MB} MB: {'met' if peak < TARGET_MB else 'NOT met'})")
    print(f"PROV-JSON of {args.entities:,} entities ({size_mb:.0f} MB): {nodes} nodes and "
          f"{relations} relations imported in {seconds:.1f} s, peak resident memory "
          f"{peak} MB{verdict}")
    if args.json:
        judged = args.entities == 1_000_000
        Path(args.json).write_text(json.dumps({"figures": [
            {"figure": f"import of {args.entities:,} PROV-JSON entities, peak memory",
             "value": float(peak), "unit": "MB", "target": TARGET_MB if judged else None,
             "result": ("PASS" if peak < TARGET_MB else "FAIL") if judged else "info"},
            {"figure": f"import of {args.entities:,} PROV-JSON entities, time",
             "value": round(seconds, 1), "unit": "s", "result": "info"}]}, indent=2))


if __name__ == "__main__":
    main()
