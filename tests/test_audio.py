"""Sound as pictures (plugin zoo_audio): decoding, the log-mel front end against librosa, the
dataset formats and their bad input, and the recipe end to end on real clips: fine-tune an image
backbone, export, predict with numpy alone, embed and search with a clip, few-shot, probe."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import run_zoo

soundfile = pytest.importorskip("soundfile")

RATE = 16000
ESPEAK = shutil.which("espeak-ng")


def tone(kind: str, seconds: float, rate: int = RATE, seed: int = 0) -> np.ndarray:
    """A clip of one of three kinds of sound: a low hum, a high whistle, a rising sweep (with noise)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    if kind == "low":
        wave = sum(np.sin(2 * np.pi * f * t) / (i + 1) for i, f in enumerate((220 + 20 * rng.random(), 440, 660)))
    elif kind == "high":
        wave = np.sin(2 * np.pi * (2000 + 300 * rng.random()) * t)
    else:
        wave = np.sin(2 * np.pi * (300 * t + 1500 * t ** 2 / seconds))
    envelope = np.minimum(1, np.minimum(t, t[-1] - t) * 20)
    return (0.3 * (0.5 + rng.random()) * wave * envelope + 0.003 * rng.standard_normal(len(t))).astype(np.float32)


def write_sounds(root: Path, per_class: int = 8, suffixes: tuple[str, ...] = (".wav", ".flac", ".ogg")) -> Path:
    """root/<kind>/<clip>: 3 classes of real audio files in all three formats, at several rates."""
    for k, kind in enumerate(("high", "low", "sweep")):
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            rate = (16000, 22050, 44100)[i % 3]
            suffix = suffixes[i % len(suffixes)]
            soundfile.write(str(root / kind / f"{kind}{i}{suffix}"), tone(kind, 0.5 + 0.05 * i, rate, seed=10 * k + i),
                            rate)
    return root


@pytest.fixture(scope="module")
def sounds(tmp_path_factory) -> Path:
    return write_sounds(tmp_path_factory.mktemp("sounds") / "sounds")


def spec(**settings):
    from zoo import FrontEndSpec, InputSpec
    from zoo_audio.logmel import resolve

    params = resolve(settings)
    return InputSpec(size=(224, 224), mean=(0.5,) * 3, std=(0.5,) * 3,
                     front_end=FrontEndSpec("log-mel", "audio", tuple(sorted(params.items()))))


# --------------------------------------------------------------------------- the front end

def test_log_mel_matches_librosa():
    """The reference check: the mel filters, the power mel spectrogram and the dB scaling equal
    librosa's (HTK mel, no area norm, centred frames with zero padding, ref=max, top_db)."""
    librosa = pytest.importorskip("librosa")
    from zoo_audio.logmel import mel_filters, mel_power, resolve, spectrogram

    p = resolve({})
    ours = mel_filters(16000, 1024, 96, 20.0, 8000.0)
    theirs = librosa.filters.mel(sr=16000, n_fft=1024, n_mels=96, fmin=20.0, fmax=8000.0, htk=True, norm=None)
    assert np.abs(ours - theirs).max() < 1e-5
    wave = tone("sweep", 1.0)
    reference = librosa.feature.melspectrogram(y=wave, sr=16000, n_fft=1024, hop_length=160, win_length=400,
                                               window="hann", center=True, pad_mode="constant", power=2.0,
                                               n_mels=96, fmin=20.0, fmax=8000.0, htk=True, norm=None)
    mine = mel_power(wave, p)
    assert mine.shape == reference.shape == (96, 101)
    assert np.abs(mine - reference).max() <= 1e-5 * reference.max()
    decibels = librosa.power_to_db(reference, ref=np.max, top_db=80.0)
    assert np.abs(spectrogram(wave, p) - ((decibels + 80.0) / 80.0)[::-1]).max() < 1e-4


