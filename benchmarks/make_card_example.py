"""Make the dataset cards of docs/dataset-card-example.md from real runs on the bundled model.

1. `recipes/augment.yaml`: label-preserving rewrites of the shipped reviews, exported as a
   classification set split 80/20 by original.
2. Summaries of examples/article.md (`summarize`, embedded model), reviewed by two people
   through the review store (alice approves and edits, bob rejects one), exported from the
   reviewed set as conversational prompt/completion rows with a system prompt.

Usage, from the repository root (about a minute on 2 cores):
    .venv/bin/python benchmarks/make_card_example.py runs/card-example
writes the cards (WORKDIR/augment/reviews.jsonl.README.md, WORKDIR/sft.jsonl.README.md) and
docs/dataset-card-example.md, which shows them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from synthloom.review.server import ServeParams, open_review

REPO = Path(__file__).resolve().parents[1]


def synthloom(*args: str) -> None:
    result = subprocess.run([sys.executable, "-m", "synthloom", *args], cwd=REPO)
    if result.returncode != 0:
        raise SystemExit(f"synthloom {' '.join(args)} failed")


def main() -> None:
    work = Path(sys.argv[1])  # relative to the repository root, where the commands run
    synthloom("run", "recipes/augment.yaml", "--out", str(work / "augment"))
    summaries = work / "summaries"
    synthloom(
        "summarize", "--input", "examples/article.md", "-k", "4",
        "--lengths", "one sentence,three sentences", "--styles", "neutral,plain",
        "--max-tokens", "128", "--out", str(summaries),
    )  # fmt: skip
    store, _ = open_review(ServeParams(input=summaries))
    store.add_user("alice")
    store.add_user("bob")
    items = store.items()
    for i, item in enumerate(items):
        who = "bob" if i == len(items) - 1 else "alice"
        body: dict[str, object] = {}
        action = "approve"
        if i == 0:  # alice rewrites the first summary
            text = (
                "Millbrook opened a free tool library in its former post office, and 140 people"
                " signed up on the first day."
            )
            body = {"edits": {"summary": text}}
        if who == "bob":
            action, body = "reject", {"reason": "repeats the article's first sentence"}
        store.save(item["id"], who, base_version=0, action=action, body=body)
    synthloom("review", "export", str(summaries), "--out", str(work / "reviewed"))
    synthloom(
        "export", str(work / "reviewed"), "--format", "prompt-completion-conversational",
        "--system", "You summarise news articles faithfully.", "--out", str(work / "sft.jsonl"),
    )  # fmt: skip
    write_doc(work)


def write_doc(work: Path) -> None:
    cards = [work / "augment" / "reviews.jsonl.README.md", work / "sft.jsonl.README.md"]
    a, b = (c.read_text(encoding="utf-8").rstrip() for c in cards)
    rev = subprocess.run(
        ["git", "log", "-1", "--format=%h"], capture_output=True, text=True, cwd=REPO
    ).stdout.strip()
    row = (work / "sft.jsonl").read_text(encoding="utf-8").splitlines()[0]
    doc = DOC.format(rev=rev, work=work, row=row, a=a, b=b, fence="````")
    (REPO / "docs" / "dataset-card-example.md").write_text(doc, encoding="utf-8")
    print(json.dumps({"cards": [str(c) for c in cards], "doc": "docs/dataset-card-example.md"}))


DOC = """# Dataset cards: two examples from real runs

Every `export`, `pairs` and `mix` writes a dataset card beside its output (`<file>.README.md`,
or `README.md` inside a `datasets` directory; see the README's "Dataset cards"). The two
cards below were written by real runs on the bundled SmolLM2-135M model (embedded backend),
made by `benchmarks/make_card_example.py {work}` (code as of {rev}):

1. `recipes/augment.yaml`: label-preserving rewrites of the shipped reviews, exported as a
   classification set split 80/20 so that an original and its rewrites share a split. The
   card shows what the run removed and why (near copies, a failed answer, flagged rows) and
   the label check's warnings, and that most rows are the human originals: the 135M model's
   rewrites are weak.
2. Four summaries of `examples/article.md`, reviewed in the review store by two people (alice
   approves three and rewrites one, bob rejects one), exported from the reviewed set as
   conversational prompt/completion rows with a system prompt. The card follows the
   reviewed set back to the summarize run through the review export's `lineage.json`.

The 135M model's text is weak (see the README's "Honest limits"); the cards are what matter
here. The first row of the second export (the summary alice rewrote):

```json
{row}
```

## 1. Augmented reviews (classification, split by original)

`{work}/augment/reviews.jsonl.README.md`:

{fence}markdown
{a}
{fence}

## 2. Reviewed summaries (prompt/completion, with review statistics)

`{work}/sft.jsonl.README.md`:

{fence}markdown
{b}
{fence}
"""


if __name__ == "__main__":
    main()
