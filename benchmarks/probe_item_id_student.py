"""Probe: which difference between the library's student and a plain T5 costs learning speed (beauty, leak-free).

A short training loop of its own (AdamW, batch 256, constant lr after 100 warm-up steps, gradient norm 1.0,
one random segment per user per pass, start uniform then end uniform after it, a process-CPU-time budget on
one thread), then exact one-step ranking of the 12,101 items (history excluded) for the 5,000 test users of
`recipes/beauty/evaluation/config_item_ids.yaml`. `--mode lib` trains the library's student (the recipe's
`mini` preset narrowed as in config_item_ids.yaml, independent ids, SVD start); `--mode plain` a plain
`T5ForConditionalGeneration` of the same size whose vocabulary is the items (plus pad/EOS), as the probe of
`../shared/notes/student-learning.md`. The switches take one difference out at a time. Example (BENCHMARKS.md,
"item-id schemes"):

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/probe_item_id_student.py --mode lib --prompt history --no-eos --minutes 10
"""
import argparse
import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from transformers import T5Config, T5ForConditionalGeneration

from rdrec_hf.data import split_target, training_history
from rdrec_hf.data.item_graph import svd_item_embeddings
from rdrec_hf.data.schema import item_id_scheme
from rdrec_hf.models.prompting import encode_prompts, mention_list, pad_sequences, prompt_for, sample_prompt
from rdrec_hf.evaluation.evaluator import sample_users
from rdrec_hf.evaluation.ranking import ranking_metrics
from rdrec_hf.models import ItemIndex
from rdrec_hf.models.tasks import Task
from rdrec_hf.data.loading import DataArguments, load_training_data
from rdrec_hf.training.rdrec_config import ModelArguments
from rdrec_hf.training.student import build_student, init_item_embeddings, load_student_tokenizer

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("--mode", choices=["lib", "plain"], default="lib", help="the library's student or a plain T5")
p.add_argument("--prompt", choices=["template", "history", "userhistory"], default="template",
               help="lib: the library's templates, the history's item tokens alone, or user_<id> + history")
p.add_argument("--minutes", type=float, default=10, help="training budget in process CPU minutes")
p.add_argument("--lr", type=float, default=3e-3)
p.add_argument("--seed", type=int, default=42)
p.add_argument("--overrides", default="d_model=64,d_ff=256,num_heads=2,d_kv=32", help="lib: config overrides")
p.add_argument("--out", default=None, help="JSON file for the result")
p.add_argument("--svd-scale", type=float, default=1.0, help="factor on the SVD start of the item rows")
p.add_argument("--no-ww", action="store_true", help="lib: whole-word ids all 0")
p.add_argument("--no-eos", action="store_true", help="lib: target the item token alone (as the library does)")
p.add_argument("--pad-vocab", type=int, default=0, help="plain: this many unused rows before the items")
args = p.parse_args()
torch.set_num_threads(1)
torch.manual_seed(args.seed)

data = load_training_data(DataArguments(dataset="beauty", indexing="independent", dataset_seed=0))
scheme = item_id_scheme(data)
item_ids = list(data["items"]["item_id"])
pos = {item: i for i, item in enumerate(item_ids)}
users = list(data["users"])
N = len(item_ids)

if args.mode == "lib":
    margs = ModelArguments(model_preset="mini", config_overrides=args.overrides, item_embedding_init="svd")
    tok = load_student_tokenizer(margs)
    scheme.add_tokens(tok, item_ids)
    index = ItemIndex.from_catalog(item_ids, tok, original_ids=data["items"]["original_id"], scheme=scheme)
    model = build_student(margs, tok, args.seed, False, index)
    init_item_embeddings(model, data, index, "svd", args.seed)
    item_token_ids = torch.tensor(index.item_token_ids)
    with torch.no_grad():
        model.get_input_embeddings().weight[item_token_ids] *= args.svd_scale
    def source(user_id, history, rng=None):
        if args.prompt == "history":
            return mention_list(history[-20:], scheme)
        if args.prompt == "userhistory":
            return f"user_{user_id} " + mention_list(history[-20:], scheme)
        if rng is None:
            return prompt_for(Task.SEQUENTIAL, user_id=user_id, history=history, scheme=scheme)
        return sample_prompt(rng, Task.SEQUENTIAL, user_id=user_id, history=history, scheme=scheme)
    def encode(sources, targets=None):
        batch = encode_prompts(tok, sources, 128, return_tensors="pt")
        batch["task_id"] = torch.full((len(sources),), int(Task.SEQUENTIAL))
        if args.no_ww:
            batch["whole_word_ids"] = torch.zeros_like(batch["whole_word_ids"])
        if targets is not None:
            labels = pad_sequences([[int(item_token_ids[pos[t]])] + ([] if args.no_eos else [tok.eos_token_id]) for t in targets], -100)
            batch["labels"] = labels
        return batch
