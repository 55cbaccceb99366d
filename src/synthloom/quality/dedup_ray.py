"""Near-duplicate detection on a Ray cluster: the same answers as `NearDedup.find`.

`NearDedup` decides text by text, in order: a text is a duplicate of the earliest kept text
among its LSH band-mates (a band key's first `bucket_size` kept texts) whose word n-gram
Jaccard reaches the threshold. That decision only ever looks at band-mates, so it can be taken
on any subset of the texts that is closed under "shares a band key", in the same order, with
the same result. On Ray Data:

1. `map_batches`: every text's band keys (`NearDedup.band_keys`: shingles, MinHash, bands),
   one row per (band key, text), with a partition number taken from the key;
2. `groupby(partition).map_groups`: the band keys grouped across the cluster; each key shared
   by several texts gives candidate edges (its first text to each other one);
3. in the driver: union-find (connected components) of the candidate edges: groups of texts
   closed under sharing a band; a text in no edge is kept and never looked at again;
4. `map_batches` + `groupby(component partition).map_groups`: each partition's texts, whole
   components in row order, verified by `NearDedup.find` (true Jaccard), reference texts
   first as locally.

Only step 3 runs in the driver, on the candidate edges (a few per near-duplicate text), never
on the texts. Needs the `ray` extra: `pip install 'synthloom[ray]'`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from synthloom.quality.dedup import DEFAULT_THRESHOLD, Match, NearDedup

if TYPE_CHECKING:
    import ray.data

__all__ = ["RayNearDedup", "candidate_components"]


def _ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:  # pragma: no cover - depends on the install
        from synthloom.errors import UserError

        raise UserError(
            "the Ray executor needs Ray: pip install 'synthloom[ray]' (or pip install 'ray[data]')"
        ) from None
    return ray


class RayNearDedup(NearDedup):
    """`NearDedup` whose `find` runs on the connected Ray cluster (`ray.init` first, or it
    starts a local one). `partitions`: how many groups the band keys and the components are
    shuffled into (default: 4 per CPU of the cluster)."""

    def __init__(
        self,
        ngram: int = 5,
        threshold: float = DEFAULT_THRESHOLD,
        seed: int = 1,
        *,
        partitions: int | None = None,
        batch_size: int = 10_000,
    ) -> None:
        super().__init__(ngram, threshold, seed)
        self.partitions = partitions
        self.batch_size = batch_size
        self.stats: dict[str, int] = {}

    def find(self, texts: Sequence[str], reference: Sequence[str] = ()) -> list[Match | None]:
        ray = _ray()
        import pyarrow as pa

        every = [*reference, *texts]
        table = pa.table({"row": np.arange(len(every), dtype=np.int64), "text": every})
        blocks = max(1, min(self._partitions(ray) * 2, len(every) // 1000 or 1))
        ds = ray.data.from_arrow(table).repartition(blocks)
        return self.find_dataset(ds, len(every), len(reference))

    def find_dataset(self, ds: ray.data.Dataset, total: int, n_ref: int = 0) -> list[Match | None]:
        """`find` for a Ray dataset with columns `row` (0..total-1: the reference texts first,
        then the texts, in the order that decides which of two duplicates is kept) and
        `text`."""
        ray = _ray()
        parts = self._partitions(ray)
        config = {"ngram": self.ngram, "threshold": self.threshold, "seed": self.seed}
        keys = ds.map_batches(
            _keys_batch,
            fn_kwargs={**config, "parts": parts},
            batch_format="numpy",
            batch_size=self.batch_size,
        )
        edges = keys.groupby("part", num_partitions=parts).map_groups(
            _star_edges, batch_format="numpy"
        )
        a, b = [], []
        for batch in edges.iter_batches(batch_format="numpy", batch_size=None):
            a.append(batch["a"])
            b.append(batch["b"])
        nodes, labels = candidate_components(
            np.concatenate(a) if a else np.zeros(0, np.int64),
            np.concatenate(b) if b else np.zeros(0, np.int64),
        )
        self.stats = {"texts": total, "candidates": len(nodes), "components": _count(labels)}
        result: list[Match | None] = [None] * (total - n_ref)
        if not len(nodes):
            return result
        box = [ray.put((nodes, labels))]  # in a list: Ray hands the reference, not the value
        members = ds.map_batches(
            _in_components,
            fn_kwargs={"box": box, "parts": parts},
            batch_format="numpy",
            batch_size=self.batch_size,
        )
        verdicts = members.groupby("cpart", num_partitions=parts).map_groups(
            _verify, fn_kwargs={**config, "n_ref": n_ref}, batch_format="numpy"
        )
        for batch in verdicts.iter_batches(batch_format="numpy", batch_size=None):
            for row, dup, score in zip(
                batch["row"].tolist(),
                batch["dup_of"].tolist(),
                batch["jaccard"].tolist(),
                strict=True,
            ):
                ref = dup < n_ref
                result[row - n_ref] = Match(dup if ref else dup - n_ref, ref, score)
        return result

    def _partitions(self, ray: Any) -> int:
        if self.partitions:
            return self.partitions
        if not ray.is_initialized():
            ray.init()
        return max(2, 4 * int(ray.cluster_resources().get("CPU", 1)))


def _count(labels: np.ndarray) -> int:
    return int(labels.max()) + 1 if len(labels) else 0


def candidate_components(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Union-find of the candidate edges a[i]-b[i]: (the rows in any edge, sorted; each
    one's component number)."""
    if not len(a):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    nodes = np.unique(np.concatenate([a, b]))
    ia, ib = np.searchsorted(nodes, a), np.searchsorted(nodes, b)
    parent = np.arange(len(nodes))
    while True:  # hook each edge's larger root under its smaller one, then flatten
        ra, rb = parent[ia], parent[ib]
        lo, hi = np.minimum(ra, rb), np.maximum(ra, rb)
        apart = lo != hi
        if not apart.any():
            break
        np.minimum.at(parent, hi[apart], lo[apart])
        while True:
            up = parent[parent]
            if np.array_equal(up, parent):
                break
            parent = up
    _, labels = np.unique(parent, return_inverse=True)
    return nodes, labels.astype(np.int64)


