"""Plant each defect type into otherwise clean data; assert the doctor's precision and recall per type."""

from __future__ import annotations

import random

import numpy as np
import pytest
from audit_synth import LABELS, clean_rows, flagged, precision_recall, table

from tunesmith.audit import run_audit
from tunesmith.config.schema import AuditConfig

CFG = AuditConfig(label_errors=False)


def _audit(tables: dict, cfg: AuditConfig = CFG, **kwargs):  # type: ignore[no-untyped-def]
    return run_audit(tables, cfg, **kwargs).findings


def test_clean_data_has_no_defect_findings() -> None:
    findings = _audit(
        {"train": table("train", clean_rows(400, 1)), "test": table("test", clean_rows(100, 2))}
    )
    assert {f.id for f in findings} <= {"audit.class_imbalance", "audit.length_outliers"}, [
        f.title for f in findings
    ]


def _variant(text: str, rng: random.Random) -> str:
    """The same text after normalisation: other case, doubled / odd whitespace, full-width letters."""
    words = text.split()
    kind = rng.randrange(3)
    if kind == 0:
        return "  ".join(words).upper() + " \n"
    if kind == 1:
        return "\u00a0".join(words).title()  # no-break spaces: whitespace after NFKC
    return " ".join(w.translate({c: c + 0xFEE0 for c in range(0x61, 0x7B)}) for w in words)  # ｆｕｌｌ width


def test_exact_duplicates_after_normalisation() -> None:
    rng = random.Random(3)
    rows = clean_rows(300, 3)
    planted = set()
    for _ in range(30):
        src = rng.randrange(300)
        rows.append((_variant(rows[src][0], rng), rows[src][1]))
        planted.add(len(rows) - 1)
    findings = _audit({"train": table("train", rows)})
    found = flagged(findings, "audit.exact_duplicates")
    assert precision_recall(found, planted) == (1.0, 1.0)
    assert flagged(findings, "audit.conflicting_labels") == set()
    assert flagged(findings, "audit.near_duplicates") == set()  # normalised copies are exact, not near


def _jaccard(a: str, b: str, k: int = 2) -> float:
    def shingles(text: str) -> set[tuple[str, ...]]:
        words = text.lower().split()
        return {tuple(words[i : i + k]) for i in range(len(words) - k + 1)}

    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / len(sa | sb)


