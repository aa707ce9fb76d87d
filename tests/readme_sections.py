"""The README's result sections, rendered from the committed result files, so no figure in them can drift.

Each section sits in README.md between ``<!-- rendered:NAME -->`` and ``<!-- /rendered:NAME -->``; ``render(NAME)``
makes its text from the files under ``results/``. ``tests/test_readme.py`` fails when a section differs from what the
files give; ``python tests/readme_sections.py`` rewrites the sections in place after a new run.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
README = ROOT / "README.md"
BLOCK = re.compile(r"<!-- rendered:(?P<name>[\w-]+) -->\n(?P<body>.*?)<!-- /rendered:(?P=name) -->", re.S)

METHOD_LABELS = {
    "baseline": "baseline (no adversary)",
    "grl": "GRL (the paper's method)",
    "grl_dann": "GRL with the DANN λ ramp",
    "alt_reverse": "alternating updates, reversed cross-entropy",
    "alt_confusion": "alternating updates, confusion loss",
    "ensemble3": "ensemble of 3 confusion adversaries",
    "mmd": "class-conditional MMD, weight tuned",
    "inlp": "INLP on the baseline's h",
    "leace": "LEACE on the baseline's h",
    "gradient_erasure": "gradient-subspace erasure on the baseline's h",
    "mmd_leace": "MMD, then LEACE",
    "ensemble3_inlp": "ensemble of 3, then INLP",
    "ensemble3_leace": "ensemble of 3, then LEACE",
}


def _f(value, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _minutes(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60} s"


def _records(folder: str) -> list[dict]:
    return json.loads((RESULTS / folder / "folds.json").read_text(encoding="utf-8"))


def _manifest(folder: str) -> dict:
    return json.loads((RESULTS / folder / "manifest.json").read_text(encoding="utf-8"))


def run_summary(folder: str) -> str:
    """Wall time, jobs, trainings, convergence and degenerate trials of a committed run, from its own files."""
    records, manifest = _records(folder), _manifest(folder)
    trainings = sum(len(r.get("trials", ())) for r in records)
    converged = sum(1 for r in records if r.get("best_epoch") is not None and 2 <= r["best_epoch"] < r["max_epochs"] - 1)
    degenerate = sum(sum(bool(t.get("degenerate")) for t in r.get("trials", ())) for r in records)
    kept = sum(bool(r.get("degenerate")) for r in records)
    git = manifest.get("git") or {}
    schema = sorted({r.get("schema", 1) for r in records})
    provenance = (f"commit `{git['commit'][:7]}`{', uncommitted changes' if git.get('dirty') else ''}"
                  if git.get("commit") else "no commit recorded (made before manifests recorded one)")
    args = manifest["command"].split(maxsplit=1)[1:]  # argv[0] is the module's path under runpy
    return (f"`results/{folder}/`: `python -m privemo.reproduce{' ' + args[0] if args else ''}` → "
            f"{len(records)} (condition, fold) records holding {trainings} trainings, "
            f"**{_minutes(manifest['timings']['total_s'])}** wall time (`manifest.json` `total_s` "
            f"{manifest['timings']['total_s']:.0f}); {converged} of {len(records)} selected networks converged (best "
            f"epoch ≥ 2 and before the last allowed one); {degenerate} of {trainings} trials degenerate, {kept} "
            f"selected; record schema {'/'.join(map(str, schema))}; {provenance}.{_dry_run(folder)}\n")


def _dry_run(folder: str) -> str:
    """The cost model's estimate for the run (its ``--dry-run`` output, ``dry_run.txt``), when the folder keeps it."""
    path = RESULTS / folder / "dry_run.txt"
    if not path.is_file():
        return ""
    found = re.search(r"estimated wall time on this machine: ([\d.]+ min) with (\d+) worker", path.read_text("utf-8"))
    return (f" Its `--dry-run` (`dry_run.txt`) estimated {found[1]} with {found[2]} workers on idle cores; the run "
            "shared its cores with other work." if found else "")


def timing_summary(folder: str) -> str:
    """Where a committed run's time went, from manifest.json's per-job timings."""
    manifest = _manifest(folder)
    jobs = manifest.get("fold_timings", {})
    total = sum(t.get("total_s", 0.0) for t in jobs.values())
    kinds: dict[str, list[float]] = {}
    for key, t in jobs.items():
        modality = key.split("-")[0]
        kind = f"{modality} {'baseline' if '-baseline' in key else 'adversary'}"
        kinds.setdefault(kind, []).append(t.get("total_s", 0.0))
    parts = [f"{kind} {min(v):.0f}–{max(v):.0f} s" for kind, v in sorted(kinds.items())]
    timings = manifest["timings"]
    share = timings.get("training_and_attacks_s", 0.0) / timings["total_s"]
    return (f"Job time {total:.0f} s over {len(jobs)} jobs; training and attacks {share:.0%} of the wall time; per job: "
            + ", ".join(parts) + f"; the linear reference {timings.get('reference_s', 0.0):.0f} s.\n")


