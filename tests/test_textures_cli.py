import cv2
import pytest
from click.testing import CliRunner

from densepose_textures.pictures import STEP_COLOURS
from densepose_textures.shards import TextureSet
from pipeline.cli import main


@pytest.fixture(scope="module")
def built(synth_root, synth_iuv_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "set"
    result = CliRunner().invoke(main, ["gen-textures", "--dataset", "synth", "--root", str(synth_root), "--iuv",
                                       str(synth_iuv_store), "--out", str(out), "--size", "16", "--jobs", "1"])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}: 32 images, 32 with a person" in result.output
    return out


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_gen_textures_uses_the_synthetic_mirror_map_and_reuses_or_refuses(built, synth_root, synth_iuv_store):
    attrs = TextureSet(built).attrs
    assert attrs["mirror_source"] == "synthetic" and attrs["size"] == 16 and attrs["software_version"]
    common = ["gen-textures", "--dataset", "synth", "--root", str(synth_root), "--iuv", str(synth_iuv_store),
              "--out", str(built)]
    again = run(*common, "--size", "16")
    assert again.exit_code == 0 and "reused" in again.output
    other = run(*common)  # the default P = 32
    assert other.exit_code == 2 and "size=16, this run asks for size=32" in other.output
    assert "Traceback" not in other.output


def test_gen_textures_without_a_store_says_what_to_run(tmp_path, synth_root, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("gen-textures", "--dataset", "synth", "--root", str(synth_root))
    assert result.exit_code == 2 and "sanreid iuv --dataset synth" in result.output


def test_info_show_atlas(built, synth_root, tmp_path):
    info = run("textures", "info", str(built))
    assert info.exit_code == 0, info.output
    assert "32 images, P=16" in info.output and "observed" in info.output and "iuv_backend: synth" in info.output
    show = run("textures", "show", str(built), "--n", "3", "--root", str(synth_root), "--out", str(tmp_path / "g.png"))
    assert show.exit_code == 0, show.output
    assert cv2.imread(str(tmp_path / "g.png")).shape[0] > 2 * 192
    key = TextureSet(built).keys[4]
    atlas = run("textures", "atlas", str(built), "--key", key, "--scale", "2", "--out", str(tmp_path / "a.png"))
    assert atlas.exit_code == 0, atlas.output
    assert cv2.imread(str(tmp_path / "a.png")).shape == (6 * 32, 4 * 32, 3)  # exactly the atlas, for apply_net.py
    assert "P=16, enlarged 2x" in atlas.output  # the set's P, not the picture's
    steps = run("textures", "atlas", str(built), "--key", key, "--what", "provenance", "--out", str(tmp_path / "p.png"))
    assert steps.exit_code == 0 and "provenance of" in steps.output and "P=16)" in steps.output, steps.output
    picture = cv2.imread(str(tmp_path / "p.png"))[..., ::-1]
    assert picture.shape[0] > 6 * 16 and picture.shape[1] > 4 * 16  # the atlas, and a legend below it
    legend = picture[6 * 16:]
    for colour in STEP_COLOURS.values():  # a swatch of every fill step
        assert (legend == colour).all(axis=2).sum() >= 100, colour
    missing = run("textures", "atlas", str(built), "--key", "nope.jpg", "--out", str(tmp_path / "b.png"))
    assert missing.exit_code == 2 and "not in texture set" in missing.output


def test_quality_table(built, synth_root):
    result = run("textures", "quality", str(built), "--truth", str(synth_root / "textures.h5"), "--methods", "all")
    assert result.exit_code == 0, result.output
    for method in ("nearest", "pushpull", "telea"):
        assert f"| {method} | observed |" in result.output and f"| {method} | all | 100.0% |" in result.output
    bad = run("textures", "quality", str(built), "--truth", str(synth_root), "--methods", "magic")
    assert bad.exit_code == 2 and "unknown fill method" in bad.output


def test_gen_textures_fused_and_truth_sets_beside_the_per_image_one(synth_root, synth_iuv_store, tmp_path,
                                                                    monkeypatch):
    monkeypatch.chdir(tmp_path)
    common = ["gen-textures", "--dataset", "synth", "--root", str(synth_root), "--iuv", str(synth_iuv_store),
              "--size", "8", "--jobs", "1"]
    for options, name, attrs in ((["--fuse", "identity"], "synth-fused", ("warp", "identity")),
                                 (["--source", "truth"], "synth-truth", ("truth", "none"))):
        result = run(*common, *options)
        assert result.exit_code == 0, result.output
        assert f"wrote data/textures/{name}: 32 images" in result.output
        ts = TextureSet(tmp_path / "data" / "textures" / name)
        assert (ts.attrs["source"], ts.attrs["fuse"]) == attrs
    steps = {int(code) for record in TextureSet(tmp_path / "data/textures/synth-fused") for code in
             set(record["provenance"].ravel())}
    assert 5 in steps and 0 in steps and 6 not in steps
    again = run(*common, "--fuse", "identity")
    assert again.exit_code == 0 and "reused" in again.output
    both = run(*common, "--source", "truth", "--fuse", "identity")
    assert both.exit_code == 2 and "use fuse 'none'" in both.output
    real = run("gen-textures", "--dataset", "market1501", "--source", "truth")
    assert real.exit_code == 2 and "only the synthetic dataset" in real.output and "Traceback" not in real.output

    assert run(*common).exit_code == 0  # the per-image set, data/textures/synth
    names = ["synth", "synth-fused", "synth-truth"]
    table = run("textures", "quality", *(f"data/textures/{n}" for n in names), "--truth", str(synth_root))
    assert table.exit_code == 0, table.output
    rows = {tuple(cell.strip() for cell in line.strip("|").split("|")[:2]): line.split("|")[-3].strip()
            for line in table.output.splitlines() if line.startswith("| synth")}
    for label in ("synth: nearest (as stored)", "synth-fused: nearest, fused by identity (as stored)",
                  "synth-truth: truth (as stored)"):
        assert {(label, region) for region in ("observed in the image", "not observed", "all")} <= set(rows)
    assert float(rows[("synth-truth: truth (as stored)", "all")]) < 0.5  # only the resampling to P = 8
    assert "| synth-fused: nearest, fused by identity (as stored) | identity |" in table.output
    refill = run("textures", "quality", "data/textures/synth-fused", "--truth", str(synth_root), "--methods", "all")
    assert refill.exit_code == 2 and "per-image set" in refill.output

    from pipeline.report import texture_quality_sections

    (tmp_path / "data" / "raw").mkdir()
    (tmp_path / "data" / "raw" / "synth").symlink_to(synth_root)
    section = texture_quality_sections({"synth": None})[0]
    for label in ("nearest (as stored)", "nearest, fused by identity (as stored)", "truth (as stored)"):
        assert f"| {label} | not observed |" in section and f"| {label} | all |" in section
