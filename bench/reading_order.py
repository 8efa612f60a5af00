"""Reading order, measured: PaddleOCR's rows against docmill's columns-and-blocks XY-cut, on
the shared receipts (labels in their annotated reading order) and the demo pages (truth in
reading order), graded by `docmill report`'s sequence score.

    python -m bench.reading_order [--models SET]

The sequence score is 1 - edit distance / length over the page text in reading order
(demo/scoring.py), so it drops when lines come out of order; receipts are upper-cased on both
sides, as their labels are. Prints one JSON line per dataset and order.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from bench.pages import demo_pages, load_engine, sroie_pages
from bench.results import save_result
from docmill.settings import DEFAULT_MODEL_SET


def datasets() -> dict[str, tuple[list, list[list[str]], bool]]:
    """dataset -> (images, truths, upper-case both sides: the receipts' labels are)."""
    out = {"demo": (*demo_pages(), False)}
    receipts = sroie_pages()
    if receipts:
        out = {"sroie": (*receipts, True), **out}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=DEFAULT_MODEL_SET)
    args = ap.parse_args()
    from demo.scoring import compare_lines

    engine = load_engine(args.models)
    rows = []
    for name, (images, truths, upper) in datasets().items():
        for order in ("rows", "columns"):
            options = engine.options.merged({"reading_order": order})
            scores, exact = [], 0
            for image, truth in zip(images, truths):
                found = [line.text for line in engine.run([image], options)[0].lines]
                if upper:
                    truth, found = [t.upper() for t in truth], [t.upper() for t in found]
                check = compare_lines(truth, found)
                scores.append(check["sequence_score"])
                exact += check["exact_lines"]
            rows.append({"dataset": name, "reading_order": order, "pages": len(images),
                         "mean_sequence_score": round(statistics.mean(scores), 4),
                         "exact_lines_in_order": exact, "expected_lines": sum(len(t) for t in truths),
                         "per_page": scores})
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "per_page"}), flush=True)
    save_result("reading_order", {"schema": "docmill.bench.reading_order/v1", "models": args.models, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