def reference_table(folder: str) -> str:
    """Baseline emotion UAR against the linear reference (reference.csv, the networks' own training rows)."""
    table = pd.read_csv(RESULTS / folder / "table1a.csv")
    lines = ["| row | task | linear reference (`reference.csv`) | baseline network | gender adversary |",
             "| --- | --- | --- | --- | --- |"]
    for _, row in table.iterrows():
        for task in ("Activation", "Valence"):
            if f"{task} Emo (baseline)" not in row or row[f"{task} Emo (baseline)"] == "–":
                continue
            lines.append(f"| {row['modality']} | {task.lower()} | {row[f'{task} Emo (linear ref.)']} | "
                         f"{row[f'{task} Emo (baseline)']} | {row[f'{task} Emo (gender adv.)']} |")
    return "\n".join(lines) + "\n"


def lambda_table(folder: str) -> str:
    """The λ validation selected in every fold, per row, task and adversary (table1a.csv, table1b.csv)."""
    lines = ["| row | task | adversary | λ per fold |", "| --- | --- | --- | --- |"]
    for name, adversary in (("table1a", "gender"), ("table1b", "speaker")):
        path = RESULTS / folder / f"{name}.csv"
        if not path.is_file():
            continue
        for _, row in pd.read_csv(path).iterrows():
            for task in ("Activation", "Valence"):
                column = f"{task} λ per fold ({adversary} adv.)"
                if column in row and isinstance(row[column], str) and row[column] != "–":
                    lines.append(f"| {row['modality']} | {task.lower()} | {adversary} | {row[column]} |")
    return "\n".join(lines) + "\n"