def test_array_is_the_backbone_input_and_augmentation_is_seeded(tmp_path):
    from zoo_audio.logmel import LogMel

    path = tmp_path / "a.wav"
    soundfile.write(str(path), tone("low", 0.7), RATE)
    front_end, s = LogMel(), spec()
    plain = front_end.array(path, s)
    assert plain.shape == (3, 224, 224) and plain.dtype == np.float32
    assert -1.0 <= plain.min() and plain.max() <= 1.0  # [0, 1] through the backbone's mean and std of 0.5
    assert np.array_equal(front_end.array(path, s), plain)
    one, again, other = (front_end.array(path, s, augment=("light", seed)) for seed in (1, 1, 2))
    assert np.array_equal(one, again) and not np.array_equal(one, other) and not np.array_equal(one, plain)
    assert np.array_equal(front_end.array(path, s, augment=("none", 1)), plain)
    from zoo import InputError

    with pytest.raises(InputError, match="light .SpecAugment. or none"):
        front_end.array(path, s, augment=("randaugment", 1))


@pytest.mark.slow
def test_sounds_train_every_stage_with_specaugment_by_default(sounds):
    """--unfreeze auto for sounds: every stage, at the front end's rate and epochs; the loader's
    unfrozen batches are SpecAugmented, differently each epoch, and plain without augmentation."""
    import zoo
    from zoo.batches import make_loader
    from zoo.frontend import bridge
    from zoo.runs.options import UnfreezeOptions
    from zoo_audio.logmel import LogMel

    config = UnfreezeOptions().resolved("image", "gradual", LogMel.learning)
    assert (config.unfreeze, config.backbone_lr, config.epochs) == ("all", 1e-3, 10)
    plain = UnfreezeOptions().resolved("image", "gradual")
    assert (plain.unfreeze, plain.backbone_lr, plain.epochs) == (0, 1e-4, 6)
    backbone = zoo.load(bridge(zoo.get_card("efficientnet_lite0"), "audio"), pretrained=False)
    clips = sorted(str(p) for p in (sounds / "low").iterdir())[:4]

    def batch(seed, augmenting):
        loader = make_loader(backbone, clips, [0] * 4, batch_size=4, seed=seed, shuffle=False, augmenting=augmenting,
                             workers=0)
        return next(iter(loader))[0]

    first, second = batch(1, "light"), batch(2, "light")
    assert first.shape == (4, 3, 224, 224) and not (first == second).all()
    assert (batch(1, "none") == backbone.preprocess(clips)).all()


def test_settings_are_checked_one_line_each():
    from zoo import InputError
    from zoo_audio.logmel import resolve

    for settings, message in (({"hop": 5}, "unknown setting hop"), ({"n_mels": 0}, "n_mels must be at least 4"),
                              ({"fmax": 9000}, "fmax <= sample_rate / 2"), ({"align": "end"}, "align takes"),
                              ({"n_mels": 400}, "always be empty"), ({"window_ms": 100}, "more than n_fft")):
        with pytest.raises(InputError, match=message):
            resolve(settings)
    assert resolve({"clip_seconds": 2})["clip_seconds"] == 2.0


def test_decoding_mixes_down_and_resamples(tmp_path):
    """Stereo is averaged, other rates resampled by soxr: a 1 kHz tone stays a 1 kHz tone."""
    from zoo_audio.decoding import read_clip

    t = np.arange(44100) / 44100
    left, right = np.sin(2 * np.pi * 1000 * t), 0.5 * np.sin(2 * np.pi * 1000 * t)
    path = tmp_path / "stereo.flac"
    soundfile.write(str(path), np.stack([left, right], axis=1).astype(np.float32), 44100)
    wave = read_clip(path, 16000)
    assert wave.dtype == np.float32 and abs(len(wave) - 16000) <= 1
    spectrum = np.abs(np.fft.rfft(wave))
    assert abs(np.argmax(spectrum) * 16000 / len(wave) - 1000) < 2
    assert abs(np.abs(wave[2000:-2000]).max() - 0.75) < 0.01  # the mean of the two channels


# --------------------------------------------------------------------------- formats and bad input