def test_near_duplicates() -> None:
    rng = random.Random(4)
    rows = clean_rows(400, 4)
    planted, decoys = set(), set()
    for n, src in enumerate(rng.sample(range(400), 50)):
        words = rows[src][0].split()
        if n < 30:  # a near copy: one word more at an end, or the last word changed (Jaccard >= 0.85)
            if n % 2:
                words.append(rng.choice(["really", "truly", "indeed"]))
            else:
                words[-1] = "indeed"
            planted.add(len(rows))
            assert _jaccard(rows[src][0], " ".join(words)) >= 0.85
        else:  # a decoy: half the words replaced (Jaccard < 0.5), must not be flagged
            words = words[: len(words) // 2] + rng.sample(words, len(words) - len(words) // 2)
            decoys.add(len(rows))
            assert _jaccard(rows[src][0], " ".join(words)) < 0.5
        rows.append((" ".join(words), rows[src][1]))
    findings = _audit({"train": table("train", rows)})
    found = flagged(findings, "audit.near_duplicates")
    precision, recall = precision_recall(found, planted)
    assert precision == 1.0 and recall >= 0.9, (precision, recall)
    assert not found & decoys
    assert flagged(findings, "audit.exact_duplicates") == set()
    finding = next(f for f in findings if f.id == "audit.near_duplicates")
    assert (
        finding.evidence["clusters"] == len(found)
        and min(e["similarity"] for e in finding.evidence["examples"]) >= 0.8
    )


def test_near_duplicate_threshold_is_configurable() -> None:
    rows = clean_rows(100, 5)
    words = rows[0][0].split()
    half = " ".join(words[: len(words) // 2] + ["zzz", "yyy", "xxx", "www"] * 2)  # Jaccard well below 0.8
    rows.append((half, rows[0][1]))
    loose = _audit(
        {"train": table("train", rows)}, AuditConfig(label_errors=False, near_duplicate_threshold=0.3)
    )
    strict = _audit({"train": table("train", rows)})
    assert 100 in flagged(loose, "audit.near_duplicates")
    assert 100 not in flagged(strict, "audit.near_duplicates")


def test_conflicting_labels() -> None:
    rng = random.Random(6)
    rows = clean_rows(300, 6)
    planted = set()
    for src in rng.sample(range(300), 12):
        other = next(label for label in LABELS if label != rows[src][1])
        rows.append((rows[src][0].lower() + "  ", other))
        planted |= {src, len(rows) - 1}  # every copy: nothing says which label is right
    findings = _audit({"train": table("train", rows)})
    assert precision_recall(flagged(findings, "audit.conflicting_labels"), planted) == (1.0, 1.0)
    assert flagged(findings, "audit.exact_duplicates") == set()


def test_leakage_exact_and_near_between_all_splits() -> None:
    rng = random.Random(7)
    train, val, test = clean_rows(400, 7), clean_rows(100, 8), clean_rows(100, 9)
    exact_test, exact_val, near_test = rng.sample(range(400), 30)[:10], rng.sample(range(400), 30)[10:20], []
    for src in exact_test:
        test.append((train[src][0].upper(), train[src][1]))
    for src in exact_val:
        val.append((" " + train[src][0], train[src][1]))
    candidates = [i for i in range(400) if i not in exact_test and i not in exact_val]
    for src in rng.sample(candidates, 10):
        test.append((train[src][0] + " indeed", train[src][1]))
        near_test.append(src)
    val_test = [3, 4, 5]
    for src in val_test:
        test.append((val[src][0], val[src][1]))
    tables = {
        "train": table("train", train),
        "validation": table("validation", val),
        "test": table("test", test),
    }
    findings = _audit(tables)
    by_pair = {
        (f.id, f.evidence["split"], f.evidence["other_split"]): set(f.rows or [])
        for f in findings
        if f.id in ("audit.leakage", "audit.near_leakage")
    }
    assert by_pair[("audit.leakage", "train", "test")] == set(exact_test)
    assert by_pair[("audit.leakage", "train", "validation")] == set(exact_val)
    assert by_pair[("audit.leakage", "validation", "test")] == set(val_test)
    precision, recall = precision_recall(
        by_pair.get(("audit.near_leakage", "train", "test"), set()), set(near_test)
    )
    assert precision == 1.0 and recall >= 0.9, (precision, recall)
    # 20 of 123 test rows leak: far above audit.error_share, so an error that audit.gate=error stops on
    severities = {
        f.severity for f in findings if f.id == "audit.leakage" and f.evidence["other_split"] == "test"
    }
    assert severities == {"error"}


def _hashing_svd_embedder():  # type: ignore[no-untyped-def]
    """A real, cheap embedder: hashed word counts (tf-idf weighted) reduced by truncated SVD."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
    from sklearn.pipeline import make_pipeline

    def embed(texts: list[str]) -> np.ndarray:
        pipe = make_pipeline(
            HashingVectorizer(n_features=2**14, alternate_sign=False), TfidfTransformer(),
            TruncatedSVD(n_components=48, random_state=0),
        )  # fmt: skip
        return np.asarray(pipe.fit_transform(texts), dtype=np.float32)

    return embed


def test_flipped_labels_at_ten_percent_are_found_by_confident_learning() -> None:
    rng = random.Random(10)
    rows = clean_rows(600, 10, shares=(0.4, 0.35, 0.25))
    flipped = set(rng.sample(range(600), 60))
    rows = [
        (text, rng.choice([x for x in LABELS if x != label]) if i in flipped else label)
        for i, (text, label) in enumerate(rows)
    ]
    cfg = AuditConfig(label_errors=True)
    report = run_audit({"train": table("train", rows)}, cfg, embedder=_hashing_svd_embedder())
    precision, recall = precision_recall(flagged(report.findings, "audit.label_errors"), flipped)
    assert precision >= 0.85 and recall >= 0.85, (precision, recall)
    finding = next(f for f in report.findings if f.id == "audit.label_errors")
    assert finding.severity == "warning" and finding.evidence["folds"] == cfg.label_error_folds
    assert report.stats["checks_skipped"] == {}


def test_class_imbalance() -> None:
    rows = clean_rows(400, 11, shares=(0.8, 0.15, 0.05))
    rows.append(("a lone example of a fourth class here", "mixed"))
    findings = _audit({"train": table("train", rows)})
    imbalance = [f for f in findings if f.id == "audit.class_imbalance"]
    assert len(imbalance) == 1
    finding = imbalance[0]
    assert finding.severity == "warning"
    counts = finding.evidence["counts"]
    assert finding.evidence["ratio"] == pytest.approx(max(counts.values()) / min(counts.values()), abs=0.01)
    assert finding.evidence["below_min_count"] == {"mixed": 1}
    weights = finding.evidence["class_weights"]
    assert weights["mixed"] > weights["neutral"] > weights["positive"]
    assert finding.config_patch == {"data.balance": "oversample"}  # ratio far beyond 10
    balanced = _audit({"train": table("train", clean_rows(300, 12, shares=(1, 1, 1)))})
    assert not [f for f in balanced if f.id == "audit.class_imbalance"]


def test_class_imbalance_already_balanced_by_the_run() -> None:
    """A skew of 5 (below the oversampling threshold): class weights already handle it, so nothing to switch on."""
    tables = {"train": table("train", clean_rows(400, 14, shares=(0.7, 0.15, 0.15)))}
    plain, weighted, oversampled = (
        next(f for f in _audit(tables, balance=balance) if f.id == "audit.class_imbalance")
        for balance in (None, "class-weights", "oversample")
    )
    assert plain.severity == "warning" and plain.config_patch == {"train.class_weights": True}
    for handled, balance in ((weighted, "class-weights"), (oversampled, "oversample")):
        assert handled.severity == "info" and handled.config_patch is None
        assert f"already balances it ({balance})" in handled.title
        assert "class_weights: true" not in handled.recommendation
    # a skew beyond 10 is more than class weights can handle: oversampling is still recommended
    severe = {"train": table("train", clean_rows(440, 15, shares=(0.9, 0.05, 0.05 / 1.2)))}
    (finding,) = [f for f in _audit(severe, balance="class-weights") if f.id == "audit.class_imbalance"]
    assert finding.severity == "warning" and finding.config_patch == {"data.balance": "oversample"}


def test_empty_rows() -> None:
    rows: list = clean_rows(200, 13)
    planted = {5, 50, 100, 150}
    for pos, value in zip(sorted(planted), [None, "", "   ", "\t\n"], strict=True):
        rows[pos] = (value, rows[pos][1])
    findings = _audit({"train": table("train", rows)})
    finding = next(f for f in findings if f.id == "audit.empty_texts")
    assert set(finding.rows or []) == planted and finding.severity == "error"
    assert finding.evidence["missing"] == 1 and finding.evidence["whitespace_only"] == 3
    assert 5 not in flagged(findings, "audit.exact_duplicates") | flagged(findings, "audit.short_texts")


def test_mojibake_html_entities_and_control_characters() -> None:
    rng = random.Random(14)
    rows = clean_rows(400, 14)
    # Clean non-ASCII text must not be flagged.
    for i, extra in zip(
        range(0, 40, 4),
        ["naïve café", "Zürich", "日本語のレビュー", "emoji 👍", "São Paulo"] * 2,
        strict=True,
    ):
        rows[i] = (rows[i][0] + " " + extra, rows[i][1])
    positions = rng.sample(range(40, 400), 45)
    entity, mojibake, control = set(positions[:15]), set(positions[15:30]), set(positions[30:])
    for i in entity:
        rows[i] = (rows[i][0] + " I didn&#039;t &amp; won&#39;t", rows[i][1])
    for i in mojibake:
        rows[i] = ("café déjà vu".encode().decode("latin-1") + " " + rows[i][0], rows[i][1])  # cafÃ© dÃ©jÃ
    for i in control:
        rows[i] = (rows[i][0].replace(" ", "\x00 ", 1), rows[i][1])
    findings = _audit({"train": table("train", rows)})
    for finding_id, planted in (("audit.html_entities", entity), ("audit.mojibake", mojibake),
                                ("audit.control_characters", control)):  # fmt: skip
        assert precision_recall(flagged(findings, finding_id), planted) == (1.0, 1.0), finding_id
    example = next(f for f in findings if f.id == "audit.mojibake").evidence["examples"][0]
    assert example["repaired"].startswith("café déjà vu") and example["text"].startswith("cafÃ©")


def test_label_sets_that_differ_between_splits() -> None:
    train = clean_rows(200, 15)
    test = clean_rows(50, 16, shares=(1, 1, 0)) + [("a text with a label train never saw", "sarcastic")]
    findings = _audit({"train": table("train", train), "test": table("test", test)})
    sets = [f for f in findings if f.id == "audit.label_sets"]
    assert {f.severity for f in sets} == {"error", "warning"}
    error = next(f for f in sets if f.severity == "error")
    assert error.evidence["unseen"] == ["sarcastic"] and error.rows == [50]
    warning = next(f for f in sets if f.severity == "warning")
    assert warning.evidence["absent"] == ["neutral"]


def test_short_long_and_truncated_texts_with_the_tokenizer(tiny_model) -> None:  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    rows = clean_rows(200, 17)
    rows[10] = ("ok", rows[10][1])
    rows[20] = (" ".join([rows[20][0]] * 12), rows[20][1])  # ~200 words, far beyond 64 tokens
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    report = run_audit({"train": table("train", rows)}, CFG, tokenizer=tokenizer, max_length=64)
    assert flagged(report.findings, "audit.short_texts") == {10}
    assert 20 in flagged(report.findings, "audit.length_outliers")
    truncated = next(f for f in report.findings if f.id == "audit.truncation")
    lengths = [len(tokenizer(t)["input_ids"]) for t, _ in rows]
    assert set(truncated.rows or []) == {i for i, n in enumerate(lengths) if n > 64}
    assert truncated.evidence["counted_with"] == "tokenizer"
    assert report.stats["splits"]["train"]["tokens_max"] == max(lengths)


def test_large_splits_tokenize_a_sample_plus_every_text_that_may_be_cut(tiny_model, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    from tunesmith.audit import context

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    rows = clean_rows(300, 19)
    for i in range(0, 300, 25):  # 12 texts of 3-4 times the usual length: beyond 64 tokens
        rows[i] = (" ".join([rows[i][0]] * (3 + i % 2)), rows[i][1])
    lengths = np.array([len(tokenizer(t)["input_ids"]) for t, _ in rows])
    full = run_audit({"train": table("train", rows)}, CFG, tokenizer=tokenizer, max_length=64)
    monkeypatch.setattr(context, "EXACT_TOKEN_ROWS", 100)
    monkeypatch.setattr(context, "TOKEN_SAMPLE", 60)
    sampled = run_audit({"train": table("train", rows)}, CFG, tokenizer=tokenizer, max_length=64)
    truncated = set(np.nonzero(lengths > 64)[0].tolist())
    assert len(truncated) >= 10
    for report in (full, sampled):
        assert flagged(report.findings, "audit.truncation") == truncated
        assert report.stats["splits"]["train"]["tokens_max"] == lengths.max()
    stats = sampled.stats["splits"]["train"]
    assert stats["tokens_sampled"] == 60 and full.stats["splits"]["train"]["tokens_sampled"] == 300
    assert abs(stats["tokens_median"] - np.median(lengths)) <= 0.15 * np.median(lengths)


def test_group_values_garbled_rare_and_shifted() -> None:
    rng = random.Random(18)
    rows = clean_rows(600, 18)
    rows = [(t + (" bipolar disorder" if i % 3 == 0 else ""), label) for i, (t, label) in enumerate(rows)]
    groups: list[str | None] = [rng.choice(["Acne", "Migraine", "Bipolar Disorder"]) for _ in rows]
    garbled = {3: "Bipolar Disorde", 7: "12</span> users found this comment helpful.", 9: None, 11: "1234"}
    for pos, value in garbled.items():
        groups[pos] = value
    rare = {13: "Hiccups"}
    groups[13] = "Hiccups"
    for i in range(500, 600):  # one group with a label mix far from the rest
        groups[i], rows[i] = "Insomnia", (rows[i][0], "negative")
    findings = _audit({"train": table("train", rows, groups)})
    assert flagged(findings, "audit.group_values") == set(garbled)
    assert flagged(findings, "audit.rare_groups") == set(rare)
    shift = next(f for f in findings if f.id == "audit.group_label_shift")
    assert [g["group"] for g in shift.evidence["groups"]] == ["Insomnia"]


def test_few_examples_per_class_recommends_setfit() -> None:
    few = _audit({"train": table("train", clean_rows(45, 13, shares=(1, 1, 1)))})
    (finding,) = [f for f in few if f.id == "audit.few_examples"]
    assert finding.config_patch == {"strategy.name": "setfit"} and "zero-shot" in finding.recommendation
    assert max(finding.evidence["counts"].values()) <= 32
    tiny_class = clean_rows(400, 11, shares=(0.5, 0.5, 0.0)) + [("a lone example of a new class", "mixed")]
    (finding,) = [f for f in _audit({"train": table("train", tiny_class)}) if f.id == "audit.few_examples"]
    assert finding.evidence["below_min_count"] == {"mixed": 1} and finding.config_patch is None
    plenty = _audit({"train": table("train", clean_rows(300, 12, shares=(1, 1, 1)))})
    assert not [f for f in plenty if f.id == "audit.few_examples"]
