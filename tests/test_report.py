"""Tests of the reports: escaping, missing cells, mean rank, byte-identical rebuilds and pdflatex."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

import bench

from bench.cli import main
from bench.config import load_config
from bench.report import leaderboard, mean_rank, write_reports
from bench.report_provenance import bibtex_key
from bench.report_tables import Table, escape_latex, escape_markdown, render_latex, render_markdown
from bench.results import ResultsStore
from bench.runner import Settings, run_benchmark
from bench.splits import Protocol
from models import get_rungs

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
CHEAP_MODELS = ["constant", "knn_5", "decision_tree"]
# Error kinds the runner records, matched from the error text of the fault case with failed folds.
ERROR_KINDS = {"exit status 137": "memory", "time limit": "time_limit"}


@pytest.fixture(scope="module")
def benchmark_store(tmp_path_factory, data_dir) -> Path:
    """Run a tiny real benchmark: iris and labor, 2 folds, 1 repeat, 3 cheap models, one worker."""
    path = tmp_path_factory.mktemp("store") / "results.sqlite"
    specs = load_config(REPOSITORY_ROOT / "datasets.yaml").select(["iris", "labor"])
    settings = Settings(protocol=Protocol(n_folds=2, n_repeats=1, seed=0), data_dir=data_dir, n_workers=1,
                        n_threads=1)
    with ResultsStore(path) as store:
        summary = run_benchmark(specs, get_rungs(CHEAP_MODELS), store, settings)
    assert summary.n_ok == 12
    return path


def _copy_store(source: Path, tmp_path: Path) -> Path:
    target = tmp_path / "results.sqlite"
    with ResultsStore(source) as store:
        store.connection.execute(f"VACUUM INTO '{target}'")
    return target


def _template_row(store: ResultsStore) -> dict:
    row = store.frame().iloc[0].to_dict()
    return {key: (None if isinstance(value, float) and pd.isna(value) else value) for key, value in row.items()}


def _case_rows(store: ResultsStore, pairs: list[tuple[str, str, int, str, str | None, str | None]]) -> list[dict]:
    """Return result rows copied from a real row, one per (model, dataset, fold, status, error_kind, error)."""
    template = _template_row(store)
    rows = []
    for model, dataset, fold, status, kind, error in pairs:
        row = dict(template, model=model, dataset=dataset, fold=fold, repeat=0, status=status, error_kind=kind,
                   error=error, family="case family", run_id=f"{dataset}/{model}/0/{fold}")
        if status != "ok":
            row.update(train_score=None, test_score=None, gap=None, n_parameters=None, params_per_sample=None)
        rows.append(row)
    return rows


def _all_bytes(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


# ---- Escaping -----------------------------------------------------------------------

@pytest.mark.parametrize("raw, escaped", [
    ("mlp_20M", r"mlp\_20M"),
    ("rf_100%_feat", r"rf\_100\%\_feat"),
    ("gene&expr", r"gene\&expr"),
    ("ds_#7", r"ds\_\#7"),
    ("cost $ data", r"cost \$ data"),
    ("brace{test}", r"brace\{test\}"),
    ("x^2 poly", r"x\textasciicircum{}2 poly"),
    ("tab~net data", r"tab\textasciitilde{}net data"),
    ("back\\slash", r"back\textbackslash{}slash"),
    ("pipe|model", r"pipe\textbar{}model"),
])
def test_escape_latex_special_characters(raw, escaped):
    assert escape_latex(raw) == escaped


def test_escape_markdown_pipe_and_emphasis():
    assert escape_markdown("pipe|model") == r"pipe\|model"
    assert escape_markdown("a*b_c") == r"a\*b\_c"
    assert escape_markdown("back\\slash") == r"back\\slash"
    assert escape_markdown("cost $ data") == r"cost \$ data"


def test_render_markdown_aligns_escaped_cells():
    table = Table("T-X", "escaping", ["model", "score"], [["pipe|model", "0.5"], ["a", "0.25"]], ["score: higher."],
                  numeric_columns=(1,))
    lines = [line for line in render_markdown(table).splitlines() if line.startswith("|")]

    assert len(lines) == 4
    assert len({len(line) for line in lines}) == 1
    assert r"pipe\|model" in lines[2]
    assert lines[2].count("|") - lines[2].count(r"\|") == 3


def test_render_latex_aligns_escaped_cells():
    table = Table("T-X", "escaping", ["model", "score"], [["a_b%c", "0.5"], ["d", "0.25"]], ["legend line"],
                  numeric_columns=(1,))
    rows = [line for line in render_latex(table).splitlines() if line.endswith(r"\\") and " & " in line]

    assert len(rows) == 3
    assert len({line.index(" & ") for line in rows}) == 1
    assert r"a\_b\%c" in rows[1]


def test_table_shortens_long_names_with_mapping():
    long_name = "a_dataset_name_that_is_far_too_long_for_a_table"
    table = Table("T-X", "long names", ["dataset"], [[long_name], [long_name + "_2"]], ["legend"])
    rows, mapping = table.shortened()

    assert len({row[0] for row in rows}) == 2
    assert all(len(row[0]) <= 28 for row in rows)
    assert sorted(mapping.values()) == sorted([long_name, long_name + "_2"])
    assert "Shortened names:" in render_markdown(table)


# ---- Aggregation with failed runs ---------------------------------------------------

@pytest.fixture()
def failed_folds_store(benchmark_store, tmp_path, cases_dir) -> Path:
    """The fault case with failed folds, as result rows next to the tiny benchmark's."""
    path = _copy_store(benchmark_store, tmp_path)
    case = pd.read_csv(cases_dir / "C19-results_with_failed_folds.csv")
    pairs = []
    for row in case.itertuples():
        error = None if pd.isna(row.error) else row.error
        kind = None
        if row.status != "ok":
            kind = next((k for text, k in ERROR_KINDS.items() if text in error), "exception")
        pairs.append((row.model, row.dataset, row.fold, row.status, kind, error))
    with ResultsStore(path) as store:
        store.add(_case_rows(store, pairs))
    return path