def test_folder_and_manifest_formats(sounds, tmp_path):
    from zoo.data import open_dataset

    dataset = open_dataset(sounds, modality="image")
    assert dataset.modality == "audio" and dataset.classes == ("high", "low", "sweep") and len(dataset) == 24
    manifest = tmp_path / "clips.csv"
    rows = [f"{p.relative_to(sounds.parent)},{p.parent.name}" for p in sorted(sounds.rglob("*.wav"))]
    manifest.write_text("path,label\n" + "\n".join(rows) + "\n,low\n", encoding="utf-8")
    (tmp_path / "sounds").symlink_to(sounds)
    listed = open_dataset(manifest, modality="image")
    assert listed.modality == "audio" and len(listed) == len(rows)
    assert [str(p) for p in listed.problems] == [f"{manifest}:{len(rows) + 2}: missing path"]


#: The bad clips of ``bad_sounds`` and what zoo says of each.
BAD = {"empty.wav": "empty audio file (0 bytes)", "garbage.wav": "not a readable audio file",
       "song.mp3": "unsupported audio format '.mp3'", "quiet.wav": "a clip of silence",
       "telephone.wav": "sample rate 2000 Hz is out of range", "nothing.wav": "zero-length clip"}


@pytest.fixture(scope="module")
def bad_sounds(tmp_path_factory, sounds) -> Path:
    """``sounds`` with one clip of each kind of bad input beside the good ones."""
    root = tmp_path_factory.mktemp("bad") / "sounds"
    shutil.copytree(sounds, root)
    (root / "low" / "empty.wav").write_bytes(b"")
    (root / "low" / "garbage.wav").write_bytes(b"RIFF" + os.urandom(200))
    (root / "low" / "song.mp3").write_bytes(b"ID3" + os.urandom(100))
    soundfile.write(str(root / "high" / "quiet.wav"), np.zeros(8000, np.float32), RATE)
    soundfile.write(str(root / "high" / "telephone.wav"), tone("high", 0.5, 2000)[:1000], 2000)
    soundfile.write(str(root / "sweep" / "nothing.wav"), np.zeros((0,), np.float32), RATE)
    return root


@pytest.mark.slow
def test_bad_clips_are_one_line_each(bad_sounds, tmp_path):
    done = run_zoo("finetune", "efficientnet_lite0", "--data", str(bad_sounds), "--out", str(tmp_path / "no"), "-q")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "6 problems in the data" in done.stderr and "--skip-bad" in done.stderr
    for name, reason in BAD.items():
        line = next(line for line in done.stderr.splitlines() if name in line)
        assert reason in line, line
    assert not (tmp_path / "no").exists() or not any((tmp_path / "no").iterdir())


# --------------------------------------------------------------------------- the recipe end to end

@pytest.fixture(scope="module")
def audio_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("audio_home")


@pytest.fixture
def shared_home(audio_home, monkeypatch) -> Path:
    """One ZOO_HOME for the end-to-end tests, so the frozen features of the clips are computed once."""
    monkeypatch.setenv("ZOO_HOME", str(audio_home))
    return audio_home


@pytest.fixture(scope="module")
def audio_run(bad_sounds, tmp_path_factory, audio_home) -> Path:
    """A head on efficientnet_lite0's frozen log-mel pictures of the 3 kinds of sound, the bad
    clips skipped (``--skip-bad``)."""
    import zoo

    out = tmp_path_factory.mktemp("audio_run") / "run"
    previous = os.environ.get("ZOO_HOME")
    os.environ["ZOO_HOME"] = str(audio_home)
    try:
        zoo.finetune("efficientnet_lite0", str(bad_sounds), out=out, progress=False, log=lambda text: None, seed=0,
                     front_end={"clip_seconds": 0.8}, unfreeze=0, skip_bad=True, engine="torch",
                     cut="global_pool.flatten")  # the card's cut: choosing one is test_crossfit's ground
    finally:
        os.environ.pop("ZOO_HOME") if previous is None else os.environ.__setitem__("ZOO_HOME", previous)
    return out


