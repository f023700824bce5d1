"""Robustness: seeded perturbations of the evaluation texts (flip rate with a Wilson CI, accuracy change,
examples) and edge cases scored on their own (one word, deciding words beyond model.max_length, all caps,
emoji only, a few non-English texts)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tunesmith.data import perturb
from tunesmith.evaluation.suite.context import Context, Result, clip, proportion_ci, sample_index
from tunesmith.findings import Finding

EXAMPLES = 5
EDGE_MAX = 50
EMOJI = ["😀", "😡😡😡", "👍", "💊🤢", "😭😭", "🙂🙃", "❤️", "🔥🔥🔥", "🤔", "😴💤"]
NON_ENGLISH = [
    "Este medicamento me ayudó mucho, ya no tengo dolor.", "Me dio náuseas terribles y no funcionó.",
    "Das Medikament hat mir sehr geholfen, keine Nebenwirkungen.", "Schreckliche Kopfschmerzen, nie wieder.",
    "Ce médicament a changé ma vie, je dors enfin.", "Aucun effet après trois semaines, très déçu.",
    "Dit medicijn werkt prima, ik voel me beter.", "Questo farmaco mi ha fatto stare malissimo.",
]  # fmt: skip


def _shares(probs: np.ndarray, labels: list[str]) -> dict[str, Any]:
    pred = probs.argmax(axis=1)
    return {"n": int(len(pred)), "mean_confidence": float(probs.max(axis=1).mean()) if len(pred) else None,
            "predicted": {name: int(np.sum(pred == i)) for i, name in enumerate(labels)}}  # fmt: skip


def perturbations(ctx: Context) -> dict[str, perturb.Perturb]:
    found = dict(perturb.PERTURBATIONS)
    values = sorted({v for column in ctx.eval_set.slices.values() for v in column if v})
    if len(values) >= 2:  # e.g. a condition named in a review swapped for another condition of the data
        found["value_swap"] = perturb.value_swap(values)
    return found


def check_robustness(ctx: Context) -> tuple[Result, list[Finding]]:
    data, labels = ctx.eval_set, ctx.labels
    base = ctx.probs()
    base_pred = base.argmax(axis=1)
    y = data.labels
    # Each perturbation predicts its share of these texts again: eval.perturb_examples bounds that cost.
    pool = sample_index(y, ctx.cfg.perturb_examples, ctx.seed).tolist()
    changed: dict[str, list[tuple[int, str]]] = {}
    for index, (name, fn) in enumerate(perturbations(ctx).items()):
        rng = np.random.default_rng(ctx.seed + index)
        changed[name] = [(i, new) for i in pool if (new := fn(data.texts[i], rng)) != data.texts[i]]
    # One prediction call for every perturbed text the model can tell from its original.
    edited = [(i, t) for pairs in changed.values() for i, t in pairs]
    probs_all, unchanged = predict_changed(
        ctx, [data.texts[i] for i, _ in edited], [t for _, t in edited], base[[i for i, _ in edited]]
    )
    results: dict[str, Any] = {}
    offset = 0
    for name, pairs in changed.items():
        if not pairs:
            results[name] = {
                "applicable": 0,
                "flip_rate": None,
                "note": "no evaluation text has anything to change",
            }
            continue
        rows = np.asarray([i for i, _ in pairs])
        pred = probs_all[offset : offset + len(pairs)].argmax(axis=1)
        same = int(unchanged[offset : offset + len(pairs)].sum())
        offset += len(pairs)
        flipped = pred != base_pred[rows]
        examples = [{"row": data.rows[int(r)], "original": clip(data.texts[int(r)]), "perturbed": clip(t),
                     "label": labels[int(y[r])], "before": labels[int(base_pred[r])], "after": labels[int(p)]}
                    for (r, t), p, f in zip(pairs, pred, flipped, strict=True) if f][:EXAMPLES]  # fmt: skip
        results[name] = {
            "applicable": len(rows), "flips": int(flipped.sum()), "flip_rate": float(flipped.mean()),
            "flip_rate_ci": proportion_ci(int(flipped.sum()), len(rows)),
            "accuracy_before": float(np.mean(base_pred[rows] == y[rows])),
            "accuracy_after": float(np.mean(pred == y[rows])),
            "augment_op": perturb.AUGMENT_OP.get(name), "examples": examples,
            "same_model_input": same,  # edited texts the tokenizer turns into the original's tokens
        }  # fmt: skip
        results[name]["accuracy_change"] = results[name]["accuracy_after"] - results[name]["accuracy_before"]
    result: Result = {"split": data.name, "n": len(data), "perturbed_texts": len(pool), "seed": ctx.seed,
                      "perturbations": results,
                      "edge_cases": edge_cases(ctx, base)}  # fmt: skip
    return result, _findings(results, ctx)


def predict_changed(
    ctx: Context, originals: list[str], edited: list[str], original_probs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of the edited texts; where the model's input is unchanged (an uncased tokenizer reads
    'GOOD' as 'good', extra spaces vanish, an edit past model.max_length is cut off) the original's
    probabilities are reused instead of predicted again: the same input gives the same output.
    Returns (probabilities, which edited texts the model reads as their original)."""
    tok, out = ctx.handle.tokenizer, original_probs.copy()
    same = np.zeros(len(edited), dtype=bool)
    if not edited:
        return out, same
    if tok is None:
        return ctx.handle.predict(edited), same
    encode = lambda texts: tok(texts, truncation=True, max_length=ctx.handle.max_length)["input_ids"]  # noqa: E731
    differs = [i for i, (a, b) in enumerate(zip(encode(originals), encode(edited), strict=True)) if a != b]
    same[:] = True
    same[differs] = False
    if differs:
        out[differs] = ctx.handle.predict([edited[i] for i in differs])
    return out, same