def test_leaderboard_counts_ok_runs_per_cell(failed_folds_store):
    with ResultsStore(failed_folds_store) as store:
        board = leaderboard(store.frame()).set_index(["model", "dataset"])

    assert (board.loc[("mlp_20M", "d2"), "n_runs_ok"], board.loc[("mlp_20M", "d2"), "n_runs"]) == (2, 5)
    assert (board.loc[("logreg", "d1"), "n_runs_ok"], board.loc[("logreg", "d1"), "n_runs"]) == (4, 5)
    assert not board.loc[("mlp_20M", "d2"), "complete"]
    assert pd.isna(board.loc[("mlp_20M", "d2"), "test_score_mean"])
    assert "out of memory" in board.loc[("mlp_20M", "d2"), "reason"]
    assert board.loc[("logreg", "d2"), "complete"]


def test_mean_rank_drops_incomplete_datasets_for_all(failed_folds_store):
    with ResultsStore(failed_folds_store) as store:
        ranks, dropped = mean_rank(leaderboard(store.frame()))
    dropped = dict(dropped)

    # The case models have no runs on iris and labor, and each case dataset has one incomplete cell.
    assert set(dropped) == {"d1", "d2", "iris", "labor"}
    assert "logreg 4/5 runs ok" in dropped["d1"]
    assert "mlp_20M 2/5 runs ok" in dropped["d2"]
    assert "constant has no runs" in dropped["d1"]
    assert ranks["n_datasets"].eq(0).all()
    assert ranks["mean_rank"].isna().all()


def test_mean_rank_over_common_datasets(benchmark_store):
    with ResultsStore(benchmark_store) as store:
        ranks, dropped = mean_rank(leaderboard(store.frame()))

    assert dropped == []
    assert ranks["n_datasets"].eq(2).all()
    # Ranks 1..3 on each of two datasets average to 2.
    assert ranks["mean_rank"].mean() == pytest.approx(2.0)


def test_report_missing_cells_shown_with_reason(failed_folds_store, tmp_path):
    with ResultsStore(failed_folds_store) as store:
        write_reports(store, tmp_path / "reports")
    markdown = (tmp_path / "reports" / "leaderboards.md").read_text(encoding="utf-8")
    board_csv = pd.read_csv(tmp_path / "reports" / "leaderboards.csv")
    failures = pd.read_csv(tmp_path / "reports" / "failures.csv")

    d2_section = markdown.split("## T-LB-d2")[1].split("## T-LB-")[0]
    mlp_line = next(line for line in d2_section.splitlines() if line.startswith("| mlp\\_20M"))
    assert "missing" in mlp_line
    assert "2/5" in mlp_line
    assert "time limit 600s exceeded" in mlp_line
    assert "Nothing is imputed." in d2_section
    mlp_row = board_csv[(board_csv["model"] == "mlp_20M") & (board_csv["dataset"] == "d2")].iloc[0]
    assert pd.isna(mlp_row["test_score_mean"])
    counts = failures.set_index(["model", "error_kind"])["n_runs"]
    assert counts[("mlp_20M", "memory")] == 2
    assert counts[("mlp_20M", "time_limit")] == 1
    assert counts[("logreg", "exception")] == 1


