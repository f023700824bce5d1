"""Report section "Confidently wrong images": thumbnails and attribution heatmaps from evaluation/images.json."""

from __future__ import annotations

from tunesmith.diagnosis.rundata import RunData
from tunesmith.report.extras import extra_data
from tunesmith.report.html import esc

SECTION, TITLE = "images", "Confidently wrong images"


def render(data: RunData) -> str | None:
    found = extra_data(data, SECTION)
    if not found:
        return None
    cards = []
    for item in found["examples"]:
        heat = (
            f'<img class="attribution" alt="attribution" src="{esc(item["attribution"])}">'
            if item["attribution"]
            else ""
        )
        cards.append(
            f'<figure class="wrong-image"><img class="thumbnail" alt="{esc(item["path"])}" '
            f'src="{esc(item["thumbnail"])}">{heat}<figcaption>row {esc(item["row"])}: true {esc(item["label"])}, '
            f"predicted {esc(item['pred'])} ({100 * item['confidence']:.0f}%)</figcaption></figure>"
        )
    method = f" Red: {esc(found['method'])} of the predicted class." if found.get("method") else ""
    head = (f"<p>{esc(found['split'])}: {found['wrong']} of {found['total']} wrong; the most confident "
            f"mistakes first.{method}</p>")  # fmt: skip
    body = "".join(cards) or "<p>no wrong predictions</p>"
    return head + f'<div class="wrong-images" style="display:flex;flex-wrap:wrap;gap:12px">{body}</div>'
