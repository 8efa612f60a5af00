"""Demo pages with known text, and the scoring and report that check a run against them."""
