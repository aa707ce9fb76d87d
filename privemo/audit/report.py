"""The audit's report: ``report.md``, a self-contained ``report.html`` (figures embedded as base64 PNG), ``report.json``
and the PNGs (``det.png``: the verifier's DET curve per fold; ``attackers.png``: gender attacker UAR per family with
95 % intervals over folds; ``folds.png``: per-fold gender UAR, EER and emotion UAR with their speaker-level intervals).

Everything is rendered in memory first and each file written atomically (`privemo._util.io`), so a failed audit leaves
no partial report.
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from privemo._util.io import atomic_write_bytes, atomic_write_json, atomic_write_text

__all__ = ["write_report", "report_markdown", "strip_arrays"]


def strip_arrays(obj: Any) -> Any:
    """``obj`` without the DET score arrays (they go into det.png, not report.json)."""
    if isinstance(obj, dict):
        return {k: strip_arrays(v) for k, v in obj.items() if k != "det"}
    if isinstance(obj, list):
        return [strip_arrays(v) for v in obj]
    return obj


def _f(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:.{digits}f}"


def _ci(ci: Any) -> str:
    return "" if not ci else f" [{_f(ci[0])}, {_f(ci[1])}]"


def _figure_png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buffer.getvalue()


def _det_png(reports: dict[str, dict]) -> bytes | None:
    """DET curves (false rejection vs false acceptance, probit axes) of every fold's verifier."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from scipy.stats import norm
    from sklearn.metrics import det_curve

    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    drawn = False
    styles = ["-", "--"]
    for s, (label, report) in enumerate(reports.items()):
        for fold in report["folds"]:
            det = fold["verification"].get("det")
            if not det:
                continue
            labels = np.r_[np.ones(len(det["target"])), np.zeros(len(det["nontarget"]))]
            fpr, fnr, _ = det_curve(labels, np.r_[det["target"], det["nontarget"]])
            clip = lambda p: norm.ppf(np.clip(p, 5e-4, 1 - 5e-4))  # noqa: E731
            ax.plot(clip(fpr), clip(fnr), styles[s % 2], lw=1.2,
                    label=f"{label + ' ' if len(reports) > 1 else ''}fold {fold['fold']} (EER "
                          f"{_f(fold['verification']['eer'])})")
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ticks = [0.001, 0.01, 0.05, 0.2, 0.5, 0.8, 0.95, 0.999]
    ax.set_xticks(norm.ppf(ticks), [f"{t:g}" for t in ticks])
    ax.set_yticks(norm.ppf(ticks), [f"{t:g}" for t in ticks])
    ax.plot(norm.ppf([5e-4, 1 - 5e-4]), norm.ppf([5e-4, 1 - 5e-4]), ":", color="grey", lw=0.8)
    ax.set_xlim(norm.ppf(4e-4), norm.ppf(1 - 4e-4))
    ax.set_ylim(norm.ppf(4e-4), norm.ppf(1 - 4e-4))
    ax.set_xlabel("false acceptance rate")
    ax.set_ylabel("false rejection rate")
    ax.set_title("speaker verification on the test speakers (DET)")
    ax.legend(fontsize=7)
    return _figure_png(fig)


def _attackers_png(reports: dict[str, dict]) -> bytes:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    width = 0.8 / len(reports)
    for s, (label, report) in enumerate(reports.items()):
        families = report["summary"]["families"]
        names = list(families) + ["selected (pooled)"]
        means = [families[a]["mean"] for a in families] + [(report["summary"]["gender_uar_pooled"] or {}).get("uar")]
        cis = [families[a]["ci"] for a in families] + [(report["summary"]["gender_uar_pooled"] or {}).get("ci")]
        x = np.arange(len(names)) + s * width
        y = np.array([np.nan if m is None else m for m in means], float)
        err = np.array([[m - c[0], c[1] - m] if c and m is not None else [0, 0] for m, c in zip(means, cis)]).T
        ax.bar(x, y, width, yerr=err, capsize=3, label=label if len(reports) > 1 else None)
        ax.set_xticks(np.arange(len(names)) + width * (len(reports) - 1) / 2, names)
    ax.axhline(0.5, color="grey", ls=":", lw=1)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("gender attacker UAR (test)")
    ax.set_title("gender attackers (95 % intervals; chance 0.5)")
    if len(reports) > 1:
        ax.legend(fontsize=8)
    return _figure_png(fig)


