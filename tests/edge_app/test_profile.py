"""Camera profiles: `wbc-edge calibrate` writes one, classify/run use it, bad ones are one line."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from synthetic import render_field, write_rgb

from wbc_edge.core.bundle import load_bundle, save_bundle
from wbc_edge.core.colour import reference_colours
from wbc_edge.core.preprocess_spec import ColourSpec
from wbc_edge.edge_app.cli import main
from wbc_edge.edge_app.profile import CameraProfile, ProfileError, load_profile, save_profile

pytestmark = pytest.mark.edge


def classify_with(bundle: Path, source: Path, profile: Path, *more: str) -> int:
    """`wbc-edge classify` of `source` with the camera profile `profile`."""
    argv = ["classify", "--model", str(bundle), "--source", str(source), "--profile", str(profile)]
    return main([*argv, *more])


@pytest.fixture(scope="module")
def fields(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("profile-fields")
    for i in range(3):
        write_rgb(root / f"field{i}.png", render_field(np.random.default_rng(40 + i))[0])
    return root


@pytest.fixture(scope="module")
def colour_bundle(edge_bundle: Path, fields: Path, tmp_path_factory) -> Path:
    """The tiny bundle with a colour step measured on the generated fields."""
    root = tmp_path_factory.mktemp("colour-bundle") / "tiny"
    shutil.copytree(edge_bundle, root)
    bundle = load_bundle(root)
    from wbc_edge.core.decode import decode_image

    bg, red = reference_colours([decode_image(p) for p in sorted(fields.glob("*.png"))])
    colour = ColourSpec("reference", tuple(bg), tuple(red))
    bundle.change_preprocessing(dataclasses.replace(bundle.preprocessing, colour=colour))
    save_bundle(bundle)
    return root


def profile(**kw) -> CameraProfile:
    values = dict(
        scale=2.0,
        background=(207.0, 207.0, 203.0),
        red_cell=(191.0, 170.0, 177.0),
        focus=300.0,
        frames=5,
        frame_size=(640, 480),
    )
    return CameraProfile(**{**values, **kw})


def test_a_profile_round_trips(tmp_path: Path) -> None:
    save_profile(profile(), tmp_path / "p.json")
    assert load_profile(tmp_path / "p.json") == profile()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{not json", "not a camera profile"),
        ("[1, 2]", "not a camera profile"),
        ('{"kind": "wbc-edge camera profile", "version": 9}', "version 9"),
        ('scale="2"', "scale: expected a number, got '2'"),
        ("scale=NaN", "scale: expected a finite number"),
        ("scale=1e9", "outside"),
        ("background=[1, 2]", "background: expected a list of 3 values"),
        ("red_cell=[300, 1, 1]", "red_cell: values must lie in"),
        ("frame_size=[640]", "frame_size: expected a list of 2 values"),
        ("focus=0", "must be positive"),
        ('owner="me"', "owner: unknown field"),
        ("background=[100, 100, 100]", "brighter in green"),
    ],
)
def test_a_bad_profile_is_one_line(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "p.json"
    if "=" in text and not text.startswith("{"):
        key, value = text.split("=", 1)
        data = json.loads(json.dumps(profile().to_dict()))
        data[key] = json.loads(value) if value != "NaN" else float("nan")
        path.write_text(json.dumps(data))
    else:
        path.write_text(text)
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    assert says in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_bad_profile_lists_every_problem_naming_the_file(tmp_path: Path) -> None:
    data = profile().to_dict() | {"scale": "2", "background": [1, 2], "frames": 0.5}
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    lines = str(err.value).splitlines()
    assert len(lines) == 3 and all(line.startswith(f"{path}: ") for line in lines)
    assert [line.split(": ")[1] for line in lines] == ["scale", "background", "frames"]


def test_calibrate_writes_a_profile_and_a_picture(
    colour_bundle: Path, fields: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "cam" / "profile.json"
    assert (
        main(
            ["calibrate", "--model", str(colour_bundle), "--source", str(fields), "--out", str(out)]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "calibrated on 3 of 3 frames (640x480)" in text and "scale" in text
    made = load_profile(out)
    assert made.frames == 3 and made.frame_size == (640, 480) and made.focus > 0
    assert (tmp_path / "cam" / "profile.png").stat().st_size > 1000
    # classify uses its scale, and says so
    assert classify_with(colour_bundle, fields, out) == 0
    assert "the camera profile's" in capsys.readouterr().out


def test_calibrate_without_red_cells_is_one_line(
    colour_bundle: Path, tmp_path: Path, capsys
) -> None:
    write_rgb(tmp_path / "glass.png", np.full((240, 320, 3), 212, np.uint8))
    code = main(
        [
            "calibrate",
            "--model",
            str(colour_bundle),
            "--source",
            str(tmp_path),
            "--out",
            str(tmp_path / "p.json"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no frame showed both empty glass and red cells" in err[0]
    assert not (tmp_path / "p.json").exists()


def test_a_frame_larger_than_the_profile_is_an_error_record(
    colour_bundle: Path, fields: Path, tmp_path: Path
) -> None:
    path = tmp_path / "p.json"
    save_profile(profile(frame_size=(64, 48)), path)
    log = tmp_path / "log.jsonl"
    code = classify_with(colour_bundle, fields, path, "--jsonl", str(log))
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert code != 0 and len(records) == 3
    assert all("profile was measured on 64x48 frames" in r["error"] for r in records)


def test_a_profile_applies_to_crops_of_its_camera_frames() -> None:
    """A crop keeps the camera's scale: a 320x240 crop of a 640x480 camera's frame fits."""
    from wbc_edge.edge_app.profile import ProfileError, check_frame_size

    p = profile(frame_size=(640, 480))
    check_frame_size(p, (640, 480), "p.json")
    check_frame_size(p, (320, 240), "p.json")
    for size in ((1280, 960), (641, 480), (640, 481)):
        with pytest.raises(ProfileError, match="measured on 640x480"):
            check_frame_size(p, size, "p.json")


def test_a_corrupt_profile_stops_before_the_model_loads(colour_bundle: Path, tmp_path) -> None:
    path = tmp_path / "p.json"
    path.write_text("garbage")
    for command in (["classify", "--source", str(tmp_path)], ["run", "--camera", "file:x"]):
        assert (
            main([command[0], "--model", str(colour_bundle), *command[1:], "--profile", str(path)])
            == 2
        )