def claims_table(folder: str) -> str:
    """The verdict counts line of claims.md and every tested claim with its interval and verdict."""
    text = (RESULTS / folder / "claims.md").read_text(encoding="utf-8")
    counts = next(line for line in text.splitlines() if " rows, " in line and " tested: " in line)
    claims = pd.read_csv(RESULTS / folder / "claims.csv", keep_default_na=False, na_values=[""])  # "n/a" stays
    lines = [counts, "", "| claim | row | task | adversary | baseline → adversarial | difference [95 % CI] | p | "
             "mdd80 | verdict |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for _, r in claims.iterrows():
        if r["verdict"] == "n/a":
            continue
        lines.append(f"| {r['claim']} | {r['modality']} | {r['task']} | {r['adversary']} | {_f(r['baseline'])} → "
                     f"{_f(r['adversarial'])} | {r['difference']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}] | "
                     f"{r['p']:.2g} | {_f(r['mdd80'])} | **{r['verdict']}** |")
    missing = claims[claims.verdict == "n/a"]
    if len(missing):
        reasons = missing.groupby("reason", dropna=False).size()
        lines.append("")
        lines.append("Not tested (`n/a`): " + "; ".join(f"{n} rows: {reason}" for reason, n in reasons.items()) + ".")
    return "\n".join(lines) + "\n"


REMOVAL = RESULTS / "removal"  # benchmarks/regenerate_removal.py's results (issue 24)


def _lambdas(value) -> str:
    return value if isinstance(value, str) and value else "–"


KNOWN_ANSWER_ATTACKER, KNOWN_ANSWER_EMOTION_LOSS = 0.55, 0.02  # issue 24's goal on the known-answer benchmark


def leakage_table() -> str:
    """The known-answer removal benchmark, one table per variant: results/removal/synthetic/leakage[_confound].csv, each
    written whole by one command (every strength tuned, with a manifest)."""
    parts = []
    for name, title in (("leakage", "Plain variant"), ("leakage_confound", "Confounded variant (`--confound`)")):
        frame = pd.read_csv(REMOVAL / "synthetic" / f"{name}.csv").set_index("method")
        m = json.loads((REMOVAL / "synthetic" / f"{name}_manifest.json").read_text(encoding="utf-8"))
        caption = (f"{title}: `results/removal/synthetic/{name}.csv`, written whole by `{m['command']}` "
                   f"({_minutes(m['timings']['total_s'])}, commit `{((m.get('git') or {}).get('commit') or '?')[:7]}`), "
                   "every strength tuned over the paper's four values on the validation speakers, MMD scale "
                   f"{m['config']['mmd_scale_used']:g} from the development seed "
                   "(`results/removal/synthetic/mmd_scale_dev.csv`). λ: the strength each seed's validation kept (GRL "
                   "λ, alternating / ensemble adversary weight, MMD weight = scale × λ); converged: seeds whose kept "
                   "network's best epoch is ≥ 2 and before the last allowed one; goal: strongest attacker ≤ 0.55 with "
                   "emotion UAR at most 0.02 below the baseline's (issue 24; means over seeds).")
        lines = [caption, "", "| method | emotion UAR | head | strongest fresh attacker (max) | validation-selected "
                 "attacker | λ (per seed) | converged | goal |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for method, r in frame.iterrows():
            met = (r["attacker_max_mean"] <= KNOWN_ANSWER_ATTACKER
                   and r["emotion_uar_mean"] >= frame.loc["baseline", "emotion_uar_mean"] - KNOWN_ANSWER_EMOTION_LOSS)
            goal = "–" if method == "baseline" else ("**yes**" if met else "no")
            lines.append(f"| {METHOD_LABELS.get(method, method)} | {_f(r['emotion_uar_mean'])} | "
                         f"{_f(r['head_uar_mean'])} | {_f(r['attacker_max_mean'])} | {_f(r['attacker_selected_mean'])} | "
                         f"{_lambdas(r['lambdas'])} | {_lambdas(r.get('converged'))} | {goal} |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def _interval(r, metric: str) -> str:
    return f"{_f(r[f'{metric}_mean'])} [{_f(r[f'{metric}_ci_low'])}, {_f(r[f'{metric}_ci_high'])}]"


def _yes(value) -> str:
    return "–" if pd.isna(value) else ("yes" if str(value) == "True" else "no")


def removal_table(corpus: str) -> str:
    """Removal methods on a corpus: results/removal/<corpus>/ (removal_demo.py's own folder: speaker-level intervals,
    equivalence, goals)."""
    folder = REMOVAL / corpus
    frame = pd.read_csv(folder / "removal_methods.csv", keep_default_na=False, na_values=[""])
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    git = manifest.get("git") or {}
    n_folds = len(manifest["config"]["folds"])
    lines = [f"`results/removal/{corpus}/` (`{manifest['command']}`, {_minutes(manifest['timings']['total_s'])}, "
             f"commit `{(git.get('commit') or '?')[:7]}`{', uncommitted changes' if git.get('dirty') else ''}): "
             f"means over {n_folds} folds with speaker-level 95 % intervals (cluster bootstrap over the test speakers, "
             f"{manifest['config']['resamples']} draws; the strongest attacker's is the maximum over the four families "
             "on each draw). Goals: strongest attacker mean ≤ 0.55, its upper bound ≤ 0.60, emotion equivalent to the "
             "baseline within ±0.03 (TOST over folds, p < 0.05).", "",
             "| method | emotion UAR [95 % CI] | strongest fresh attacker [95 % CI] | mean ≤ 0.55 | upper ≤ 0.60 | "
             "emotion − baseline [95 % CI], TOST p | within ±0.03 | goal | speaker EER | λ (per fold) | converged |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for _, r in frame.iterrows():
        base = r["method"] == "baseline"
        eq = "–" if base else (f"{r['emotion_equivalence_difference']:+.3f} [{r['emotion_equivalence_ci_low']:+.3f}, "
                               f"{r['emotion_equivalence_ci_high']:+.3f}], p = {_f(r['emotion_equivalence_p_equivalence'])}"
                               if pd.notna(r["emotion_equivalence_ci_low"]) else "n/a (< 2 folds)")
        lines.append(f"| {METHOD_LABELS.get(r['method'], r['method'])} | {_interval(r, 'emotion_uar')} | "
                     f"{_interval(r, 'attacker_max')} | {_yes(r['goal_attacker_mean'])} | "
                     f"{_yes(r['goal_attacker_upper'])} | {eq} | {_yes(r['goal_emotion_equivalent'])} | "
                     f"{'–' if base else '**' + _yes(r['goal']) + '**'} | {_f(r['eer_mean'])} | {_lambdas(r['lambdas'])} | "
                     f"{_lambdas(r['converged'])} |")
    return "\n".join(lines) + "\n"


def learnability_table() -> str:
    """The learnability reference of the demo corpora (results/demo_learnability.csv)."""
    frame = pd.read_csv(RESULTS / "demo_learnability.csv")
    return "```\n" + frame.to_string(index=False, float_format=lambda v: f"{v:.3f}") + "\n```\n"


def cost_check_table() -> str:
    """The cost model's dry-run estimates against real runs (results/cost_check.csv)."""
    frame = pd.read_csv(RESULTS / "cost_check.csv")
    lines = ["| run (`python -m privemo.reproduce ...`) | trainings | estimated | measured | measured / estimated | "
             "epochs expected / run |", "| --- | --- | --- | --- | --- | --- |"]
    for _, r in frame.iterrows():
        lines.append(f"| `{r['command']}` | {r['trainings']} | {r['estimated_s'] / 60:.1f} min | "
                     f"{r['measured_s'] / 60:.1f} min | {r['ratio']:.2f} | {r['estimated_epochs']:,} / "
                     f"{r['measured_epochs']:,} |")
    return "\n".join(lines) + "\n"


def budget_table(*names: str) -> str:
    """The training-budget comparison on one row (results/training_budget*.csv, benchmarks/training_budget.py)."""
    frames = [pd.read_csv(RESULTS / name) for name in names if (RESULTS / name).is_file()]
    lines = ["| variant | emotion UAR (5 folds) | linear reference | difference [95 % CI] | mean best epoch | capped |",
             "| --- | --- | --- | --- | --- | --- |"]
    for _, r in pd.concat(frames).iterrows():
        lines.append(f"| {r['variant']} | {r['uar_mean']:.3f} ± {r['uar_std']:.3f} | {r['reference']:.3f} | "
                     f"{r['minus_reference']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}] | "
                     f"{r['mean_best_epoch']:.1f} | {int(r['capped'])} |")
    return "\n".join(lines) + "\n"


HEADLINE = (("emotion_cost", None), ("gender_leakage", "gender"), ("speaker_linkability", "speaker"))
TARGET_MDD = 0.05


def _folds_needed(sd: float, target: float = TARGET_MDD) -> int | None:
    """The fewest folds (independent paired differences) whose 80 %-power minimum detectable difference at the
    two-sided 5 % level is at most ``target``, for a spread ``sd`` of the paired differences (None beyond 1000)."""
    from scipy import stats

    for n in range(2, 1001):
        if (stats.t.ppf(0.975, n - 1) + stats.t.ppf(0.8, n - 1)) * sd / math.sqrt(n) <= target:
            return n
    return None


def power_table(folder: str) -> str:
    """The 80 %-power minimum detectable difference of every headline cell (claims.csv): the emotion cost of each
    adversary on every row, the gender attacker under the gender adversary, the speaker EER under the speaker
    adversary; the spread of the paired fold differences it comes from, and the folds a 0.05 one would need."""
    from scipy import stats

    claims = pd.read_csv(RESULTS / folder / "claims.csv", keep_default_na=False, na_values=[""])
    lines = ["| claim | row | task | adversary | n | sd of paired differences | mdd80 | ≤ 0.05 | folds for 0.05 |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for claim, adversary in HEADLINE:
        chosen = claims[(claims.claim == claim) & (claims.verdict != "n/a")]
        if adversary is not None:
            chosen = chosen[chosen.adversary == adversary]
        for _, r in chosen.iterrows():
            n = int(r["n"])
            sd = (r["ci_high"] - r["ci_low"]) / 2 / stats.t.ppf(0.975, n - 1) * math.sqrt(n)
            needed = _folds_needed(sd)
            lines.append(f"| {claim} | {r['modality']} | {r['task']} | {r['adversary']} | {n} | {sd:.3f} | "
                         f"{r['mdd80']:.3f} | {'yes' if r['mdd80'] <= TARGET_MDD else 'no'} | "
                         f"{'> 1000' if needed is None else needed} |")
    return "\n".join(lines) + "\n"


def markdown_table(folder: str, name: str) -> str:
    """A committed table (``<name>.md``) as it is, caption included."""
    return (RESULTS / folder / f"{name}.md").read_text(encoding="utf-8").rstrip("\n") + "\n"


def deployed_table(name: str = "deployed_vs_trained.csv") -> str:
    """The encoder as trained against as deployed (benchmarks/deployed_vs_trained.py): per condition and metric the
    means over folds and the paired difference deployed - trained with its 95 % t interval over folds."""
    from scipy import stats

    frame = pd.read_csv(RESULTS / name)
    lines = ["| network | metric | as trained (per-speaker) | as deployed (per-utterance) | deployed − trained "
             "[95 % CI over folds] | run's record | folds |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for (condition, metric), rows in frame.groupby(["condition", "metric"], sort=False):
        rows = rows.dropna(subset=["trained", "deployed"])
        if rows.empty:
            continue
        diff = (rows.deployed - rows.trained).to_numpy(float)
        half = stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / math.sqrt(len(diff)) if len(diff) > 1 else math.nan
        lines.append(f"| {condition} | {metric} | {rows.trained.mean():.3f} | {rows.deployed.mean():.3f} | "
                     f"{diff.mean():+.3f} [{diff.mean() - half:+.3f}, {diff.mean() + half:+.3f}] | "
                     f"{_f(rows.record.mean()) if rows.record.notna().any() else '–'} | {len(rows)} |")
    return "\n".join(lines) + "\n"


def normalisation_table(per_speaker: str = "demo-podcast", per_utterance: str = "demo-podcast-utterance") -> str:
    """Train as you ship: the same conditions and folds trained with per-speaker and with per-utterance normalisation
    (each run's folds.json): means over folds and the paired difference per-utterance - per-speaker, 95 % t interval."""
    from scipy import stats

    def figures(folder):
        out = {}
        for r in _records(folder):
            if r["modality"] != "acoustic":
                continue
            key = (r["task"], r["adversary"] or "none")
            verification = r.get("attacks", {}).get("speaker_verification", {})
            out.setdefault(key, {})[r["fold"]] = {
                "emotion UAR": r["test"]["emotion_uar"],
                "gender attacker UAR": r["attacks"]["gender"]["strongest_test_uar"],
                "speaker EER": verification.get("eer")}
        return out

    a, b = figures(per_speaker), figures(per_utterance)
    lines = ["| task | condition | metric | per-speaker | per-utterance | per-utterance − per-speaker [95 % CI] | folds |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for key in sorted(set(a) & set(b)):
        folds = sorted(set(a[key]) & set(b[key]))
        for metric in ("emotion UAR", "gender attacker UAR", "speaker EER"):
            pairs = [(a[key][k][metric], b[key][k][metric]) for k in folds
                     if a[key][k][metric] is not None and b[key][k][metric] is not None]
            if not pairs:
                continue
            x, y = np.array(pairs, float).T
            d = y - x
            half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d)) if len(d) > 1 else math.nan
            lines.append(f"| {key[0]} | {key[1]} | {metric} | {x.mean():.3f} | {y.mean():.3f} | {d.mean():+.3f} "
                         f"[{d.mean() - half:+.3f}, {d.mean() + half:+.3f}] | {len(d)} |")
    return "\n".join(lines) + "\n"


RENDERERS = {
    "podcast-budget": lambda: budget_table("training_budget.csv", "training_budget_capacity.csv"),
    "cost-check": cost_check_table,
    "demo-run": lambda: run_summary("demo"),
    "demo-timing": lambda: timing_summary("demo"),
    "demo-reference": lambda: reference_table("demo"),
    "demo-lambda": lambda: lambda_table("demo"),
    "demo-claims": lambda: claims_table("demo"),
    "podcast-run": lambda: run_summary("demo-podcast"),
    "podcast-reference": lambda: reference_table("demo-podcast"),
    "podcast-claims": lambda: claims_table("demo-podcast"),
    "podcast-power": lambda: power_table("demo-podcast"),
    "podcast-table1a": lambda: markdown_table("demo-podcast", "table1a"),
    "podcast-table1b": lambda: markdown_table("demo-podcast", "table1b"),
    "demo-power": lambda: power_table("demo"),
    "deployed": deployed_table,
    "train-as-ship": normalisation_table,
    "utterance-run": lambda: run_summary("demo-podcast-utterance"),
    "leakage": leakage_table,
    "podcast-removal": lambda: removal_table("demo-podcast"),
    "learnability": learnability_table,
}


def render(name: str) -> str:
    return RENDERERS[name]()


def sections(text: str) -> dict[str, str]:
    """The rendered sections of a README text: name -> body."""
    return {m["name"]: m["body"] for m in BLOCK.finditer(text)}


def rewrite(text: str) -> str:
    """The README text with every rendered section made anew from the files."""
    return BLOCK.sub(lambda m: f"<!-- rendered:{m['name']} -->\n{render(m['name'])}<!-- /rendered:{m['name']} -->", text)


if __name__ == "__main__":
    README.write_text(rewrite(README.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"{README}: {len(sections(README.read_text(encoding='utf-8')))} sections rendered", file=sys.stderr)