def _folds_png(reports: dict[str, dict]) -> bytes:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    first = next(iter(reports.values()))
    panels = [("gender attacker UAR", lambda f: (f["gender"].get("test_uar"), f["gender"].get("test_uar_ci"))),
              ("speaker EER", lambda f: (f["verification"].get("eer"), f["verification"].get("eer_ci")))]
    for task in first["summary"]["emotion"]:
        panels.append((f"{task} probe UAR", lambda f, t=task: (f["emotion"][t].get("test_uar"),
                                                                f["emotion"][t].get("test_uar_ci"))))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.2), squeeze=False)
    for ax, (title, get) in zip(axes[0], panels):
        for s, (label, report) in enumerate(reports.items()):
            for f in report["folds"]:
                value, ci = get(f)
                if value is None:
                    continue
                x = f["fold"] + 0.15 * s
                lo, hi = (ci if ci else (value, value))
                ax.errorbar([x], [value], yerr=[[value - lo], [hi - value]], fmt="o" if s == 0 else "s", capsize=3,
                            color=f"C{s}", label=label if f["fold"] == 0 and len(reports) > 1 else None)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("fold")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xticks([f["fold"] for f in first["folds"]])
        if len(reports) > 1:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return _figure_png(fig)


def _summary_lines(report: dict) -> list[str]:
    s = report["summary"]
    pooled = s["gender_uar_pooled"] or {}
    lines = [
        f"- Source: `{report['source']}`: {report['n_utterances']} utterances, {report['n_speakers']} speakers, "
        f"h of {report['n_features']} dimensions; folds: {report['folds_from']} ({len(report['folds'])}).",
        f"- **Gender attacker UAR** (selected by validation log-loss among {', '.join(report['attackers'])}; chance "
        f"0.5): {_f(pooled.get('uar'))}{_ci(pooled.get('ci'))} over all {pooled.get('n_speakers', 0)} test speakers "
        f"(speaker bootstrap); mean over folds {_f(s['gender_uar']['mean'])}{_ci(s['gender_uar']['ci'])}.",
        f"- **Speaker-verification EER** (0.5 = nothing links): {_f(s['eer']['mean'])}{_ci(s['eer']['ci'])} over "
        f"{s['eer']['n']} fold(s); same-gender pairs {_f(s['eer_same_gender']['mean'])}"
        f"{_ci(s['eer_same_gender']['ci'])}.",
    ]
    for task, e in s["emotion"].items():
        p = e.get("pooled") or {}
        lines.append(f"- **Emotion utility ({task})**, {', '.join(report['utility_attackers'])} probe UAR: "
                     f"{_f(p.get('uar'))}{_ci(p.get('ci'))} (pooled); mean over folds {_f(e['mean'])}{_ci(e['ci'])}.")
    mi = report["membership"]
    lines.append(f"- **Membership inference AUC**: {_f(mi.get('auc'))}"
                 + (f" ({mi['reason']})" if mi.get("reason") else ""))
    if report.get("attackers_note"):
        lines.append(f"- Note: {report['attackers_note']}.")
    for key, value in (report.get("notes") or {}).items():
        lines.append(f"- {key}: {value}")
    return lines


def _fold_table(report: dict) -> list[str]:
    tasks = list(report["summary"]["emotion"])
    head = ["fold", "train / val / test speakers", "gender UAR [95 %]", "EER [95 %]", "EER same-gender"] + \
           [f"{t} UAR" for t in tasks]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for f in report["folds"]:
        g, v = f["gender"], f["verification"]
        cells = [str(f["fold"]), f"{f['speakers']['train']} / {f['speakers']['validation']} / {f['speakers']['test']}",
                 f"{_f(g.get('test_uar'))}{_ci(g.get('test_uar_ci'))}" if g.get("test_uar") is not None
                 else f"n/a ({g.get('reason')})",
                 f"{_f(v.get('eer'))}{_ci(v.get('eer_ci'))}" if v.get("eer") is not None else f"n/a ({v.get('reason')})",
                 _f(v.get("eer_same_gender"))]
        cells += [_f(f["emotion"][t].get("test_uar")) for t in tasks]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _family_table(report: dict) -> list[str]:
    lines = ["| attacker | test UAR, mean over folds [95 % t interval] | folds selected |", "|---|---|---|"]
    for name, value in report["summary"]["families"].items():
        chosen = sum(1 for f in report["folds"] if f["gender"].get("strongest") == name)
        lines.append(f"| {name} | {_f(value['mean'])}{_ci(value['ci'])} | {chosen} |")
    return lines


