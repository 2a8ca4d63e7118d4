"""What the report reads: a collected label (and the one-line errors for unknown, uncollected and empty
labels), references (packaged seed RTX 4070 medians, seed-schema CSVs of 12 or 18 columns, another label,
the paper's example folder) and wrong-schema CSVs."""

from __future__ import annotations

import csv
import shutil

import pytest

from flyhpc.config_paths import PACKAGED
from flyhpc.errors import ConfigError
from flyhpc.report.label import load_label
from flyhpc.report.references import SEED_12, SEED_18, packaged_names, read_seed_csv, resolve_reference
from tests.unit.bundles import make_task, plan

from .conftest import LABEL



def test_load_label_lists_every_planned_task_with_its_state(bundle):
    data = load_label(bundle, LABEL)
    assert len(data.tasks) == 24 and len(data.done) == 22
    states = {t.name: (t.state, t.reason) for t in data.not_done}
    assert states == {"round_02/native_t0.1s_n2": ("missing", "no task record"),
                      "round_02/pytorch_t0.05s_n1": ("failed", "error: RuntimeError: out of luck")}
    done = next(t for t in data.done if t.name == "round_01/pytorch_t0.1s_n2")
    assert done.node == "node-b" and done.record["spikes"] > 0 and done.parquet.is_file()
    assert data.submission["run_label"] == LABEL


def test_unknown_uncollected_and_empty_labels_are_one_line_errors(bundle, tmp_path):
    with pytest.raises(ConfigError, match=r"^unknown run label 'nope': .* does not exist") as err:
        load_label(bundle, "nope")
    assert "\n" not in str(err.value)
    plan(make_task(tmp_path, "brian2cpp", 0.1, 1, 1, "fresh"))  # planned, never collected
    with pytest.raises(ConfigError, match=r"run label 'fresh' is not collected: .*manifest.csv does not exist; "
                                          r"run `flyhpc collect fresh` first"):
        load_label(tmp_path, "fresh")
    from flyhpc import collect

    collect.collect(tmp_path, "fresh")  # collected, but nothing ran
    with pytest.raises(ConfigError, match=r"run label 'fresh' has no done task \(1 planned: 1 missing\); see "
                                          r"`flyhpc status fresh`, then `flyhpc resubmit fresh --failed --missing`"):
        load_label(tmp_path, "fresh")


def test_packaged_seed_reference_holds_the_published_medians(bundle):
    assert "seed-rtx4070" in packaged_names()
    (ref,) = resolve_reference("seed-rtx4070", bundle)
    assert ref.kind == "csv" and ref.name == "seed RTX 4070" and "RTX 4070" in ref.hardware
    assert len(ref.rows) == 48  # 6 frameworks x 4 durations x n_run 1 and 32 (seed-spec §6.1)
    by_key = {(r["backend_key"], float(r["t_run"]), int(r["n_run"])): r for r in ref.rows}
    b2 = by_key[("brian2cpp", 1.0, 1)]
    assert (b2["sim_time"], b2["total_time"], b2["spikes"], b2["active_neurons"]) == ("2.909", "6.104", "16567", "380")
    assert by_key[("genn", 100.0, 32)]["sim_time"] == "2309.1" and by_key[("genn", 100.0, 32)]["spikes"] == "55256757"
    assert by_key[("nestgpu", 0.1, 32)]["total_time"] == "187.3"
    with open(PACKAGED / "jobs" / "reference" / "seed-rtx4070.csv", newline="") as fh:
        assert tuple(next(csv.reader(fh))) == SEED_18


def test_a_12_column_seed_csv_is_read_and_backends_are_named_from_frameworks(tmp_path):
    path = tmp_path / "old.csv"
    header = list(SEED_12)
    header[header.index("realtime_ratio")] = "rt_ratio"  # the seed's older header name
    path.write_text(",".join(header) + "\nGeNN (GPU),1,1.0,1.0,2.0,0.539,15.22,1.855,16978,386,success,x\n"
                    "PyTorch (CUDA),1,1.0,1,0,9.817,10.7,0.1,1,1,success,x\n")
    (ref,) = read_seed_csv(path)
    assert ref.name == "old" and [r["backend_key"] for r in ref.rows] == ["genn", "pytorch"]
    assert ref.rows[0]["realtime_ratio"] == "1.855"


def test_a_csv_with_several_run_labels_gives_one_reference_each(tmp_path):
    path = tmp_path / "many.csv"
    rows = [dict(zip(SEED_18, ["Brian2 (CPU)", "1", "1.0", "", "", "3", "4", "0.3", "", "", "success", "",
                               "brian2cpp", "sugar", "sugar", lab, "1", ""])) for lab in ("a", "b")]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, SEED_18)
        writer.writeheader()
        writer.writerows(rows)
    assert [r.name for r in read_seed_csv(path)] == ["many / a", "many / b"]


@pytest.mark.parametrize("text, problem", [
    ("framework,n_run,t_run\nx,1,1\n", "column 4 is missing, expected 'setup_time'"),
    ("framework,t_run,n_run,setup_time\n", "column 2 is 't_run', expected 'n_run'"),
    (",".join(SEED_12) + ",backend_key,oops\n", "column 14 is 'oops', expected 'experiment'"),
    ("", "column 1 is missing, expected 'framework'"),
])
def test_a_wrong_schema_csv_is_named_with_its_first_bad_column(tmp_path, text, problem):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        resolve_reference(str(path), tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and "not in the seed's benchmark-results.csv schema" in msg and problem in msg
    assert "flyhpc collect" in msg  # says what to give instead


def test_a_non_numeric_cell_is_named_by_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(",".join(SEED_12) + "\nBrian2 (CPU),1,1.0,,,fast,4,,,,success,\n")
    with pytest.raises(ConfigError, match=r"line 2: sim_time 'fast' is not a number"):
        read_seed_csv(path)


def test_other_labels_folders_and_unknown_names(bundle, tmp_path):
    (ref,) = resolve_reference("full", bundle)
    assert ref.kind == "label" and ref.label.label == "full" and "node-a (cpu)" in ref.hardware
    (by_path,) = resolve_reference(str(bundle / "full"), tmp_path)
    assert by_path.kind == "label"
    with pytest.raises(ConfigError, match=r"--reference nothing-here: no such label under .*packaged reference"):
        resolve_reference("nothing-here", bundle)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="folder holds neither a collected label"):
        resolve_reference(str(tmp_path / "empty"), bundle)


def test_the_paper_examples_folder_is_a_reference(tmp_path, monkeypatch, examples_dir):
    (ref,) = resolve_reference(str(examples_dir), tmp_path)
    assert ref.kind == "examples" and len(ref.examples) == 5 and "v630" in ref.hardware
    monkeypatch.setenv("FLYHPC_DATA", str(tmp_path))
    with pytest.raises(ConfigError, match=r"--reference paper: no paper example files in .*; run "
                                          r"`flyhpc data fetch --examples`"):
        resolve_reference("paper", tmp_path)
    shutil.copytree(examples_dir, tmp_path / "paper-examples")
    assert resolve_reference("paper", tmp_path)[0].kind == "examples"
