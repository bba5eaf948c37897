"""Recommend from a saved student alone: the checkpoint carries its catalog (item ids -> asins).

    python examples/recommend_with_checkpoint.py runs/demo/model --history 12 40 7 --user 5 -k 5

`from_pretrained` also accepts a Hub id; after `import rdrec_hf`, `AutoModelForSeq2SeqLM` works too, and
without the package `trust_remote_code=True` loads the code saved beside the weights.
"""

import argparse

from rdrec_hf import RDRecForConditionalGeneration, load_tokenizer
from rdrec_hf.models.item_decoding import DEFAULT_TOP_K
from rdrec_hf.models.recommending import recommend


def main(args: argparse.Namespace) -> None:
    model = RDRecForConditionalGeneration.from_pretrained(args.model)
    tokenizer = load_tokenizer(args.model)
    print(f"catalog: {len(model.item_index.item_ids)} items ({model.item_index.indexing.value} indexing)")
    for rank, rec in enumerate(recommend(model, tokenizer, args.history, user_id=args.user, k=args.k), 1):
        print(f"{rank}. item {rec.item_id} (asin {rec.original_id}), log-likelihood {rec.score:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a trained student folder or Hub id")
    parser.add_argument("--history", nargs="+", required=True, help="item ids, oldest first")
    parser.add_argument("--user", default=None, help="user id (default: an anonymous user)")
    parser.add_argument("-k", type=int, default=DEFAULT_TOP_K)
    main(parser.parse_args())