def report_markdown(result: dict) -> str:
    """The report as Markdown (one audit, or a ``--compare`` of two)."""
    reports = _reports(result)
    lines = ["# privemo privacy audit", ""]
    if "comparison" in result:
        lines += ["## Comparison: B against A", "", result["rule"] + ".", "",
                  "| metric | direction | A | B | B − A | 95 % interval | verdict | n folds | mdd80 |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for row in result["comparison"]:
            lines.append(f"| {row['metric']} | {row['direction']} | {_f(row['baseline'])} | {_f(row['adversarial'])} | "
                         f"{_f(row['difference'])} | {_ci([row['ci_low'], row['ci_high']]).strip() or 'n/a'} | "
                         f"**{row['verdict']}** | {row['n']} | {_f(row['mdd80'])} |")
        lines.append("")
    for label, report in reports.items():
        title = f"## {label}: " if len(reports) > 1 else "## "
        lines += [f"{title}summary", "", *_summary_lines(report), "", "### Gender attackers", "",
                  *_family_table(report), "", "### Per fold", "", *_fold_table(report), ""]
    lines += ["## Protocol", "",
              "Folds are speaker-disjoint (train / validation / test). Gender: every attacker family is trained on the "
              "training speakers' h and tuned on the validation speakers; the one with the lowest validation log-loss "
              "is refit on training + validation speakers and scored on the test speakers "
              "(privemo.privacy.attribute.attack_representation). Linkability: a verifier (standardise, shrinkage LDA, "
              "cosine) learnt on the training speakers scores every pair of test-speaker utterances "
              "(privemo.privacy.verification.speaker_verification_attack). Intervals resample whole test speakers "
              "within gender (the speaker is the unit that generalises).", ""]
    return "\n".join(lines)


def _reports(result: dict) -> dict[str, dict]:
    return {"A": result["a"], "B": result["b"]} if "comparison" in result else {"audit": result}


def _markdown_to_html(text: str) -> str:
    """A small renderer for the report's own Markdown (headings, bullets, tables, bold, code)."""
    import re

    def inline(s: str) -> str:
        s = html.escape(s)
        s = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", s)
        return re.sub(r"`(.+?)`", r"<code>\1</code>", s)

    out, in_list, table = [], False, []

    def flush_table() -> None:
        if table:
            rows = [r for r in table if not set(r.replace("|", "").strip()) <= {"-"}]
            cells = [[c.strip() for c in r.strip().strip("|").split("|")] for r in rows]
            out.append("<table><tr>" + "".join(f"<th>{inline(c)}</th>" for c in cells[0]) + "</tr>"
                       + "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in cells[1:])
                       + "</table>")
            table.clear()

    for line in text.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush_table()
        if line.startswith("- "):
            if not in_list:
                out.append("<ul>")
                in_list = True
            out.append(f"<li>{inline(line[2:])}</li>")
            continue
        if in_list:
            out.append("</ul>")
            in_list = False
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{inline(line[level:].strip())}</h{level}>")
        elif line.strip():
            out.append(f"<p>{inline(line)}</p>")
    flush_table()
    if in_list:
        out.append("</ul>")
    return "\n".join(out)


def write_report(result: dict, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write the report of ``result`` (`audit_representation` or `compare_representations`) into ``out_dir``; returns
    {name: path}. Figures and text are rendered before the first file is written."""
    reports = _reports(result)
    figures = {"det.png": _det_png(reports), "attackers.png": _attackers_png(reports), "folds.png": _folds_png(reports)}
    figures = {k: v for k, v in figures.items() if v is not None}
    markdown = report_markdown(result)
    images = "".join(f'<figure><img alt="{name}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'
                     f"<figcaption>{name}</figcaption></figure>" for name, data in figures.items())
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>privemo privacy audit</title><style>"
            "body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}table{border-collapse:"
            "collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:3px 8px;font-size:90%}img{max-width:100%}"
            "figure{display:inline-block;margin:0.5em}</style></head><body>"
            + _markdown_to_html(markdown) + images + "</body></html>")
    markdown += "\n" + "\n".join(f"![{name}]({name})" for name in figures) + "\n"
    out = Path(out_dir)
    written = {name: atomic_write_bytes(out / name, data) for name, data in figures.items()}
    written["report.json"] = atomic_write_json(out / "report.json", strip_arrays(result))
    written["report.html"] = atomic_write_text(out / "report.html", page)
    written["report.md"] = atomic_write_text(out / "report.md", markdown)
    return written
