"""The data doctor for images: the same Finding shape and AuditReport as the text checks.

Checks: unreadable files; exact duplicates (a hash of the decoded RGB pixels, so a PNG and its re-encoded
copy match, and one image with two labels is a conflict); near duplicates (a 64-bit difference hash: the
sign of horizontal brightness steps on a 9x8 greyscale thumbnail, robust to resizing, re-compression and
mild brightness changes; Hamming distance <= NEAR_BITS); leakage of both kinds between train and the other
splits; size, aspect-ratio and channel outliers (a grayscale image in an RGB set); class imbalance (the text
check, unchanged); likely label errors by confident learning on the backbone's embeddings (the text check's
out-of-fold core, on the pooled features of the pre-trained model).

dHash is computed in numpy rather than with the `imagehash` package: it is ten lines, and the package
would add PyWavelets for one function.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from PIL import Image

from tunesmith.audit.checks.imbalance import class_imbalance
from tunesmith.audit.checks.label_errors import find_label_issues, out_of_fold_probabilities
from tunesmith.audit.context import make_finding, plural
from tunesmith.audit.report import AuditReport
from tunesmith.config.schema import AuditConfig
from tunesmith.data.images import ERROR, HEIGHT, MODE, WIDTH
from tunesmith.data.types import LABEL, ROW, TEXT, Table
from tunesmith.findings import SEVERITY_ORDER, Finding

NEAR_BITS = 4  # of 64: the usual dHash threshold for "the same picture"
THUMB, NEAR_CORRELATION = 32, 0.99  # confirmed by the correlation of 32x32 grey thumbnails
SIZE_FACTOR = 3.0  # an image this many times smaller or larger (area) than the median is an outlier
ASPECT_FACTOR = 1.5


def dhash(image: Image.Image) -> int:
    grey = np.asarray(image.convert("L").resize((9, 8), Image.Resampling.LANCZOS), dtype=np.int16)
    bits = (grey[:, 1:] > grey[:, :-1]).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def _fingerprints(paths: list[str], errors: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    exact, near = [], np.zeros(len(paths), dtype=np.uint64)
    thumbs = np.zeros((len(paths), THUMB * THUMB), dtype=np.float32)
    for i, (path, error) in enumerate(zip(paths, errors, strict=True)):
        if error:
            exact.append(f"unreadable:{i}")
            continue
        with Image.open(path) as image:
            rgb = image.convert("RGB")
        exact.append(hashlib.blake2b(repr(rgb.size).encode() + rgb.tobytes(), digest_size=16).hexdigest())
        near[i] = dhash(rgb)
        thumbs[i] = np.asarray(rgb.convert("L").resize((THUMB, THUMB), Image.Resampling.BILINEAR)).ravel()
    return exact, near, thumbs


def _popcount(x: np.ndarray) -> np.ndarray:
    return np.unpackbits(x.view(np.uint8).reshape(*x.shape, 8), axis=-1).sum(-1)


def _correlation(x: np.ndarray, ys: np.ndarray) -> np.ndarray:
    xc, yc = x - x.mean(), ys - ys.mean(1, keepdims=True)
    return (yc @ xc) / (np.linalg.norm(yc, axis=1) * np.linalg.norm(xc) + 1e-9)


def _near_pairs(
    a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], same: bool
) -> list[tuple[int, int]]:
    """Pairs within NEAR_BITS of each other's dHash, confirmed on thumbnails: on small images with flat
    backgrounds (digits, scans) different pictures often share a dHash; a resized or re-encoded copy
    correlates above 0.999 with its original, two different handwritten 1s at most about 0.99."""
    pairs = []
    for i in range(len(a[0])):
        dist = _popcount(np.bitwise_xor(a[0][i], b[0]))
        hits = np.nonzero(dist <= NEAR_BITS)[0]
        hits = hits[_correlation(a[1][i], b[1][hits]) >= NEAR_CORRELATION]
        pairs += [(i, int(j)) for j in hits if not same or j > i]
    return pairs


def image_audit(
    tables: dict[str, Table], cfg: AuditConfig, *, balance: str | None = None, embed: Any = None
) -> AuditReport:
    """Every image check over `tables`; `embed(paths) -> [n, d]` enables the label-error check."""
    findings: list[Finding] = []
    prints: dict[str, tuple[list[str], np.ndarray, np.ndarray]] = {}
    for name, table in tables.items():
        frame = table.frame
        errors = frame[ERROR].tolist()
        bad = [i for i, e in enumerate(errors) if e]
        if bad:
            findings.append(make_finding(
                "unreadable_images", "error", f"{plural(len(bad), 'unreadable image')} in {name}",
                {"split": name, "files": [frame[TEXT].iat[i] for i in bad[:10]], "errors": [errors[i] for i in bad[:10]]},
                [int(frame[ROW].iat[i]) for i in bad], "Replace or remove these files; training refuses them.",
            ))  # fmt: skip
        prints[name] = _fingerprints(frame[TEXT].tolist(), errors)
        findings += _duplicates(name, table, *prints[name])
        findings += _outliers(name, table)
    for name in tables:
        if name != "train":
            findings += _leakage(name, tables, prints)
    labels = {n: t.frame[LABEL].to_numpy() for n, t in tables.items()}
    ctx = SimpleNamespace(tables=tables, labels=labels, splits=list(tables), cfg=cfg, balance=balance)
    findings += class_imbalance(ctx)  # type: ignore[arg-type]
    if cfg.label_errors and embed is not None:
        findings += _label_errors(tables["train"], embed, cfg)
    findings.sort(key=lambda f: -SEVERITY_ORDER[f.severity])
    stats = {
        "splits": {n: {"path": t.path, "rows": len(t.frame), "labels": dict(Counter(t.frame[LABEL]))}
                   for n, t in tables.items()},
        "checks_run": ["unreadable_images", "exact_duplicates", "near_duplicates", "leakage", "image_outliers",
                       "class_imbalance"] + (["label_errors"] if cfg.label_errors and embed else []),
    }  # fmt: skip
    return AuditReport(findings, stats)


def _duplicates(
    name: str, table: Table, exact: list[str], near: np.ndarray, thumbs: np.ndarray
) -> list[Finding]:
    frame, out = table.frame, []
    groups: dict[str, list[int]] = defaultdict(list)
    for i, key in enumerate(exact):
        groups[key].append(i)
    dupes = [g for g in groups.values() if len(g) > 1]
    if dupes:
        extra = [i for g in dupes for i in g[1:]]
        conflicts = [g for g in dupes if frame[LABEL].iloc[g].nunique() > 1]
        out.append(make_finding(
            "exact_duplicates", "warning", f"{plural(len(extra), 'exact duplicate image')} in {name} "
            f"({len(conflicts)} with conflicting labels)",
            {"split": name, "groups": len(dupes), "conflicting_groups": len(conflicts),
             "examples": [[frame[TEXT].iat[i] for i in g[:3]] for g in dupes[:5]]},
            sorted(int(frame[ROW].iat[i]) for i in extra),
            "Keep one copy of each image; fix the label of images that appear under two classes.",
        ))  # fmt: skip
    firsts = {g[0] for g in groups.values()}
    keep = np.array(sorted(firsts))
    kept = (near[keep], thumbs[keep])
    pairs = [(keep[i], keep[j]) for i, j in _near_pairs(kept, kept, same=True)]
    if pairs:
        rows = sorted({int(frame[ROW].iat[int(j)]) for _, j in pairs})
        out.append(make_finding(
            "near_duplicates", "warning", f"{plural(len(rows), 'near-duplicate image')} in {name} "
            f"(difference hash within {NEAR_BITS} of 64 bits)",
            {"split": name, "pairs": len(pairs), "examples": [[frame[TEXT].iat[int(i)], frame[TEXT].iat[int(j)]]
                                                              for i, j in pairs[:5]]},
            rows, "Check these pairs: resized or re-encoded copies inflate the apparent data size.",
        ))  # fmt: skip
    return out


def _leakage(name: str, tables: dict[str, Table], prints: dict[str, Any]) -> list[Finding]:
    train_exact, *train_near = prints["train"]
    exact, *near = prints[name]
    frame = tables[name].frame
    seen = set(train_exact)
    same = [i for i, k in enumerate(exact) if k in seen]
    close = {i for i, _ in _near_pairs(tuple(near), tuple(train_near), same=False)} - set(same)
    if not same and not close:
        return []
    rows = sorted(int(frame[ROW].iat[i]) for i in [*same, *close])
    return [make_finding(
        "leakage", "error" if same else "warning",
        f"{plural(len(same), 'image')} of {name} also in train, {len(close)} more nearly identical",
        {"split": name, "exact": len(same), "near": len(close),
         "examples": [frame[TEXT].iat[i] for i in [*same, *sorted(close)][:5]]},
        rows, f"Remove these images from {name} (or from train): scores on leaked images are memorised, not learnt.",
    )]  # fmt: skip


def _outliers(name: str, table: Table) -> list[Finding]:
    frame = table.frame[table.frame[ERROR] == ""]
    if frame.empty:
        return []
    out = []
    modes = frame[MODE].map(lambda m: "grayscale" if m in ("L", "LA", "1", "I", "I;16", "F") else "colour")
    common = modes.mode().iat[0]
    odd = frame[modes != common]
    area = (frame[WIDTH] * frame[HEIGHT]).astype(float)
    aspect = (frame[WIDTH] / frame[HEIGHT].clip(lower=1)).astype(float)
    size_odd = frame[(area > area.median() * SIZE_FACTOR) | (area < area.median() / SIZE_FACTOR)]
    aspect_odd = frame[
        (aspect > aspect.median() * ASPECT_FACTOR) | (aspect < aspect.median() / ASPECT_FACTOR)
    ]
    for check, rows, what in (
        ("channel_outliers", odd, f"not {common} like the rest (converted to RGB for the model)"),
        ("size_outliers", size_odd, f"far from the median size {int(frame[WIDTH].median())}x{int(frame[HEIGHT].median())}"),
        ("aspect_outliers", aspect_odd, f"aspect ratio far from the median {aspect.median():.2f} (centre-cropped)"),
    ):  # fmt: skip
        if len(rows):
            out.append(make_finding(
                check, "warning", f"{plural(len(rows), 'image')} in {name} {what}",
                {"split": name, "examples": [
                    {"path": Path(p).name, "size": f"{w}x{h}", "mode": m}
                    for p, w, h, m in zip(rows[TEXT][:5], rows[WIDTH][:5], rows[HEIGHT][:5], rows[MODE][:5], strict=True)]},
                sorted(int(r) for r in rows[ROW]),
                "Look at these images: a different scanner, camera or export can be what the model learns.",
            ))  # fmt: skip
    return out


def _label_errors(table: Table, embed: Any, cfg: AuditConfig) -> list[Finding]:
    frame = table.frame[table.frame[ERROR] == ""]
    names = sorted(set(frame[LABEL]))
    y = np.array([names.index(v) for v in frame[LABEL]])
    folds = min(cfg.label_error_folds, int(np.bincount(y).min()))
    if len(names) < 2 or folds < 2:
        return []
    with torch.inference_mode():
        x = np.asarray(embed(frame[TEXT].tolist()), dtype=np.float64)
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    probs = out_of_fold_probabilities(x, y, folds, cfg.seed)
    issues = np.nonzero(find_label_issues(probs, y))[0]
    if not len(issues):
        return []
    order = issues[np.argsort(probs[issues, y[issues]])]
    return [make_finding(
        "label_errors", "warning", f"{plural(len(order), 'likely mislabelled image')} in train",
        {"split": "train", "out_of_fold_accuracy": round(float((probs.argmax(1) == y).mean()), 4),
         "examples": [{"path": frame[TEXT].iat[i], "label": names[y[i]], "suggested": names[int(probs[i].argmax())]}
                      for i in order[:5]]},
        sorted(int(frame[ROW].iat[i]) for i in order),
        "Review these images, least confident first (confident learning on the backbone's embeddings).",
    )]  # fmt: skip