def edge_cases(ctx: Context, base: np.ndarray) -> dict[str, Any]:
    data, labels, predict = ctx.eval_set, ctx.labels, ctx.handle.predict
    base_pred = base.argmax(axis=1)
    rng = np.random.default_rng(ctx.seed)
    n = min(EDGE_MAX, len(data))
    rows = np.sort(rng.choice(len(data), size=n, replace=False)) if n else np.zeros(0, dtype=int)
    out: dict[str, Any] = {}
    words = [w for w in (data.texts[int(r)].split() for r in rows) if w]
    one_word = [ws[int(rng.integers(len(ws)))] for ws in words]
    if one_word:
        out["one_word"] = {**_shares(predict(one_word), labels), "examples": one_word[:EXAMPLES]}
    # The original text at the end, behind filler words from the other texts: past max_length, it is cut off.
    filler = " ".join(t for t in data.texts if t).split() or ["filler"]
    need = 2 * ctx.handle.max_length
    long = [" ".join((filler * (need // len(filler) + 1))[:need]) + " " + data.texts[int(r)] for r in rows]
    if long:
        pred = predict(long).argmax(axis=1)
        out["deciding_words_at_end"] = {
            "n": n, "prefix_words": need, "accuracy": float(np.mean(pred == data.labels[rows])),
            "accuracy_original": float(np.mean(base_pred[rows] == data.labels[rows])),
            "note": f"each text behind {need} filler words, beyond model.max_length = {ctx.handle.max_length} tokens",
        }  # fmt: skip
        originals = [data.texts[int(r)] for r in rows]
        caps = predict_changed(ctx, originals, [t.upper() for t in originals], base[rows])[0].argmax(axis=1)
        out["all_caps"] = {"n": n, "accuracy": float(np.mean(caps == data.labels[rows])),
                           "accuracy_original": out["deciding_words_at_end"]["accuracy_original"]}  # fmt: skip
    out["emoji_only"] = {**_shares(predict(EMOJI), labels), "examples": EMOJI[:EXAMPLES]}
    probs = predict(NON_ENGLISH)
    out["non_english"] = {**_shares(probs, labels),
                          "examples": [{"text": t, "pred": labels[int(p.argmax())], "confidence": float(p.max())}
                                       for t, p in zip(NON_ENGLISH, probs, strict=True)]}  # fmt: skip
    return out


def _findings(results: dict[str, Any], ctx: Context) -> list[Finding]:
    fragile = {k: v for k, v in results.items() if v.get("flip_rate") is not None
               and v["flip_rate"] > ctx.cfg.flip_rate_warn}  # fmt: skip
    if not fragile:
        return []
    worst = max(fragile, key=lambda k: fragile[k]["flip_rate"])
    ops = sorted({v["augment_op"] for v in fragile.values() if v["augment_op"]})
    patch = {"data.augment.ops": ["delete", "swap", *ops], "data.augment.classes": "all"} if ops else None
    listed = ", ".join(
        f"{k} {v['flip_rate']:.0%}" for k, v in sorted(fragile.items(), key=lambda kv: -kv[1]["flip_rate"])
    )
    fix = (f"Train on the same perturbations: data.augment with ops {', '.join(ops)} adds perturbed copies of "
           "the training rows." if ops else "Add training examples written the way these perturbations write them.")  # fmt: skip
    return [Finding(
        id="evaluation.robustness", stage="evaluation", severity="warning",
        title=f"Predictions flip under small edits: {listed} (warn above {ctx.cfg.flip_rate_warn:.0%})",
        evidence={k: {"flip_rate": v["flip_rate"], "flip_rate_ci": v["flip_rate_ci"], "applicable": v["applicable"],
                      "accuracy_change": v["accuracy_change"]} for k, v in fragile.items()} | {"worst": worst},
        recommendation=fix, config_patch=patch,
    )]  # fmt: skip
