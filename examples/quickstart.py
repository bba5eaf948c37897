"""Quickstart with the Python API: load real reviews, train a student, evaluate it, recommend.

    python examples/quickstart.py                          # ~10 CPU minutes: mini student, 200 steps
    python examples/quickstart.py --preset tiny --max_steps 4 --users 24 --output_dir /tmp/quickstart

Reads Amazon All_Beauty_5 from the shared data folder ($RDREC_SHARED, default ../shared). The raw reviews have no
rationales, so the mixture leaves the rationale task out (`rdrec-hf distill` writes them; then use 1:1:1:1).
"""

import argparse

from rdrec_hf import EvaluationConfig, evaluate_model
from rdrec_hf.models.recommending import recommend
from rdrec_hf.training import DataArguments, ModelArguments, RDRecTrainingArguments, train_rdrec


def main(args: argparse.Namespace) -> None:
    trainer, metrics = train_rdrec(
        ModelArguments(model_preset=args.preset),
        DataArguments(dataset="all_beauty", indexing="random", user_limit=args.users),
        RDRecTrainingArguments(
            output_dir=args.output_dir, max_steps=args.max_steps, per_device_train_batch_size=16,
            learning_rate=2e-3, logging_steps=max(1, args.max_steps // 10), save_strategy="no",
            report_to="none", seed=args.seed, task_mixture="1:1:0:1",  # explanation:sequential:rationale:top-N
        ),
    )
    print(f"trained {args.max_steps} steps: loss {metrics['train_loss']:.3f}; model saved to {args.output_dir}")

    model, tokenizer, data = trainer.model, trainer.processing_class, trainer.rec_data
    results = evaluate_model(model, data, tokenizer, EvaluationConfig(tasks=["sequential"], max_users=args.eval_users))
    for system, values in results["sequential"].items():
        if isinstance(values, dict) and "ndcg@10" in values:  # the model and every baseline (not the notes)
            print(f"sequential NDCG@10, {system}: {values['ndcg@10']:.4f}")

    user = data["users"][0]
    for rec in recommend(model, tokenizer, user["items"], user_id=user["user_id"], k=5, explain=True):
        print(f"item {rec.item_id} (asin {rec.original_id}) score {rec.score:.2f}: {rec.explanation}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="mini", help="student size: tiny, mini, small, t5-small")
    parser.add_argument("--max_steps", type=int, default=200)
    parser.add_argument("--users", type=int, default=None, help="keep only the first N users (quick runs)")
    parser.add_argument("--eval_users", type=int, default=100)
    parser.add_argument("--output_dir", default="runs/quickstart")
    parser.add_argument("--seed", type=int, default=42)
    main(parser.parse_args())
