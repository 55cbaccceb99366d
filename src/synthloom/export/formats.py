"""Every training format synthloom writes: its columns, and which trainers read it and how.

One table, read by the commands' `--help`, the README's format table (a test keeps them
equal), the dataset card, the round-trip tests (each row is checked against `columns`) and
the trainer check (`make check-trainers` trains on every format whose `trl` says it can).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

Kind = Literal["sft", "preference", "unpaired", "classification", "data"]


@dataclass(frozen=True)
class Format:
    name: str
    kind: Kind
    columns: tuple[str, ...]  # exactly these columns (optional ones in `optional`)
    conversational: bool  # prompt/answer columns hold lists of {"role", "content"} messages
    summary: str
    trl: str  # how TRL reads it ("" = it does not)
    llama_factory: str = ""
    axolotl: str = ""
    openai: str = ""
    other: str = ""
    optional: tuple[str, ...] = ()
    jsonl_only: bool = False  # a trainer that reads only JSONL (OpenAI's upload)
    # the TRL trainer `make check-trainers` runs on it (None: TRL does not read it)
    trl_trainer: str | None = None

    def trainers(self) -> list[tuple[str, str]]:
        found = [
            ("TRL", self.trl),
            ("LLaMA-Factory", self.llama_factory),
            ("Axolotl", self.axolotl),
            ("OpenAI fine-tuning", self.openai),
            ("other", self.other),
        ]
        return [(who, how) for who, how in found if how]


_MSG = "lists of {role, content} messages"
_LF_MESSAGES = (
    'dataset_info.json: "formatting": "sharegpt", "columns": {"messages": "messages"}, "tags":'
    ' {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag":'
    ' "assistant", "system_tag": "system"}'
)

SFT: dict[str, Format] = {
    f.name: f
    for f in (
        Format(
            "messages",
            "sft",
            ("messages",),
            True,
            f"`messages`: {_MSG} (system, user, assistant); the chat template of the model you"
            " train applies",
            "SFTTrainer (conversational language modeling; loss on the whole conversation,"
            " `assistant_only_loss=True` for the answers only)",
            llama_factory=_LF_MESSAGES,
            axolotl="`type: chat_template` (reads `messages` by default)",
            openai="chat fine-tuning: upload the .jsonl as it is (or use `openai`)",
            trl_trainer="sft",
        ),
        Format(
            "openai",
            "sft",
            ("messages",),
            True,
            "the `messages` rows, JSONL only: OpenAI's chat fine-tuning file",
            "SFTTrainer, as `messages`",
            openai="chat fine-tuning: `client.files.create(file=..., purpose='fine-tune')`",
            jsonl_only=True,
            trl_trainer="sft",
        ),
        Format(
            "prompt-completion-conversational",
            "sft",
            ("prompt", "completion"),
            True,
            f"`prompt` (system, user) and `completion` (assistant) as {_MSG}",
            "SFTTrainer (conversational prompt-completion; loss on the completion only)",
            trl_trainer="sft",
        ),
        Format(
            "prompt-completion",
            "sft",
            ("prompt", "completion"),
            False,
            "`prompt` and `completion` as plain strings, no chat template: for base models"
            " (TRL joins them as they are, with no separator); no system prompt",
            "SFTTrainer (standard prompt-completion)",
            trl_trainer="sft",
        ),
        Format(
            "alpaca",
            "sft",
            ("instruction", "input", "output"),
            False,
            "`instruction`, `input` (may be empty), `output` (+ `system` with --system or a"
            " record's own)",
            "",
            llama_factory='dataset_info.json: "formatting": "alpaca" (the default columns)',
            axolotl="`type: alpaca`",
            other="not TRL: SFTTrainer needs `messages`, `text` or prompt/completion"
            " (alpaca stops with KeyError: 'text')",
            optional=("system",),
        ),
        Format(
            "sharegpt",
            "sft",
            ("conversations",),
            True,
            "`conversations`: a list of {from, value} with from = system, human, gpt",
            "",
            llama_factory='dataset_info.json: "formatting": "sharegpt" (the default tags)',
            axolotl="`type: chat_template`, `field_messages: conversations`,"
            " `message_property_mappings: {role: from, content: value}`",
            other="not TRL: SFTTrainer trains on it but writes `human`/`gpt` into the text"
            " as role names; use `messages`",
        ),
        Format(
            "classification",
            "classification",
            ("text", "label"),
            False,
            "`text` and `label`, from the tasks that label text (augment, classify)",
            "",
            other="transformers' AutoModelForSequenceClassification with Trainer (map the"
            " labels to ids, e.g. `dataset.class_encode_column('label')`), SetFit",
        ),
        Format(
            "data",
            "data",
            (),
            False,
            "each record's `data` as it is (every field the task wrote)",
            "",
            other="your own code: it is no trainer's format",
        ),
    )
}

PREFERENCE: dict[str, Format] = {
    f.name: f
    for f in (
        Format(
            "dpo-conversational",
            "preference",
            ("prompt", "chosen", "rejected"),
            True,
            f"`prompt` (system, user), `chosen` and `rejected` (assistant) as {_MSG}",
            "DPOTrainer (conversational preference; the model's chat template applies),"
            " also RewardTrainer",
            axolotl="`rl: dpo`, `type: chat_template.default`, `field_messages: prompt`",
            trl_trainer="dpo",
        ),
        Format(
            "dpo",
            "preference",
            ("prompt", "chosen", "rejected"),
            False,
            "`prompt`, `chosen`, `rejected` as plain strings, no chat template: for base"
            " models (TRL joins prompt and answer with no separator); no system prompt",
            "DPOTrainer (standard preference), also RewardTrainer",
            llama_factory='dataset_info.json: "ranking": true, "columns": {"prompt": "prompt",'
            ' "chosen": "chosen", "rejected": "rejected"} (alpaca formatting; stage dpo or rm)',
            axolotl="`rl: dpo`, `type: chatml.prompt_pairs` (or `chat_template.default` with"
            " `field_messages: prompt`)",
            trl_trainer="dpo",
        ),
        Format(
            "reward-conversational",
            "preference",
            ("prompt", "chosen", "rejected", "margin"),
            True,
            f"`dpo-conversational` plus `margin` (how far apart the two ranks are) as {_MSG}",
            "RewardTrainer (conversational preference; `margin` is its optional column)",
            trl_trainer="reward",
        ),
        Format(
            "reward",
            "preference",
            ("prompt", "chosen", "rejected", "margin"),
            False,
            "`dpo` plus `margin`, plain strings",
            "RewardTrainer (standard preference with margin)",
            llama_factory="as `dpo` (stage rm; `margin` is ignored)",
            trl_trainer="reward",
        ),
        Format(
            "kto-conversational",
            "unpaired",
            ("prompt", "completion", "label"),
            True,
            f"`prompt` and `completion` as {_MSG}, `label` true (desirable) or false",
            "KTOTrainer (conversational unpaired preference)",
            trl_trainer="kto",
        ),
        Format(
            "kto",
            "unpaired",
            ("prompt", "completion", "label"),
            False,
            "`prompt`, `completion` as plain strings, `label` true or false",
            "KTOTrainer (standard unpaired preference)",
            llama_factory='dataset_info.json: "columns": {"prompt": "prompt", "response":'
            ' "completion", "kto_tag": "label"} (stage kto)',
            axolotl="`rl: kto`, a user-defined type with `field_prompt: prompt`,"
            " `field_completion: completion`, `field_label: label`",
            trl_trainer="kto",
        ),
        Format(
            "openai-dpo",
            "preference",
            ("input", "preferred_output", "non_preferred_output"),
            True,
            "`input` {messages}, `preferred_output` and `non_preferred_output` (one assistant"
            " message each), JSONL only",
            "",
            openai="preference (DPO) fine-tuning: upload the .jsonl as it is",
            jsonl_only=True,
        ),
    )
}

ALL: dict[str, Format] = {**SFT, **PREFERENCE}

SFTFormat = Literal[
    "messages",
    "openai",
    "prompt-completion-conversational",
    "prompt-completion",
    "alpaca",
    "sharegpt",
    "classification",
    "data",
]
PreferenceFormat = Literal[
    "dpo-conversational",
    "dpo",
    "reward-conversational",
    "reward",
    "kto-conversational",
    "kto",
    "openai-dpo",
]
assert set(get_args(SFTFormat)) == set(SFT) and set(get_args(PreferenceFormat)) == set(PREFERENCE)
AnyFormat = Literal[
    "messages",
    "openai",
    "prompt-completion-conversational",
    "prompt-completion",
    "alpaca",
    "sharegpt",
    "classification",
    "data",
    "dpo-conversational",
    "dpo",
    "reward-conversational",
    "reward",
    "kto-conversational",
    "kto",
    "openai-dpo",
]
assert get_args(AnyFormat) == (*get_args(SFTFormat), *get_args(PreferenceFormat))


def help_text(formats: dict[str, Format]) -> str:
    """A paragraph per format for a command's --help: what it holds, which trainers read it.
    (`\\b` keeps click from rewrapping each paragraph.)"""
    blocks = []
    for f in formats.values():
        lines = [f"{f.name}: {f.summary}"]
        lines += [f"  {who}: {how}" for who, how in f.trainers()]
        blocks.append("\b\n" + "\n".join(lines))
    return "\n\n".join(blocks)


def markdown_table(formats: dict[str, Format]) -> str:
    """The README's table: one row per format."""
    rows = [
        "| format | columns | TRL | LLaMA-Factory | Axolotl | OpenAI | other |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in formats.values():
        cols = ", ".join(f"`{c}`" for c in f.columns) or "the record's `data`"
        cells = [f.trl, f.llama_factory, f.axolotl, f.openai, f.other]
        rows.append(
            f"| `{f.name}` | {cols} | " + " | ".join(c or "-" for c in cells).replace("\n", " ")
        )
    return "\n".join(rows)