# ---- Whole reports ------------------------------------------------------------------

def test_report_rebuild_byte_identical(benchmark_store, tmp_path):
    with ResultsStore(benchmark_store) as store:
        first = write_reports(store, tmp_path / "first")
        write_reports(store, tmp_path / "second")
    first_bytes = _all_bytes(tmp_path / "first")

    assert {path.name for path in first} >= {"leaderboards.md", "leaderboards.tex", "leaderboards.csv",
                                             "gap_vs_params_per_sample.png", "gap_vs_params_per_sample.svg",
                                             "test_score_vs_n_parameters.svg", "references.bib"}
    assert first_bytes == _all_bytes(tmp_path / "second")
    assert b"<dc:date>" not in first_bytes["figures/gap_vs_params_per_sample.svg"]
    assert b"tIME" not in first_bytes["figures/gap_vs_params_per_sample.png"]


def test_report_empty_store_writes_placeholders(tmp_path):
    with ResultsStore(tmp_path / "results.sqlite") as store:
        written = write_reports(store, tmp_path / "reports")
    rank_markdown = (tmp_path / "reports" / "mean_rank.md").read_text(encoding="utf-8")

    assert len(written) == 20
    assert "No provenance recorded" in rank_markdown
    assert "No rows: nothing to report in this table." in rank_markdown
    assert "No results yet." in (tmp_path / "reports" / "leaderboards.md").read_text(encoding="utf-8")


def test_citation_version_matches_package():
    citation = yaml.safe_load((REPOSITORY_ROOT / "CITATION.cff").read_text(encoding="utf-8"))

    assert citation["cff-version"] == "1.2.0"
    assert str(citation["version"]) == bench.__version__
    assert citation["title"].startswith("occam-bench")


def test_report_provenance_and_legends_present(benchmark_store, tmp_path):
    with ResultsStore(benchmark_store) as store:
        write_reports(store, tmp_path)
        newest = max(store.frame()["created_utc"])

    for name in ("leaderboards.md", "mean_rank.md", "gap_by_params_per_sample.md", "failures.md"):
        text = (tmp_path / name).read_text(encoding="utf-8")
        assert text.index("## Provenance") < text.index("## T-"), name
        assert f"Results dated {newest}" in text, name
        assert "2 folds x 1 repeats, seed 0" in text, name
        assert "sha256" in text, name
        assert text.count("## T-") == text.count("Legend of T-"), name
    leaderboards = (tmp_path / "leaderboards.md").read_text(encoding="utf-8")
    assert "## T-LB-iris" in leaderboards
    assert "## T-LB-labor" in leaderboards
    assert "## T-GAP-PPS-FAMILY" in (tmp_path / "gap_by_params_per_sample.md").read_text(encoding="utf-8")
    assert r"\label{tab:T-RANK}" in (tmp_path / "mean_rank.tex").read_text(encoding="utf-8")
    recorded = json.loads((tmp_path / "provenance.json").read_text(encoding="utf-8"))
    assert recorded["results_newest_utc"] == newest
    assert sorted(row["dataset"] for row in recorded["datasets"]) == ["iris", "labor"]


@pytest.fixture()
def special_names_store(benchmark_store, tmp_path, cases_dir) -> Path:
    """Result rows whose model and dataset names contain LaTeX and Markdown special characters."""
    path = _copy_store(benchmark_store, tmp_path)
    with open(cases_dir / "C24-latex_names.csv", newline="", encoding="utf-8") as handle:
        names = list(csv.DictReader(handle))
    pairs = [(row["model"], row["dataset"], fold, "ok", None, None) for row in names for fold in (0, 1)]
    pairs.append((names[0]["model"], names[0]["dataset"], 2, "failed", "exception", "ValueError: bad {x}_%&#$^~\\"))
    with ResultsStore(path) as store:
        store.add(_case_rows(store, pairs))
    return path


