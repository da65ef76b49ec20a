"""benchmarks/check_readme_figures.py: it reads the README's default-run tables and catches a
figure that differs from a report (the full check runs `dvc repro`; it is a script, not a test)."""

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def check():
    spec = importlib.util.spec_from_file_location("check_readme_figures", REPO / "benchmarks/check_readme_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _as_report(tables):
    """A report with the README's rows, as `sanreid report` prints them (more columns, "(as stored)")."""
    from pipeline.report import metrics_table

    header = metrics_table({}, ("baseline", "san")).splitlines()
    lines = header[:2]
    columns = [c.strip() for c in lines[0].strip("|").split("|")]
    for row in tables["metrics"]:
        lines.append("| " + " | ".join(row.get(c, "9.9") for c in columns) + " |")
    lines += ["", "### synth: texture set against the true atlases", "",
              "| fill | step | share of texels | MAE | PSNR (dB) |", "| --- | --- | ---: | ---: | ---: |"]
    for row in tables["texture"]:
        lines.append(f"| {row['fill']} (as stored) | {row['step']} | {row['share of texels']} | {row['MAE']} | "
                     f"{row['PSNR (dB)']} |")
    return "\n".join(lines) + "\n(800 images with a person; errors in 8-bit levels per channel)\n"


def test_the_readme_tables_are_found(check):
    tables = check.readme_tables((REPO / "README.md").read_text())
    assert {row["variant"] for row in tables["metrics"]} == {"baseline", "san"}
    assert {"Rank-1", "mAP", "Rank-1 (RR)"} <= set(tables["metrics"][0])
    assert [row["step"] for row in tables["texture"]][-1] == "all"


def test_a_differing_figure_or_a_missing_row_is_reported(check):
    readme = check.readme_tables((REPO / "README.md").read_text())
    report = _as_report(readme)
    checked, differences = check.compare(readme, check.report_tables(report))
    assert checked == sum(len(row) - 3 for row in readme["metrics"]) + sum(len(row) - 2 for row in readme["texture"])
    assert differences == []

    san = next(row for row in readme["metrics"] if row["variant"] == "san")
    changed = report.replace(f"| san | 1 | {san['Rank-1']} |", "| san | 1 | 0.1 |")
    _, differences = check.compare(readme, check.report_tables(changed))
    assert differences == [f"metrics row synth / synth / san, Rank-1: README {san['Rank-1']}, report 0.1"]

    all_row = next(row for row in readme["texture"] if row["step"] == "all")
    changed = report.replace(f"| all | {all_row['share of texels']} | {all_row['MAE']} |",
                             f"| all | {all_row['share of texels']} | 99.9 |")
    assert check.compare(readme, check.report_tables(changed))[1] == [
        f"texture row nearest / all, MAE: README {all_row['MAE']}, report 99.9"]

    without_baseline = "\n".join(line for line in report.splitlines() if "| baseline |" not in line)
    assert check.compare(readme, check.report_tables(without_baseline))[1] == [
        "metrics row synth / synth / baseline: not in the report"]


def test_script_exit_status(check, tmp_path):
    report = tmp_path / "report.md"
    report.write_text(_as_report(check.readme_tables((REPO / "README.md").read_text())))
    assert check.main(["--report", str(report)]) == 0
    report.write_text(report.read_text().replace("| baseline | 1 |", "| baseline | 2 |"))
    assert check.main(["--report", str(report)]) == 1
    assert check.main(["--report", str(tmp_path / "missing.md")]) == 2
