"""Check the README's default-run figures against the report of a fresh ``dvc repro``.

The README section "The default run" quotes two tables of ``data/metrics/report.md``: the
metrics (one row per training set, test set and variant) and the texture quality of the
synthetic set. Every figure quoted there must equal the report's, cell for cell as printed.

    python benchmarks/check_readme_figures.py --run            # fresh clone of HEAD, dvc repro there (minutes)
    python benchmarks/check_readme_figures.py                  # against ./data/metrics/report.md
    python benchmarks/check_readme_figures.py --report FILE    # against another report

``--run`` clones the repository's committed HEAD into a temporary folder (uncommitted changes
are not part of it), runs ``dvc repro`` there with this Python's ``sanreid`` and ``dvc``, and
compares its report (``--keep`` keeps the clone). Exit status 0 when every figure agrees, 1
when one differs (each difference is printed), 2 on missing input. Last line: ``name=value``
pairs (cells checked, cells differing, seconds of ``dvc repro``).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SECTION = "### The default run"
KEY_COLUMNS = {"metrics": ("train", "test", "variant"), "texture": ("fill", "step")}


def markdown_tables(text):
    """Every Markdown table in ``text``: a list of ``{column: cell}`` rows per table."""
    tables, block = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            block.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif block:
            if len(block) >= 2 and set("".join(block[1])) <= set("-: "):
                tables.append([dict(zip(block[0], row)) for row in block[2:]])
            block = []
    return tables


def kind_of(table):
    columns = set(table[0]) if table else set()
    if {"train", "test", "variant", "Rank-1"} <= columns:
        return "metrics"
    if {"fill", "step", "MAE"} <= columns:
        return "texture"
    return None


def readme_tables(readme_text):
    """The metrics and texture-quality tables of the README's default-run section."""
    start = readme_text.find(SECTION + "\n")
    if start < 0:
        raise SystemExit(f"README.md has no section {SECTION!r}")
    end = readme_text.find("\n### ", start + len(SECTION))
    found = {kind_of(t): t for t in markdown_tables(readme_text[start:end if end > 0 else None])}
    missing = [kind for kind in KEY_COLUMNS if kind not in found]
    if missing:
        raise SystemExit(f"README.md, {SECTION!r}: no {' or '.join(missing)} table")
    return {kind: found[kind] for kind in KEY_COLUMNS}


def report_tables(report_text):
    """The report's metrics table and the texture-quality table of each training set."""
    tables = {"metrics": [], "texture": []}
    for table in markdown_tables(report_text):
        if kind_of(table):
            tables[kind_of(table)].extend(table)
    return tables


def _key(kind, row):
    # the report names the stored fill "nearest (as stored)", the README "nearest"
    return tuple(row.get(c, "").replace(" (as stored)", "") for c in KEY_COLUMNS[kind])


def compare(readme, report):
    """(cells checked, differences as text lines) of every figure the README quotes."""
    checked, differences = 0, []
    for kind, rows in readme.items():
        by_key = {_key(kind, row): row for row in report[kind]}
        for row in rows:
            key = _key(kind, row)
            theirs = by_key.get(key)
            if theirs is None:
                differences.append(f"{kind} row {' / '.join(key)}: not in the report")
                continue
            for column, value in row.items():
                if column in KEY_COLUMNS[kind]:
                    continue
                checked += 1
                if theirs.get(column) != value:
                    differences.append(f"{kind} row {' / '.join(key)}, {column}: README {value}, "
                                       f"report {theirs.get(column, '(no such column)')}")
    return checked, differences


def fresh_report(keep):
    """Clone HEAD into a temporary folder, run ``dvc repro`` there; (report text, seconds)."""
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout
    if dirty:
        print("note: uncommitted changes are not part of the run (it clones the committed HEAD)")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.strip()
    folder = Path(tempfile.mkdtemp(prefix="sanreid-figures-"))
    clone = folder / "san-reid"
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    try:
        subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
        print(f"dvc repro in a fresh clone of {commit} ({clone}) ...", flush=True)
        started = time.perf_counter()
        subprocess.run(["dvc", "repro"], cwd=clone, env=env, check=True)
        seconds = time.perf_counter() - started
        return (clone / "data/metrics/report.md").read_text(), seconds
    except subprocess.CalledProcessError as err:
        raise SystemExit(f"{' '.join(err.cmd)} failed (exit status {err.returncode}); the clone is in {clone}")
    finally:
        if keep:
            print(f"kept the clone: {clone}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="store_true", help="run dvc repro in a fresh clone of HEAD first")
    parser.add_argument("--keep", action="store_true", help="with --run: keep the clone")
    parser.add_argument("--report", type=Path, default=Path("data/metrics/report.md"),
                        help="report to compare with (default: data/metrics/report.md)")
    parser.add_argument("--readme", type=Path, default=REPO / "README.md", help="README to check")
    args = parser.parse_args(argv)

    readme = readme_tables(args.readme.read_text())
    if args.run:
        report_text, seconds = fresh_report(args.keep)
    else:
        if not args.report.is_file():
            print(f"no report at {args.report}: run `dvc repro` first, or use --run", file=sys.stderr)
            return 2
        report_text, seconds = args.report.read_text(), 0.0
    checked, differences = compare(readme, report_tables(report_text))
    for line in differences:
        print(line)
    print("README figures agree with the report" if not differences else
          f"README figures differ from the report in {len(differences)} place(s)")
    print(f"cells_checked={checked} cells_differing={len(differences)} repro_seconds={seconds:.0f}")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