def test_report_latex_compiles_with_special_names(special_names_store, tmp_path):
    if shutil.which("pdflatex") is None:
        message = "pdflatex not found; install the Debian packages texlive-latex-base and texlive-latex-recommended"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI installs them in .ci/run)")
        pytest.skip(message)
    reports = tmp_path / "reports"
    with ResultsStore(special_names_store) as store:
        write_reports(store, reports)
    stems = ["leaderboards", "mean_rank", "gap_by_params_per_sample", "failures"]
    inputs = "\n".join(rf"\input{{{stem}.tex}}\clearpage" for stem in stems)
    (reports / "main.tex").write_text(
        "\\documentclass{article}\n\\usepackage[T1]{fontenc}\n\\usepackage{booktabs}\n\\usepackage{url}\n"
        "\\usepackage[margin=1cm,landscape]{geometry}\n\\begin{document}\n" + inputs + "\n\\end{document}\n",
        encoding="utf-8",
    )
    completed = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "main.tex"], cwd=reports,
                               capture_output=True, text=True, timeout=120)
    leaderboards = (reports / "leaderboards.tex").read_text(encoding="utf-8")

    assert completed.returncode == 0, completed.stdout[-3000:]
    assert (reports / "main.pdf").stat().st_size > 0
    assert r"rf\_100\%\_feat" in leaderboards
    assert r"back\textbackslash{}slash" in leaderboards
    assert r"x\textasciicircum{}2 poly" in leaderboards
    assert r"tab\textasciitilde{}net data" in leaderboards
    assert r"brace\{test\}" in leaderboards
    assert r"cost \$ data" in leaderboards


def test_report_csv_and_markdown_names(special_names_store, tmp_path):
    with ResultsStore(special_names_store) as store:
        write_reports(store, tmp_path)
    board_csv = pd.read_csv(tmp_path / "leaderboards.csv")
    markdown = (tmp_path / "leaderboards.md").read_text(encoding="utf-8")

    assert {"pipe|model", "rf_100%_feat", "back\\slash", "x^2 poly"} <= set(board_csv["model"]) | set(
        board_csv["dataset"])
    assert r"pipe\|model" in markdown
    assert "pipe|model" not in markdown.replace(r"\|", "")


def test_references_bib_stable_keys(benchmark_store, tmp_path):
    datasets_file = tmp_path / "datasets.yaml"
    datasets_file.write_text(
        "datasets:\n"
        "  - name: iris\n    openml: 61\n    reference: 'Fisher, R. A. (1936). The use of multiple measurements.'\n"
        "  - name: labor\n    openml: 4\n",
        encoding="utf-8",
    )
    with ResultsStore(benchmark_store) as store:
        write_reports(store, tmp_path / "reports", load_config(datasets_file))
    bib = (tmp_path / "reports" / "references.bib").read_text(encoding="utf-8")

    assert "@misc{occam-bench:iris," in bib
    assert "Fisher, R. A. (1936)" in bib
    assert "@misc{occam-bench:labor," in bib
    assert "% labor: no reference; add a `reference:` string" in bib
    assert r"\url{https://www.openml.org/d/61}" in bib
    assert bibtex_key("ds_#7 x") == "occam-bench:ds-7-x"


def test_cli_report_writes_reports(benchmark_store, tmp_path, capsys):
    code = main(["--quiet", "report", "--results", str(benchmark_store), "--reports", str(tmp_path / "out"),
                 "--datasets", str(REPOSITORY_ROOT / "datasets.yaml")])

    assert code == 0
    assert (tmp_path / "out" / "leaderboards.tex").is_file()
    assert "leaderboards.md" in capsys.readouterr().out


def test_cli_report_missing_results_error(tmp_path, capsys):
    code = main(["--quiet", "report", "--results", str(tmp_path / "absent.sqlite"), "--reports", str(tmp_path)])

    assert code == 2
    assert "results database not found" in capsys.readouterr().err


@pytest.mark.parametrize("value, expected", [
    (2001.0, "2,001"),
    (20003239.0, "20,003,239"),
    (12.4, "12"),
    (0.5, "0.5"),
    (float("nan"), "missing"),
])
def test_format_count_cases(value, expected):
    from bench.report_tables import format_count

    assert format_count(value) == expected
