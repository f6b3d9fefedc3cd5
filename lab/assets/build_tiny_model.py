"""Build the lab's tiny chat models offline, straight into an HF hub cache.

Runs inside the studio rootfs with the optillm-local venv's Python (it needs torch,
transformers and tokenizers, which only that venv has). Usage:

    build_tiny_model.py HUB_CACHE ORG/NAME=REPLYWORD [ORG/NAME=REPLYWORD ...]

The weights are set by hand, not trained: the model answers every prompt with
"pong <REPLYWORD>" and then stops. Random weights would babble up to max_tokens (4096 by
default in optillm), which is slow and can overrun the position table; a fixed answer
also lets tests see which instance replied.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

# torch, tokenizers and transformers exist only in the studio venv this script runs in.
import torch  # type: ignore[import-not-found]
from tokenizers import (  # type: ignore[import-not-found]
    Tokenizer,
    models,
    pre_tokenizers,
    trainers,
)
from transformers import (  # type: ignore[import-not-found]
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedTokenizerFast,
)

SPECIALS = ["<unk>", "<eos>", "<pad>"]
WORDS = ["user", "assistant", "system", ":", "pong", "ping", "hi", "hello", "test"]
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}assistant : {% endif %}"
)


def build(hub: Path, model_id: str, reply: str) -> Path:
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))  # noqa: S106 - a token, no secret
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    corpus = [" ".join([*WORDS, reply])] * 4
    tok.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=SPECIALS))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, **{"unk_token": "<unk>", "eos_token": "<eos>",
                                 "pad_token": "<pad>", "bos_token": "<eos>"},
    )
    fast.chat_template = CHAT_TEMPLATE
    vocab = fast.get_vocab()
    size = len(vocab)
    eos, pong, word = vocab["<eos>"], vocab["pong"], vocab[reply]
    width = max(32, size)

    cfg = GPT2Config(
        vocab_size=size, n_positions=1024, n_embd=width, n_layer=1, n_head=2,
        bos_token_id=eos, eos_token_id=eos, pad_token_id=vocab["<pad>"],
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        tie_word_embeddings=False,
    )
    # A freshly constructed model is in training mode, where dropout zeroes the one-hot
    # embedding now and then and the next token becomes a coin toss; that made this build's
    # self-check fail at random. No dropout, and eval mode.
    model = GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        # Token i embeds as the i-th unit vector; positions add nothing; the block's output
        # projections are zero, so the final hidden state is the current token alone.
        model.transformer.wte.weight[:, :size] = torch.eye(size)
        for ln in (model.transformer.h[0].ln_1, model.transformer.h[0].ln_2,
                   model.transformer.ln_f):
            ln.weight.fill_(1.0)
        # Next token: anything -> "pong" -> reply word -> <eos>. The scale makes sampling
        # at any sane temperature pick the same token.
        for t in range(size):
            nxt = word if t == pong else eos if t == word else pong
            model.lm_head.weight[nxt, t] = 100.0

    snap_id = hashlib.sha1(model_id.encode()).hexdigest()  # noqa: S324 - a name, not security
    base = hub / ("models--" + model_id.replace("/", "--"))
    snap = base / "snapshots" / snap_id
    snap.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(snap)
    model.save_pretrained(snap)
    model.generation_config.save_pretrained(snap)
    (base / "refs").mkdir(exist_ok=True)
    (base / "refs" / "main").write_text(snap_id)

    # Self-check: the model must answer "pong <reply>" and stop.
    ids = fast.apply_chat_template([{"role": "user", "content": "ping"}],
                                   add_generation_prompt=True, return_tensors="pt")
    out = model.generate(ids, max_new_tokens=8, do_sample=True, temperature=1.0)
    text = fast.decode(out[0][ids.shape[1]:], skip_special_tokens=True).strip()
    if text != f"pong {reply}":
        raise SystemExit(f"{model_id}: self-check answered {text!r}")
    return snap


def main() -> None:
    hub = Path(sys.argv[1])
    for arg in sys.argv[2:]:
        model_id, _, reply = arg.partition("=")
        print(build(hub, model_id, reply))


if __name__ == "__main__":
    main()
