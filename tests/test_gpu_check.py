import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WITHOUT_DVCLIVE = ("import runpy, sys; sys.modules['dvclive'] = None; sys.argv = ['gpu_check.py', '--dry-run']; "
                   "sys.exit(runpy.run_path('benchmarks/gpu_check.py', run_name='__main__'))")


@pytest.mark.slow  # about 30 s on the loaded 2-core machine
def test_gpu_check_dry_run_runs_every_part_without_dvclive():
    out = subprocess.run([sys.executable, "-c", WITHOUT_DVCLIVE], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("figures: ")
    figures = dict(pair.split("=", 1) for pair in last[len("figures: "):].split())
    assert figures["failed"] == "none" and figures["device"] == "cpu"
    for name in ("baseline", "san", "san_joint", "baseline_compiled", "san_compiled", "san_joint_compiled"):
        assert float(figures[f"{name}_step_ms"]) > 0
    assert float(figures["device_path_samples_s"]) > 0 and figures["device_path_limit"] in ("data", "model")
    assert figures["e2e_baseline_gpu_cpu_agree"] == figures["e2e_san_gpu_cpu_agree"] == "yes"
    assert float(figures["iuv_convert_store_images_s"]) > 0
    assert "dvclive is not installed" in out.stderr
