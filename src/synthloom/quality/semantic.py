"""Semantic dedup: texts whose embeddings are nearly parallel repeat one meaning.

Optional (dedup --semantic): embeddings come from an OpenAI-compatible `/embeddings` endpoint
(vLLM, llama.cpp server with --embeddings, Ollama, OpenAI, TEI...), so no model is bundled
and nothing is downloaded. Each text is compared with every earlier kept text (and the
reference texts) by cosine similarity, in blocks with numpy; the earliest kept text at or
above the threshold is what it duplicates.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence

import numpy as np

from synthloom.errors import UserError

__all__ = ["EmbeddingClient", "semantic_duplicates", "semantic_finder"]

BATCH = 64
BLOCK = 1024


class EmbeddingClient:
    """Embeddings of texts from an OpenAI-compatible server, `BATCH` texts a request."""

    def __init__(self, model: str, base_url: str | None, api_key_env: str | None) -> None:
        self.model = model
        self.url = (base_url or "https://api.openai.com/v1").rstrip("/") + "/embeddings"
        self.key = os.environ.get(api_key_env, "") if api_key_env else ""
        if api_key_env and not self.key:
            raise UserError(f"--embed-api-key-env: the environment variable {api_key_env} is empty")

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        rows: list[list[float]] = []
        for i in range(0, len(texts), BATCH):
            rows.extend(self._request(list(texts[i : i + BATCH])))
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), -1)

    def _request(self, batch: list[str]) -> list[list[float]]:
        body = json.dumps({"model": self.model, "input": batch}).encode()
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise UserError(f"embeddings at {self.url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise UserError(f"embeddings at {self.url}: {exc}") from None
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, list) or len(data) != len(batch):
            raise UserError(f"embeddings at {self.url}: the answer has no embedding per text")
        ordered = sorted(data, key=lambda d: d.get("index", 0))
        return [list(map(float, d["embedding"])) for d in ordered]


def semantic_duplicates(
    vectors: np.ndarray, reference: np.ndarray | None, threshold: float
) -> list[tuple[int, bool, float] | None]:
    """For each row of `vectors`, None (kept) or (index, in reference, cosine) of the earliest
    reference row or earlier kept row with cosine similarity >= `threshold`."""

    def unit(m: np.ndarray) -> np.ndarray:
        norms = np.linalg.norm(m, axis=1, keepdims=True)
        return m / np.where(norms == 0, 1, norms)

    x = unit(vectors.astype(np.float32))
    r = unit(reference.astype(np.float32)) if reference is not None and len(reference) else None
    n = len(x)
    result: list[tuple[int, bool, float] | None] = [None] * n
    earlier: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    for start in range(0, n, BLOCK):
        block = x[start : start + BLOCK]
        if r is not None:
            sims = block @ r.T
            for row, col in zip(*np.nonzero(sims >= threshold), strict=True):
                i = start + int(row)
                if result[i] is None:  # the earliest reference row (columns ascend)
                    result[i] = (int(col), True, float(sims[row, col]))
        sims = block @ x[: start + len(block)].T
        for row, col in zip(*np.nonzero(sims >= threshold), strict=True):
            i = start + int(row)
            if col < i:
                earlier[i].append((int(col), float(sims[row, col])))
    kept = np.zeros(n, dtype=bool)
    for i in range(n):
        if result[i] is not None:
            continue
        hit = next(((j, s) for j, s in sorted(earlier[i]) if kept[j]), None)
        if hit is None:
            kept[i] = True
        else:
            result[i] = (hit[0], False, hit[1])
    return result


def semantic_finder(
    client: EmbeddingClient, threshold: float
) -> Callable[[list[str], list[str]], list[tuple[int, bool, float] | None]]:
    def find(texts: list[str], reference: list[str]) -> list[tuple[int, bool, float] | None]:
        ref = client.embed(reference) if reference else None
        return semantic_duplicates(client.embed(texts), ref, threshold)

    return find
