"""Execute every notebook in notebooks/ with nbclient on a tiny configuration and check what it shows.

Each notebook's cell tagged "parameters" is followed by an injected cell (as papermill does) that shrinks the run: a
60-utterance demo corpus, 1 training epoch, one outer fold, a few attacker epochs, one process. The kernel runs this
interpreter (a kernelspec written at test time points at ``sys.executable``) with PRIVEMO_DATA / PRIVEMO_CACHE in a
temporary folder, so nothing touches the user's corpus or feature cache. A final injected cell prints a JSON summary of
the notebook's state, which the tests check alongside the displayed outputs.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from ipykernel.kernelspec import write_kernel_spec
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
KERNEL = "privemo-test-python3"
CELL_TIMEOUT_S = 300  # a hung cell fails the test instead of blocking the suite
N_PER_SPEAKER = 6  # 10 speakers x 6 = 60 utterances: every speaker can still be split 50/25/25 by the speaker attack
CHECK_MARK = "PRIVEMO-CHECK "
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Shared by the run notebooks: one fold of the 5-fold split (3 training sessions, so that the membership attack has
# 6 held-out utterances; a 2-fold split of the demo trains on one session, 2 held out), acoustic activation only,
# 1 epoch, short attacker training.
TINY_RUN = {"N_PER_SPEAKER": N_PER_SPEAKER, "N_FOLDS": 5, "FOLDS": (0,), "EPOCHS": 1, "ATTACK_EPOCHS": 5, "N_JOBS": 1}


@pytest.fixture(scope="session")
def kernel(tmp_path_factory):
    """A kernelspec for this interpreter whose environment keeps every privemo folder inside a temporary directory."""
    base = tmp_path_factory.mktemp("notebooks")
    env = {
        "PRIVEMO_DATA": str(base / "data"),
        "PRIVEMO_CACHE": str(base / "cache"),
        "KERAS_HOME": str(base / "keras"),
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "MPLBACKEND": "Agg",
    }
    write_kernel_spec(base / "kernels" / KERNEL, overrides={"display_name": "privemo tests", "env": env})
    return {"kernel_dirs": [str(base / "kernels")], "base": base}


def _inject(book, parameters: dict, check: str) -> None:
    """Insert the parameter overrides after the "parameters" cell (each must exist there) and append ``check``."""
    index = [i for i, c in enumerate(book.cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(index) == 1, "a notebook needs exactly one cell tagged 'parameters'"
    declared = book.cells[index[0]].source
    unknown = [name for name in parameters if f"\n{name} = " not in "\n" + declared]
    assert not unknown, f"parameters {unknown} are not declared in the notebook's parameters cell"
    source = "\n".join(f"{name} = {value!r}" for name, value in parameters.items())
    injected = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    book.cells.insert(index[0] + 1, injected)
    book.cells.append(nbformat.v4.new_code_cell(check))
    for k, cell in enumerate(book.cells):  # nbformat 4.5 wants unique ids
        cell["id"] = f"cell-{k}"


_NOISE = ("E0000", "I0000", "W0000", "failed call to cuInit", "Could not find cuda drivers", "triggered tf.function retracing")


def _check_committed_outputs(name: str, book) -> None:
    """Notebooks are committed executed (from a real run of the default settings) so that a reader browsing the
    repository sees tables and plots: every code cell that ran has outputs, none is an error, none is TensorFlow noise."""
    code = [c for c in book.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code), f"{name} is committed with cells that were not executed"
    outputs = [o for c in code for o in c.get("outputs", [])]
    assert outputs and any(o.get("output_type") == "display_data" for o in outputs), f"{name} has no displayed output"
    assert not [o for o in outputs if o.get("output_type") == "error"], f"{name} is committed with an error output"
    streams = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert not [n for n in _NOISE if n in streams], f"{name}'s committed outputs hold TensorFlow log lines"


def execute(name: str, kernel: dict, parameters: dict, check: str) -> tuple[list[dict], dict, float]:
    """Run notebook ``name`` with ``parameters``; return (all outputs in order, the check cell's JSON, seconds)."""
    book = nbformat.read(NOTEBOOKS / name, as_version=4)
    _check_committed_outputs(name, book)
    for cell in book.cells:  # run from a clean slate: the committed outputs are for readers
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    _inject(book, parameters, f"import json, time\nprint({CHECK_MARK!r} + json.dumps({{**{check}, "
                              f"'kernel_cpu_s': time.process_time()}}, default=float))")
    km = KernelManager(kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=kernel["kernel_dirs"]))
    client = NotebookClient(book, km=km, timeout=CELL_TIMEOUT_S,
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    t0 = time.perf_counter()
    try:
        client.execute(cleanup_kc=True)  # shut the kernel down afterwards even though the test made its manager
    except CellExecutionError as exc:  # stop at the first failing cell, with its traceback
        pytest.fail(f"{name} failed:\n{_ANSI.sub('', str(exc))}", pytrace=False)
    finally:
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    seconds = time.perf_counter() - t0
    outputs = [out for cell in book.cells if cell.cell_type == "code" for out in cell.outputs]
    errors = [f"{o.ename}: {o.evalue}\n" + "\n".join(o.traceback) for o in outputs if o.output_type == "error"]
    assert not errors, f"{name} raised:\n" + "\n\n".join(errors)
    summary = [o.text for o in outputs if o.output_type == "stream" and o.text.startswith(CHECK_MARK)]
    assert len(summary) == 1, f"{name}: the check cell printed nothing"
    state = json.loads(summary[0][len(CHECK_MARK):])
    print(f"{name}: {seconds:.1f} s wall, kernel CPU {state['kernel_cpu_s']:.1f} s")
    return outputs, state, seconds


def _html(outputs: list[dict]) -> str:
    return "\n".join(o.get("data", {}).get("text/html", "") for o in outputs if o.output_type in ("display_data",
                                                                                                      "execute_result"))


def _markdown(outputs: list[dict]) -> str:
    return "\n".join(o.get("data", {}).get("text/markdown", "") for o in outputs if o.output_type == "display_data")


def _stream(outputs: list[dict], name: str = "stdout") -> str:
    return "".join(o.text for o in outputs if o.output_type == "stream" and o.name == name)


def test_quickstart_trains_one_fold_and_attacks_it(kernel):
    params = {"N_PER_SPEAKER": N_PER_SPEAKER, "EPOCHS": 2, "PATIENCE": 2, "ATTACK_EPOCHS": 5, "ATTACKER_GRID": "quick",
              "FOLD": 1}
    check = ('{"n": len(table), "h": list(h.shape), "epochs": len(history["val_objective"]), "fold": FOLD, '
             '"test": len(test), "train": len(train), "fit_rows": len(fit_rows), "heldout": len(heldout), '
             '"overlap": len(set(fit_rows) & set(heldout)), "covered": sorted(set(fit_rows) | set(heldout)) == '
             'sorted(train), "train_speakers": int(table.speaker.iloc[train].nunique()), '
             '"history_keys": sorted(history), "head_test_uar": head_test_uar, "attackers": sorted(report.results), '
             '"attacker_test_uar": report.strongest_test_uar, "emotion_test_uar": emotion_test_uar, '
             '"eer": verification["eer"], "eer_same_gender": verification["eer_same_gender"], '
             '"mi_auc": membership.auc, "mi_members": membership.n_members, '
             '"comparison": comparison.to_dict("index")}')
    outputs, state, _ = execute("01_quickstart.ipynb", kernel, params, check)
    assert state["n"] == 10 * N_PER_SPEAKER
    assert state["h"][0] == state["n"] and state["h"][1] > 0
    assert 1 <= state["epochs"] <= 2
    assert state["attackers"] == ["hgb", "logreg", "mlp", "svm"]
    assert state["test"] == 2 * N_PER_SPEAKER  # fold 1 leaves session 2 (one female, one male speaker) out
    # the membership non-members are held out of training: one utterance of each training speaker at 6 per speaker
    assert state["overlap"] == 0 and state["covered"] is True
    assert state["heldout"] == state["train_speakers"] and state["fit_rows"] + state["heldout"] == state["train"]
    assert state["mi_members"] == state["heldout"]  # balanced: as many members as non-members
    # selection by the fresh probe (the default): its validation UAR is logged next to the head's
    assert {"val_probe", "val_gender_uar", "val_emotion_uar", "val_objective"} <= set(state["history_keys"])
    for key in ("head_test_uar", "attacker_test_uar", "emotion_test_uar", "eer", "eer_same_gender", "mi_auc"):
        assert 0.0 <= state[key] <= 1.0, key
    assert set(state["comparison"]) == {"baseline (no adversary)", "gender adversary (λ = 1)"}
    for row in state["comparison"].values():
        assert set(row) == {"emotion UAR (test)", "gender attacker UAR (test)", "best attacker UAR (test, optimistic)",
                            "speaker EER", "speaker EER same-gender", "MI AUC"}
    adversarial = state["comparison"]["gender adversary (λ = 1)"]
    assert adversarial["MI AUC"] == pytest.approx(state["mi_auc"]) and adversarial["speaker EER"] == pytest.approx(
        state["eer"])
    html = _html(outputs)
    # the corpus table, the folds, the training history, the attackers, linkage / membership and the comparison
    for needle in ("utterance_id", "validation", "val_gender_uar", "val_probe", "val_log_loss", "hgb", "fresh attacker",
                   "speaker EER (same-gender pairs only)", "membership-inference AUC", "gender attacker UAR", "MI AUC"):
        assert needle in html, needle
    assert "a fresh attacker trained on the frozen" in _markdown(outputs)
    assert "held out" in _stream(outputs) and "selection by probe" in _stream(outputs)


def test_table1_runs_then_loads_the_run(kernel):
    results = kernel["base"] / "table1"
    params = {"RESULTS_DIR": str(results), "MODALITIES": ("acoustic",), "TASKS": ("activation",),
              "ADVERSARIES": (None, "gender", "speaker"), **TINY_RUN}
    check = ('{"records": len(records), "tables": {k: t.to_dict("records") for k, t in tables.items()}, '
             '"adversaries": sorted(frame.adversary.unique()), "columns": list(frame.columns), '
             '"reference": None if reference is None else reference.to_dict("records"), '
             '"trial_lambdas": {r["adversary"] or "none": sorted(t["grl_lambda"] or 0 for t in r["trials"]) '
             'for r in records}, "selected": {r["adversary"] or "none": r["grl_lambda"] for r in records}}')
    outputs, state, _ = execute("02_table1.ipynb", kernel, params, check)
    assert "running 3 conditions" in _stream(outputs)
    assert state["records"] == 3 and state["adversaries"] == ["gender", "none", "speaker"]
    for name in ("folds.json", "manifest.json", "reference.csv", "lambda_sweep.csv", "table1a.csv", "table1a.md",
                 "table1b.csv", "table1b.md", "claims.csv", "claims.md"):
        assert (results / name).is_file(), name
    # no separate sweep: lambda is tuned inside every adversarial condition over the paper's four values
    assert state["trial_lambdas"] == {"none": [0], "gender": [0.3, 0.5, 0.75, 1.0], "speaker": [0.3, 0.5, 0.75, 1.0]}
    assert state["selected"]["none"] is None and state["selected"]["gender"] in (0.3, 0.5, 0.75, 1.0)
    assert {"speaker_eer", "speaker_eer_same_gender", "mi_auc", "repeat", "best_epoch"} <= set(state["columns"])
    assert [(r["modality"], r["task"]) for r in state["reference"]] == [("acoustic", "activation")]
    html = _html(outputs)
    for needle in ("Activation Emo (linear ref.)", "Activation Emo (baseline)", "Activation Priv gender UAR (gender adv.)",
                   "Activation λ per fold (gender adv.)", "Activation Speaker EER (speaker adv.)",
                   "Activation Speaker EER same-gender (speaker adv.)", "Activation MI AUC (speaker adv.)",
                   "Activation n"):
        assert needle in html, needle
    row = state["tables"]["table1a"][0]
    assert (row["modality"], row["corpus"]) == ("acoustic", "demo")
    assert row["Activation Emo (baseline)"].count("±") == 1 and row["Valence Emo (baseline)"] == "–"
    assert row["Activation Emo (linear ref.)"].count("±") == 1
    assert row["Activation λ per fold (gender adv.)"] == f"{state['selected']['gender']:g}" and row["Activation n"] == 1
    row = state["tables"]["table1b"][0]
    assert row["Activation λ per fold (speaker adv.)"] == f"{state['selected']['speaker']:g}"
    # one female and one male test speaker: an honest speaker EER is impossible, the table says n/a
    assert row["Activation Speaker EER (speaker adv.)"] == "n/a"
    text = _markdown(outputs)
    for needle in ("# Claims, tested on this run's records", "| emotion_cost | acoustic | activation | gender |",
                   "n/a", "linear reference", "Training budget: in ", "Degenerate trials"):
        assert needle in text, needle

    # Second run: the folder now has results, so the notebook only loads them (no training) and shows the same tables.
    again, state2, seconds = execute("02_table1.ipynb", kernel, params, check)
    text = _stream(again)
    assert "loading the finished run" in text and "running" not in text
    assert state2["tables"] == state["tables"] and _markdown(again) == _markdown(outputs)


def test_lambda_tradeoff_runs_one_condition_pair_and_plots_the_tuned_trials(kernel):
    from privemo.experiment import reporting

    run_dir = kernel["base"] / "tradeoff"
    plot = kernel["base"] / "tradeoff-plot.png"
    params = {"RESULTS_DIR": str(kernel["base"] / "no-results"), "RUN_DIR": str(run_dir), "PLOT_PATH": str(plot),
              **TINY_RUN}
    check = ('{"lambdas": sorted(sweep.grl_lambda), "adversaries": sorted(sweep.adversary.unique()), '
             '"columns": list(sweep.columns), "selected": sweep.groupby("adversary").selected.sum().to_dict(), '
             '"n_folds": sorted(set(sweep.n_folds)), "source": str(source), '
             '"records": len(read_json(source / "folds.json"))}')
    outputs, state, _ = execute("03_lambda_tradeoff.ipynb", kernel, params, check)
    assert "no λ trade-off found: running 2 cross-validated conditions" in _stream(outputs)
    assert state["source"] == str(run_dir) and state["records"] == 2  # baseline + gender adversary, nothing else
    for name in ("lambda_sweep.csv", "folds.json"):
        assert (run_dir / name).is_file(), name
    # the file is the trade-off drawn from the run's own trials, each lambda from a network that learnt something
    records = json.loads((run_dir / "folds.json").read_text(encoding="utf-8"))
    expected = reporting.lambda_tradeoff_frame(records)
    got = pd.read_csv(run_dir / "lambda_sweep.csv")
    if len(expected):
        pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    learnt = {0.0 if r["adversary"] is None else t["grl_lambda"] for r in records for t in r["trials"]
              if not t["degenerate"]}
    assert state["lambdas"] == sorted(learnt)
    assert plot.is_file() == any(lam > 0 for lam in learnt)
    if not any(lam > 0 for lam in learnt):
        assert "nothing to plot" in _stream(outputs)

    # The committed default run's trade-off is loaded, not rerun, plotted and discussed.
    committed = {**params, "RESULTS_DIR": str(ROOT / "results" / "demo")}
    shown, state3, _ = execute("03_lambda_tradeoff.ipynb", kernel, committed, check)
    assert f"loading the λ trade-off in {ROOT / 'results' / 'demo'}" in _stream(shown)
    assert plot.is_file() and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any("image/png" in o.get("data", {}) for o in shown if o.output_type == "display_data")
    assert "λ = 0.3" in _html(shown)  # the table of selections
    discussion = _markdown(outputs)
    for needle in ("demo, acoustic, activation, gender adversary", "The gender probe's test UAR",
                   "without adversary it is", "Validation selected λ = "):
        assert needle in _markdown(shown), needle

    # A finished run (here: the one just made) is loaded, not rerun, and gives the same discussion; a lambda_sweep.csv
    # of an older privemo (a fixed-lambda sweep, no `selected` column) in RESULTS_DIR is skipped, not plotted.
    old = kernel["base"] / "old-sweep"
    old.mkdir()
    got.drop(columns=["selected"]).to_csv(old / "lambda_sweep.csv", index=False)
    params.update({"RESULTS_DIR": str(old), "RUN_DIR": str(run_dir)})
    again, state2, _ = execute("03_lambda_tradeoff.ipynb", kernel, params, check)
    text = _stream(again)
    assert "fixed-λ sweep of an older privemo version: not used" in text
    assert f"loading the λ trade-off in {run_dir}" in text and "running" not in text
    assert state2["lambdas"] == state["lambdas"] and _markdown(again) == discussion


def test_audit_audits_a_features_file_compares_and_an_encoder(kernel, tmp_path):
    import keras

    from privemo.nn.encoder import export_encoder
    from privemo.nn.models import build_model

    keras.utils.set_random_seed(0)
    encoder = export_encoder(build_model(("acoustic",), conv_layers=1, conv_kernels=8, gru_layers=1, gru_width=8,
                                         dense_width=8), tmp_path / "encoder.keras")
    params = {"CORPUS": "demo", "N_PER_SPEAKER": N_PER_SPEAKER, "N_FOLDS": 2, "BOOTSTRAP": 100,
              "OUT_DIR": str(tmp_path / "audit"), "ENCODER": str(encoder)}
    check = ('{"n": report["n_utterances"], "folds": len(report["folds"]), "uar": '
             'report["summary"]["gender_uar_pooled"]["uar"], "metrics": [r["metric"] for r in comparison], '
             '"verdicts": [r["verdict"] for r in comparison], "encoder_n": encoder_report["n_utterances"]}')
    outputs, state, _ = execute("04_audit.ipynb", kernel, params, check)
    assert state["n"] == state["encoder_n"] == 10 * N_PER_SPEAKER and state["folds"] == 2
    assert 0.0 <= state["uar"] <= 1.0
    assert state["metrics"][:3] == ["gender_uar", "eer", "eer_same_gender"]
    assert set(state["verdicts"]) <= {"better", "worse", "equivalent", "inconclusive", "n/a"}
    for name in ("statistics/report.html", "compare/report.md", "encoder/report.json"):
        assert (tmp_path / "audit" / name).is_file(), name
    assert "Gender attacker UAR" in _markdown(outputs) and "Comparison: B against A" in _markdown(outputs)
    assert any("image/png" in o.get("data", {}) for o in outputs if o.output_type == "display_data")