@pytest.mark.slow
def test_the_run_records_the_front_end_and_what_it_skipped(audio_run):
    import zoo

    config = json.loads((audio_run / "config.json").read_text(encoding="utf-8"))
    declared = config["config"]["front_end"]
    assert declared["name"] == "log-mel" and declared["modality"] == "audio"
    assert declared["params"]["clip_seconds"] == 0.8 and declared["params"]["n_mels"] == 96
    run = zoo.open_run(audio_run)
    assert run.card().input.front_end.options == declared["params"]
    metrics = run.metrics
    assert metrics["baseline"]["name"].startswith("MFCC")
    assert "baseline (MFCC" in metrics["baseline_line"]
    assert metrics["cv"]["head"]["accuracy"] > 0.9  # three kinds of sound are easy
    skipped = json.loads((audio_run / "skipped.json").read_text(encoding="utf-8"))
    listed = skipped["skipped"] if isinstance(skipped, dict) else skipped
    assert {Path(entry["where"]).name: entry["reason"].split(";")[0] for entry in listed}.keys() == BAD.keys()
    assert all(BAD[Path(entry["where"]).name] in entry["reason"] for entry in listed)


@pytest.mark.slow
def test_export_and_predict_with_numpy_only(audio_run, sounds, tmp_path, shared_home):
    """The exported model carries the front end; `zoo predict` on clips runs with no torch and
    gives PyTorch's class for every clip."""
    import zoo

    done = run_zoo("export", str(audio_run), "--out", str(tmp_path / "model.onnx"), timeout=300)
    assert done.returncode == 0, done.stderr
    model = zoo.open_model(tmp_path / "model.onnx")
    assert model.info.modality == "audio"
    assert model.info.preprocessing["front_end"]["params"]["clip_seconds"] == 0.8
    clips = sorted(str(p) for p in sounds.rglob("*") if p.is_file())
    script = (f"import sys, json, zoo.runtime as r\n"
              f"p = r.predict({str(tmp_path / 'model.onnx')!r}, {clips!r}, top_k=1)\n"
              f"assert 'torch' not in sys.modules, 'predict imported torch'\n"
              f"print(json.dumps([x.top[0][0] for x in p.predictions]))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    onnx_labels = json.loads(out.stdout)
    classifier = zoo.open_run(audio_run).load_model()
    import torch

    with torch.no_grad():
        logits = classifier(classifier.backbone.preprocess(clips))
    torch_labels = [zoo.open_run(audio_run).classes[i] for i in logits.argmax(1).tolist()]
    assert onnx_labels == torch_labels
    from zoo.runtime import Preprocessor  # the runtime's pictures are training's, to the bit

    pictures = Preprocessor(model.info, tmp_path)(clips)["pixel_values"]
    assert np.array_equal(pictures, classifier.backbone.preprocess(clips).numpy())
    folder = run_zoo("predict", str(tmp_path / "model.onnx"), str(sounds / "low"), "--json")
    assert folder.returncode == 0, folder.stderr
    assert len(json.loads(folder.stdout)["predictions"]) == 8


@pytest.mark.slow
def test_embed_and_search_with_a_clip(sounds, tmp_path, shared_home):
    import zoo

    db = tmp_path / "db"
    report = zoo.embed_dataset("efficientnet_lite0", sounds, db=db, engine="torch")
    assert report.embedded == 24
    query = sounds / "sweep" / "sweep3.wav"
    hits = run_zoo("search", str(query), "--db", str(db), "-k", "3", "--json", "--engine", "torch")
    assert hits.returncode == 0, hits.stderr
    found = json.loads(hits.stdout)["hits"]
    assert found[0]["source"] == str(query.resolve()) and {h["label"] for h in found} == {"sweep"}
    with pytest.raises(zoo.ZooError, match="other weights, cut point or preprocessing"):
        zoo.embed_dataset("efficientnet_lite0", sounds, db=db, engine="torch", front_end={"n_mels": 64})


@pytest.mark.slow
def test_fewshot_and_probe_on_clips(sounds, tmp_path, shared_home):
    import zoo

    classifier = zoo.fewshot("efficientnet_lite0", sounds, engine="torch")
    assert classifier.modality == "audio" and classifier.input["front_end"]["name"] == "log-mel"
    classifier.save(tmp_path / "fs")
    again = zoo.load_fewshot(tmp_path / "fs", engine="torch")
    predicted = [p.top[0][0] for p in again.predict(sorted(str(p) for p in (sounds / "high").iterdir()))]
    assert predicted.count("high") >= 7
    report = zoo.probe(["efficientnet_lite0"], sounds, per_class=4, log=lambda text: None, engine="torch")
    assert report.labelled == 12 and report.rows and max(r.accuracy for r in report.rows) > 0.75


@pytest.mark.slow
def test_disabling_the_plugin(sounds, tmp_path):
    off = {"ZOO_DISABLE_PLUGINS": "zoo_audio"}
    listed = run_zoo("plugins", "--json", env=off)
    status = {p["name"]: p["status"] for p in json.loads(listed.stdout)}
    assert listed.returncode == 0 and status["zoo_audio"] == "disabled" and status["zoo_torchvision"] == "ok"
    assert run_zoo("list", env=off).returncode == 0
    done = run_zoo("finetune", "efficientnet_lite0", "--data", str(sounds), "--out", str(tmp_path / "r"), env=off)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "zoo_audio" in done.stderr


# --------------------------------------------------------------------------- spoken digits

@pytest.mark.slow
@pytest.mark.skipif(ESPEAK is None, reason="espeak-ng is not installed (./install.sh installs it)")
def test_spoken_digits_is_generated_once_with_unseen_test_voices():
    from zoo.data import make_splits
    from zoo_audio.spoken import TEST_VOICES, TRAIN_VOICES, ensure_spoken_digits

    folder = ensure_spoken_digits()
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["espeak_ng"].startswith("eSpeak NG")
    stamp = (folder / "manifest.json").stat().st_mtime_ns
    assert ensure_spoken_digits() == folder and (folder / "manifest.json").stat().st_mtime_ns == stamp
    splits = make_splits("spoken-digits", modality="image", per_class=10, seed=0)
    assert len(splits.train) + len(splits.val) == 100 and len(splits.test) == 200
    voice = lambda example: Path(example.item).name.rsplit("-", 1)[0]  # noqa: E731
    heard = {voice(e) for e in (*splits.train.examples, *splits.val.examples)}
    tested = {voice(e) for e in splits.test.examples}
    assert not heard & tested
    assert {v.split("+")[0] for v in TRAIN_VOICES}.isdisjoint(v.split("+")[0] for v in TEST_VOICES)
    assert {v.split("+")[1] for v in TRAIN_VOICES}.isdisjoint(v.split("+")[1] for v in TEST_VOICES)
    # a damaged folder is made again, not used
    victim = next((folder / "train" / "five").iterdir())
    victim.write_bytes(b"")
    assert ensure_spoken_digits() == folder and victim.stat().st_size > 44


@pytest.mark.slow
def test_front_end_settings_where_they_do_not_apply(tmp_path):
    done = run_zoo("finetune", "efficientnet_lite0", "--data", "digits", "--front-end", "n_mels=64",
                   "--out", str(tmp_path / "r"))
    assert done.returncode != 0 and "reads image data itself" in done.stderr and "Traceback" not in done.stderr
    bad = run_zoo("finetune", "efficientnet_lite0", "--data", "digits", "--front-end", "n_mels")
    assert bad.returncode != 0 and "expected KEY=VALUE" in bad.stderr


@pytest.mark.slow
def test_sounds_for_a_text_model_are_refused(sounds, tmp_path):
    done = run_zoo("finetune", "all-minilm-l6-v2-offline", "--data", str(sounds), "--out", str(tmp_path / "r"))
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "audio data" in done.stderr and "no front end turns audio into text" in done.stderr


@pytest.mark.slow
def test_a_run_on_sounds_embeds_and_searches_clips_as_it_was_trained(audio_run, sounds, tmp_path, shared_home):
    import zoo

    db = tmp_path / "db"
    report = zoo.embed_dataset(str(audio_run), sounds, db=db, engine="torch")
    assert report.embedded == 24
    query = sounds / "low" / "low2.ogg"
    hits = zoo.search(db, query, k=2, engine="torch").hits
    assert hits[0].source == str(query.resolve()) and hits[1].label == "low"
    with pytest.raises(zoo.ZooError, match="leave out --front-end"):
        zoo.embed_dataset(str(audio_run), sounds, db=tmp_path / "other", engine="torch", front_end={"n_mels": 64})