else:
    OFF = 2 + args.pad_vocab
    cfg = T5Config(vocab_size=N + OFF, d_model=64, d_ff=256, num_layers=2, num_decoder_layers=2, num_heads=2, d_kv=32,
                   dropout_rate=0.1, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    model = T5ForConditionalGeneration(cfg)
    histories = [[pos[i] for i in training_history(u["items"])] for u in users]
    emb = model.get_input_embeddings().weight
    f = torch.from_numpy(svd_item_embeddings(histories, N, 64, args.seed))
    f = f * (emb.detach().std() / f.std()) * args.svd_scale
    with torch.no_grad():
        emb[OFF:] = f
    item_token_ids = torch.arange(OFF, N + OFF)
    def source(user_id, history, rng=None):
        return history[-20:]
    def encode(sources, targets=None):
        ids = pad_sequences([[pos[i] + OFF for i in s] + [1] for s in sources], 0)
        batch = {"input_ids": ids, "attention_mask": (ids != 0).long()}
        if targets is not None:
            batch["labels"] = torch.tensor([[pos[t] + OFF] for t in targets])
        return batch

opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 100))
rng = random.Random(args.seed)
train_units = [(u["user_id"], training_history(u["items"])) for u in users]
start = time.process_time(); step = 0; losses = []
model.train()
first=True
while time.process_time() - start < args.minutes * 60:
    order = rng.sample(range(len(train_units)), len(train_units))
    for b in range(0, len(order) - 255, 256):
        srcs, tgts = [], []
        for i in order[b:b + 256]:
            uid, hist = train_units[i]
            s = rng.randrange(len(hist) - 1); e = rng.randrange(s + 1, len(hist))
            srcs.append(source(uid, hist[s:e], rng)); tgts.append(hist[e])
        loss = model(**encode(srcs, tgts)).loss
        if first: print("initial loss", loss.item(), flush=True); first=False
        loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(); sched.step(); opt.zero_grad(); step += 1
        losses.append(loss.item())
        if step % 100 == 0:
            print(f"step {step} loss {np.mean(losses[-100:]):.3f} cpu {time.process_time()-start:.0f}s", flush=True)
        if time.process_time() - start >= args.minutes * 60:
            break

model.eval()
kept = set(sample_users([u["user_id"] for u in users], 5000, 0))
test = [u for u in users if u["user_id"] in kept]
ranked, targets = [], []
with torch.no_grad():
    for b in range(0, len(test), 128):
        chunk = test[b:b + 128]
        hs = [split_target(u["items"], "test") for u in chunk]
        batch = encode([source(u["user_id"], h) for u, (h, _) in zip(chunk, hs)])
        batch.pop("labels", None)
        dec = torch.full((len(chunk), 1), model.config.decoder_start_token_id)
        logits = model(**batch, decoder_input_ids=dec).logits[:, 0, item_token_ids]
        for row, (h, t) in zip(range(len(chunk)), hs):
            logits[row, [pos[i] for i in h]] = -math.inf
        top = logits.topk(10).indices.tolist()
        ranked += [[item_ids[j] for j in r] for r in top]; targets += [t for _, t in hs]
m = ranking_metrics(ranked, targets)
res = {"args": vars(args), "steps": step, "loss_last100": float(np.mean(losses[-100:])), "metrics": m}
print(json.dumps(res))
if args.out:
    Path(args.out).write_text(json.dumps(res))
