"""Near-duplicate dedup: synthloom's NearDedup (rensa) against datasketch's MinHashLSH.

    python benchmarks/bench_dedup.py [--n 1000000] [--share 0.1] [--only rensa|datasketch|datasketch-17x4]

Generates N short texts (100-300 characters of words from a 20,000-word vocabulary) in which
a share are planted near-duplicates of an earlier text (one word replaced, or one word
replaced and the case or final punctuation changed). Each method runs in its own process on
the same texts (the same seed): time from texts to decisions (tokenising, shingling,
signatures, LSH, and for synthloom the Jaccard confirmation), the process's peak memory
(ru_maxrss) and its memory once the texts are built, and recall / precision against the
planted pairs. Both use the same settings: word 5-gram shingles, Jaccard threshold 0.7, 68
permutations (what NearDedup chooses for 0.7). datasketch is used as its users do (MinHash.bulk
signatures, MinHashLSH query then insert, no confirmation), twice: `datasketch` with the
banding it picks itself for threshold 0.7 and 68 permutations (8 bands of 8 rows), and
`datasketch-17x4` with NearDedup's 17 bands of 4 rows, which without the Jaccard
confirmation also calls pairs well under 0.7 duplicates.

Recall is over all planted duplicates, and over those whose true shingle Jaccard with their
source is at least the threshold (what a 0.7 threshold promises to find: a word replaced in
the middle of a short text can leave less than 0.7 of its 5-grams shared). Precision: the
share of texts a method called duplicates that are planted duplicates of the text it named
(or of another member of the same planted cluster).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

THRESHOLD, ROWS, BANDS = 0.7, 4, 17
METHODS = ("rensa", "datasketch", "datasketch-17x4")


def make_texts(n: int, share: float, seed: int = 0) -> tuple[list[str], dict[int, int]]:
    """N texts and the planted duplicates: duplicate index -> source index."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = sorted(
        {"".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(22_000)}
    )[:20_000]
    texts: list[str] = []
    planted: dict[int, int] = {}
    for i in range(n):
        if i > 100 and rng.random() < share:
            source = rng.randrange(i)
            while source in planted:  # plant on an original, so clusters are stars
                source = rng.randrange(i)
            toks = texts[source].split()
            toks[rng.randrange(len(toks))] = rng.choice(vocab)
            text = " ".join(toks)
            if rng.random() < 0.5:
                text = text.capitalize() + rng.choice([".", "!", "?"])
            planted[i] = source
            texts.append(text)
            continue
        words: list[str] = []
        target = rng.randint(100, 300)
        while sum(len(w) + 1 for w in words) < target:
            words.append(rng.choice(vocab))
        texts.append(
            " ".join(words)[:300].rsplit(" ", 1)[0]
            if len(" ".join(words)) > 300
            else " ".join(words)
        )
    return texts, planted


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_rensa(texts: list[str]) -> list[int | None]:
    from synthloom.quality.dedup import NearDedup

    finder = NearDedup(ngram=5, threshold=THRESHOLD)
    assert (finder.rows, finder.bands) == (ROWS, BANDS)
    return [m.index if m is not None else None for m in finder.find(texts)]


def run_datasketch(texts: list[str], same_banding: bool) -> list[int | None]:
    from datasketch import MinHash, MinHashLSH

    from synthloom.quality.dedup import shingles

    num_perm = ROWS * BANDS
    params = (BANDS, ROWS) if same_banding else None  # None: datasketch's own (8 x 8 here)
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=num_perm, params=params)
    out: list[int | None] = []
    batch = 10_000
    for start in range(0, len(texts), batch):
        chunk = texts[start : start + batch]
        hashes = MinHash.bulk((shingles(t, 5) for t in chunk), num_perm=num_perm, seed=1)
        for offset, mh in enumerate(hashes):
            i = start + offset
            hits = lsh.query(mh)
            if hits:
                out.append(min(hits))
            else:
                lsh.insert(i, mh, check_duplication=False)
                out.append(None)
    return out


def child(method: str, n: int, share: float) -> dict[str, Any]:
    texts, planted = make_texts(n, share)
    base = rss_mb()
    start = time.perf_counter()
    if method == "rensa":
        found = run_rensa(texts)
    else:
        found = run_datasketch(texts, same_banding=method == "datasketch-17x4")
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    root = {i: planted.get(i, i) for i in range(n)}
    flagged = [i for i, m in enumerate(found) if m is not None]
    correct = sum(1 for i in flagged if i in planted and root[found[i]] == root[i])  # type: ignore[index]
    hit = {i for i in flagged if i in planted}
    return {
        "method": method,
        "seconds": round(seconds, 2),
        "texts_per_second": round(n / seconds),
        "peak_rss_mb": round(peak),
        "rss_after_texts_mb": round(base),
        "flagged": len(flagged),
        "planted": len(planted),
        "found_planted": len(hit),
        "recall": round(len(hit) / len(planted), 4),
        "precision": round(correct / len(flagged), 4) if flagged else 1.0,
        "hit_ids": sorted(hit),
    }


def over_threshold(n: int, share: float) -> set[int]:
    """Planted duplicates whose true 5-gram Jaccard with their source is >= THRESHOLD."""
    from synthloom.quality.dedup import shingles

    texts, planted = make_texts(n, share)
    found = set()
    for dup, src in planted.items():
        a, b = set(shingles(texts[dup])), set(shingles(texts[src]))
        if len(a & b) / len(a | b) >= THRESHOLD:
            found.add(dup)
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--share", type=float, default=0.1)
    parser.add_argument("--only", choices=METHODS)
    parser.add_argument("--child", choices=METHODS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.n, args.share)))
        return
    methods = [args.only] if args.only else list(METHODS)
    results = []
    for method in methods:
        cmd = [
            sys.executable,
            __file__,
            "--child",
            method,
            "--n",
            str(args.n),
            "--share",
            str(args.share),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results.append(json.loads(done.stdout))
        print(f"{method}: done", file=sys.stderr, flush=True)
    strong = over_threshold(args.n, args.share)
    print(f"texts: {args.n:,}; planted near-duplicates: {results[0]['planted']:,}"
          f" ({len(strong):,} with true 5-gram Jaccard >= {THRESHOLD})")  # fmt: skip
    print("| method | seconds | texts/s | peak RSS MB | RSS after texts MB | recall (all planted)"
          " | recall (planted, Jaccard >= 0.7) | precision |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        strong_recall = len(strong & set(r.pop("hit_ids"))) / len(strong) if strong else 1.0
        print(
            f"| {r['method']} | {r['seconds']} | {r['texts_per_second']:,} | {r['peak_rss_mb']:,}"
            f" | {r['rss_after_texts_mb']:,} | {r['recall']:.4f} | {strong_recall:.4f}"
            f" | {r['precision']:.4f} |"
        )
    for r in results[1:]:
        print(f"speed-up over {r['method']}: {r['seconds'] / results[0]['seconds']:.1f}x")


if __name__ == "__main__":
    main()
