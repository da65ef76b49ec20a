"""``sanreid synth`` and ``sanreid synth-preview`` from the command line."""

import numpy as np
from click.testing import CliRunner

from densepose_textures.imageio import read_rgb
from pipeline.cli import main

SMALL = ["--ids", "4", "--images-per-id", "3", "--cameras", "2", "--image-size", "64x32",
         "--texture-size", "16", "--jobs", "1"]


def _run(*args, **kwargs):
    return CliRunner().invoke(main, list(args), catch_exceptions=False, **kwargs)


def test_synth_writes_a_dataset_and_keeps_it_when_asked_again(tmp_path):
    out = tmp_path / "ds"
    result = _run("synth", "--out", str(out), *SMALL)
    assert result.exit_code == 0, result.output
    images = sorted(out.rglob("*.jpg"))
    assert len(images) == 12 and read_rgb(images[0]).shape == (64, 32, 3)
    assert len(list((out / "iuv").rglob("*.png"))) == 12
    stamp = images[0].stat().st_mtime_ns
    again = _run("synth", "--out", str(out), *SMALL)
    assert again.exit_code == 0 and images[0].stat().st_mtime_ns == stamp  # same settings: kept

    other = _run("synth", "--out", str(out), *SMALL, "--seed", "5")
    assert other.exit_code == 2 and "--force" in other.output and "Traceback" not in other.output
    forced = _run("synth", "--out", str(out), *SMALL, "--seed", "5", "--force")
    assert forced.exit_code == 0 and sorted(out.rglob("*.jpg")) != images


def test_synth_defaults_come_from_params_file(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("synth:\n  ids: 2\n  images_per_id: 2\n  cameras: 2\n  image_size: [32, 16]\n"
                      "  texture_size: 8\n  jobs: 1\n")
    result = CliRunner().invoke(main, ["--params", str(params), "synth", "--out", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "d").rglob("*.jpg"))) == 4


def test_synth_default_output_is_data_raw_synth(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["synth", *SMALL])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "data" / "raw" / "synth" / "textures.h5").is_file()


def test_synth_refuses_bad_options_cleanly(tmp_path):
    for args, words in ((["--cameras", "12"], "cameras=12"), (["--image-size", "big"], "HxW")):
        result = CliRunner().invoke(main, ["synth", "--out", str(tmp_path / "x"), *SMALL, *args])
        assert result.exit_code == 2 and words in result.output, result.output
        assert "Traceback" not in result.output


def test_synth_preview_draws_images_iuv_and_atlas(synth_root, tmp_path):
    out = tmp_path / "grid.png"
    result = _run("synth-preview", "--root", str(synth_root), "--out", str(out), "--ids", "3", "--images", "2")
    assert result.exit_code == 0, result.output
    grid = read_rgb(out)
    # 3 rows of 128 px (+ 4 px gaps); 2 images + 2 IUV of 64 px, 2 gaps, an atlas 2/3 as wide as tall
    assert grid.shape == (3 * 128 + 2 * 4, 4 * 64 + 2 * 4 + 128 * 2 // 3, 3)
    iuv_block = grid[:128, 2 * 64 + 4: 4 * 64 + 4]
    assert len(np.unique(iuv_block.reshape(-1, 3), axis=0)) > 20  # parts in colour
    chosen = _run("synth-preview", "--root", str(synth_root), "--out", str(out), "--pids", "2,7", "--images", "1")
    assert chosen.exit_code == 0 and read_rgb(out).shape[0] == 2 * 128 + 4
    for args, words in ((["--root", str(tmp_path / "none")], "textures.h5"), (["--pids", "2,x"], "--pids"),
                        (["--pids", "99"], "identity 99")):
        bad = CliRunner().invoke(main, ["synth-preview", "--out", str(out), "--root", str(synth_root), *args])
        assert bad.exit_code == 2 and words in bad.output and "Traceback" not in bad.output, bad.output