# -- the functions Ray runs on workers (module level: pickled by reference) ---------------
def _keys_batch(
    batch: dict[str, np.ndarray], ngram: int, threshold: float, seed: int, parts: int
) -> dict[str, np.ndarray]:
    finder = NearDedup(ngram, threshold, seed)
    keys = finder.band_keys(batch["text"].tolist()).ravel()
    return {
        "key": keys.view(np.int64),
        "row": np.repeat(batch["row"].astype(np.int64), finder.bands),
        "part": (keys % np.uint64(parts)).astype(np.int64),
    }


def _star_edges(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """For each band key shared by several texts: an edge from its first text to each other."""
    key, row = batch["key"], batch["row"]
    order = np.lexsort((row, key))
    key, row = key[order], row[order]
    first = np.ones(len(key), dtype=bool)
    first[1:] = key[1:] != key[:-1]
    head = np.maximum.accumulate(np.where(first, np.arange(len(key)), 0))
    pairs = np.stack([row[head][~first], row[~first]])
    pairs = np.unique(pairs, axis=1) if pairs.shape[1] else pairs
    return {"a": pairs[0], "b": pairs[1]}


_COMPONENTS: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def _in_components(
    batch: dict[str, np.ndarray], box: list[Any], parts: int
) -> dict[str, np.ndarray]:
    import ray

    ref = box[0]
    found = _COMPONENTS.get(ref.hex())
    if found is None:
        _COMPONENTS.clear()
        found = _COMPONENTS[ref.hex()] = ray.get(ref)
    nodes, labels = found
    rows = batch["row"].astype(np.int64)
    at = np.minimum(np.searchsorted(nodes, rows), len(nodes) - 1)
    inside = nodes[at] == rows
    return {
        "row": rows[inside],
        "text": batch["text"][inside],
        "cpart": labels[at[inside]] % parts,
    }


def _verify(
    batch: dict[str, np.ndarray], ngram: int, threshold: float, seed: int, n_ref: int
) -> dict[str, np.ndarray]:
    """`NearDedup.find` on whole components, in row order: the same verdicts as on all texts."""
    order = np.argsort(batch["row"], kind="stable")
    rows = batch["row"][order]
    texts = batch["text"][order].tolist()
    refs = int(np.searchsorted(rows, n_ref))  # rows below n_ref are reference texts
    matches = NearDedup(ngram, threshold, seed).find(texts[refs:], texts[:refs])
    out_row, out_dup, out_score = [], [], []
    for i, m in enumerate(matches):
        if m is not None:
            out_row.append(int(rows[refs + i]))
            out_dup.append(int(rows[m.index] if m.reference else rows[refs + m.index]))
            out_score.append(m.jaccard)
    return {
        "row": np.array(out_row, dtype=np.int64),
        "dup_of": np.array(out_dup, dtype=np.int64),
        "jaccard": np.array(out_score, dtype=np.float64),
    }
