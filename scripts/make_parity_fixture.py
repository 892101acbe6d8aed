"""Makes the transformers parity fixture under tests/fixtures/.

A tiny random GPT-2 language model and a tiny GPT2ForSequenceClassification
(one label), both with a real byte-level BPE tokenizer trained on the HH-RLHF
dialogues in ../shared/data, saved with transformers' own save_pretrained;
then transformers' own outputs for them: logits of one sequence and of a
left-padded batch, greedy continuations (single and batched), and the
classification model's pooled scores for a right-padded batch.

The weights are drawn wider than GPT-2's 0.02 initialiser (and the LayerNorm
parameters are perturbed) so that logits are spread out: greedy parity then
tests the model rather than the tie-breaking of near-equal logits, and a
swapped LayerNorm weight and bias would show.

Run from the repository root (needs torch, transformers, tokenizers):
    python scripts/make_parity_fixture.py
"""

import gzip
import json
import pathlib

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel, PreTrainedTokenizerFast

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
HH = ROOT.parent / "shared" / "data" / "hh-rlhf-harmless" / "test.jsonl.gz"
VOCAB = 2048
EOS = "<|endoftext|>"
GREEDY_NEW = 20


def train_tokenizer():
    with gzip.open(HH, "rt", encoding="utf-8") as f:
        texts = [json.loads(line)["chosen"] for line in f]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    assert tok.get_vocab_size(with_added_tokens=True) == VOCAB
    return tok


def widen(model, std):
    """Redraws every parameter: wide weights, LayerNorms near 1 and 0."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".ln_" in name or "ln_f" in name:
                base = 1.0 if name.endswith("weight") else 0.0
                p.copy_(base + 0.1 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(std * torch.randn_like(p))


def save_dir(model, hf_tok, path):
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    hf_tok.save_pretrained(path)


def left_pad(seqs, pad):
    width = max(len(s) for s in seqs)
    ids = [[pad] * (width - len(s)) + s for s in seqs]
    mask = [[0] * (width - len(s)) + [1] * len(s) for s in seqs]
    return torch.tensor(ids), torch.tensor(mask)


def main():
    torch.manual_seed(0)
    tok = train_tokenizer()
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, bos_token=EOS, pad_token=EOS)
    eos_id = tok.token_to_id(EOS)

    lm_config = GPT2Config(
        vocab_size=VOCAB, n_positions=64, n_embd=64, n_layer=2, n_head=4,
        bos_token_id=eos_id, eos_token_id=eos_id,
    )
    lm = GPT2LMHeadModel(lm_config).eval()
    widen(lm, 0.3)
    save_dir(lm, hf_tok, FIXTURES / "tiny-gpt2")

    texts = [
        "\n\nHuman: What are some pranks with a pen?\n\nAssistant:",
        "Hello, how are you today?",
        "\n\nHuman: Write a short poem about rain.\n\nAssistant: Sure",
    ]
    seqs = [tok.encode(t).ids for t in texts]
    out = {"texts": texts, "ids": seqs, "eos_token_id": eos_id}
    tensors = {}
    with torch.no_grad():
        single = torch.tensor([seqs[0]])
        tensors["single_logits"] = lm(single).logits[0].contiguous()

        # Two rows of different lengths: the shorter one is left-padded.
        ids, mask = left_pad(seqs[:2], eos_id)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        tensors["batch_logits"] = lm(ids, attention_mask=mask, position_ids=positions).logits.contiguous()
        out["batch_ids"] = ids.tolist()
        out["batch_mask"] = mask.tolist()

        # Greedy with no EOS stop, so every row continues GREEDY_NEW tokens.
        lm.generation_config.eos_token_id = None
        lm.generation_config.pad_token_id = eos_id
        greedy = lm.generate(single, max_new_tokens=GREEDY_NEW, do_sample=False, use_cache=True)
        out["greedy_single"] = greedy[0, single.shape[1]:].tolist()
        batch_greedy = lm.generate(ids, attention_mask=mask, max_new_tokens=GREEDY_NEW, do_sample=False, use_cache=True)
        out["greedy_batch"] = batch_greedy[:, ids.shape[1]:].tolist()

        # The smallest gap between the two best logits along the greedy path:
        # parity within 1e-4 decides argmax only if this is well above it.
        full = lm(greedy).logits[0, single.shape[1] - 1:-1]
        top2 = full.topk(2, dim=-1).values
        out["greedy_min_top2_gap"] = float((top2[:, 0] - top2[:, 1]).min())

    rm_config = GPT2Config(
        vocab_size=VOCAB, n_positions=64, n_embd=24, n_layer=2, n_head=2,
        num_labels=1, pad_token_id=eos_id, bos_token_id=eos_id, eos_token_id=eos_id,
    )
    rm = GPT2ForSequenceClassification(rm_config).eval()
    widen(rm, 0.3)
    save_dir(rm, hf_tok, FIXTURES / "tiny-gpt2-rm")
    with torch.no_grad():
        # Right padding: transformers pools at the last non-pad token.
        width = max(len(s) for s in seqs)
        rids = torch.tensor([s + [eos_id] * (width - len(s)) for s in seqs])
        rmask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
        out["rm_scores"] = rm(rids, attention_mask=rmask).logits[:, 0].tolist()

    save_file(tensors, str(FIXTURES / "parity_logits.safetensors"))
    (FIXTURES / "parity.json").write_text(json.dumps(out, indent=1) + "\n")
    print("min top-2 gap on the greedy path:", out["greedy_min_top2_gap"])


if __name__ == "__main__":
    main()
