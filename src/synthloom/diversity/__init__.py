"""Diversity at scale, shared by every generating task (issue 16).

    tree.py      topic trees: the YAML file `synthloom topics` writes; spreading N units over
                 its leaves (by weight or evenly)
    samplers.py  attribute samplers: categorical (weighted), ranges, personas, conditional
    examples.py  real examples, k per call, rotated without repeating a k-set
    index.py     a streaming near-duplicate index (dedup while generating)
    options.py   the params a task opts into (--topics, --sample, --examples/--shots,
                 --max-similar/--max-reasks)
    draws.py     a unit's draw (leaf, attributes, examples) and re-asking near-duplicates
    spread.py    the spread summary of every run (distinct-2, near-duplicates, coverage)

How a task opts in: docs/DEVELOPING-TASKS.md ("Diversity options").
"""
