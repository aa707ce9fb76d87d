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
# Shared by the run notebooks: one fold of a 2-fold split, acoustic activation only, 1 epoch, short attacker training.
TINY_RUN = {"N_PER_SPEAKER": N_PER_SPEAKER, "N_FOLDS": 2, "FOLDS": (0,), "EPOCHS": 1, "ATTACK_EPOCHS": 5, "N_JOBS": 1}


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


def execute(name: str, kernel: dict, parameters: dict, check: str) -> tuple[list[dict], dict, float]:
    """Run notebook ``name`` with ``parameters``; return (all outputs in order, the check cell's JSON, seconds)."""
    book = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert all(not c.get("outputs") for c in book.cells if c.cell_type == "code"), f"{name} is committed with outputs"
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
             '"test": len(test), "head_test_uar": head_test_uar, "attackers": sorted(report.results), '
             '"attacker_test_uar": report.strongest_test_uar, "emotion_test_uar": emotion_test_uar, '
             '"comparison": comparison.to_dict("index")}')
    outputs, state, _ = execute("01_quickstart.ipynb", kernel, params, check)
    assert state["n"] == 10 * N_PER_SPEAKER
    assert state["h"][0] == state["n"] and state["h"][1] > 0
    assert 1 <= state["epochs"] <= 2
    assert state["attackers"] == ["logreg", "mlp", "svm"]
    assert state["test"] == 2 * N_PER_SPEAKER  # fold 1 leaves session 2 (one female, one male speaker) out
    for key in ("head_test_uar", "attacker_test_uar", "emotion_test_uar"):
        assert 0.0 <= state[key] <= 1.0, key
    assert set(state["comparison"]) == {"baseline (no adversary)", "gender adversary (λ = 1)"}
    html = _html(outputs)
    # the corpus table, the folds, the training history, the attackers and the comparison were displayed
    for needle in ("utterance_id", "validation", "val_gender_uar", "logreg", "fresh attacker", "gender attacker UAR"):
        assert needle in html, needle
    assert "a fresh attacker trained on the frozen" in _markdown(outputs)


def test_table1_runs_then_loads_the_run(kernel):
    results = kernel["base"] / "table1"
    params = {"RESULTS_DIR": str(results), "MODALITIES": ("acoustic",), "TASKS": ("activation",),
              "ADVERSARIES": (None, "gender", "speaker"), **TINY_RUN}
    check = ('{"records": len(records), "tables": {k: t.to_dict("records") for k, t in tables.items()}, '
             '"adversaries": sorted(frame.adversary.unique())}')
    outputs, state, _ = execute("02_table1.ipynb", kernel, params, check)
    assert "running 3 conditions" in _stream(outputs)
    assert state["records"] == 3 and state["adversaries"] == ["gender", "none", "speaker"]
    for name in ("folds.json", "manifest.json", "table1a.csv", "table1a.md", "table1b.csv", "table1b.md"):
        assert (results / name).is_file(), name
    html = _html(outputs)
    for needle in ("Activation Emo (baseline)", "Activation Priv (gender adv.)", "Activation Priv (speaker adv.)",
                   "Activation mi_accuracy (speaker adv.)"):
        assert needle in html, needle
    row = state["tables"]["table1a"][0]
    assert (row["modality"], row["corpus"]) == ("acoustic", "demo")
    assert row["Activation Emo (baseline)"].count("±") == 1 and row["Valence Emo (baseline)"] == "–"
    assert "gender adversary, acoustic / demo / activation" in _markdown(outputs)

    # Second run: the folder now has results, so the notebook only loads them (no training) and shows the same tables.
    again, state2, seconds = execute("02_table1.ipynb", kernel, params, check)
    text = _stream(again)
    assert "loading the finished run" in text and "running" not in text
    assert state2["tables"] == state["tables"]


def test_lambda_tradeoff_runs_the_sweep_and_plots_it(kernel):
    run_dir = kernel["base"] / "sweep"
    plot = kernel["base"] / "sweep-plot.png"
    params = {"RESULTS_DIR": str(kernel["base"] / "no-results"), "RUN_DIR": str(run_dir), "PLOT_PATH": str(plot),
              **TINY_RUN}
    check = '{"lambdas": sorted(sweep.grl_lambda), "baseline": baseline is not None, "columns": list(sweep.columns)}'
    outputs, state, _ = execute("03_lambda_tradeoff.ipynb", kernel, params, check)
    assert state["lambdas"] == [0.3, 0.5, 0.75, 1.0]  # the paper's values
    assert state["baseline"] is True
    assert {"emotion_uar_mean", "gender_uar_mean", "n_folds"} <= set(state["columns"])
    assert (run_dir / "lambda_sweep.csv").is_file() and (run_dir / "lambda_sweep.png").is_file()
    assert plot.is_file() and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any("image/png" in o.get("data", {}) for o in outputs if o.output_type == "display_data")
    discussion = _markdown(outputs)
    assert "The gender attacker's UAR goes from" in discussion and "Without adversary" in discussion

    # A finished run (here: the one just made) is loaded, not rerun, and gives the same discussion.
    unused = kernel["base"] / "unused"
    params.update({"RESULTS_DIR": str(run_dir), "RUN_DIR": str(unused)})
    again, state2, _ = execute("03_lambda_tradeoff.ipynb", kernel, params, check)
    assert "loading the lambda sweep" in _stream(again) and not unused.exists()
    assert state2["lambdas"] == state["lambdas"] and _markdown(again) == discussion
