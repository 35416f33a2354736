"""Tests of the sdq Python module against the golden fixtures, files made by the `sdq` command
line (SDQ_CLI, or the repository's target/{release,debug}/sdq: see find_cli), and
safetensors.numpy round trips. Run by .ci/embed.sh after installing the wheel."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy

import sdq

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"


def find_cli(root=ROOT):
    """The sdq binary: $SDQ_CLI, else the newest of the repository's target/{release,debug}/sdq
    (or under $CARGO_TARGET_DIR), else `sdq` on PATH. Missing: the CLI cross-checks are skipped,
    or fail when SDQ_REQUIRE_CLI=1 (as CI sets)."""
    path = os.environ.get("SDQ_CLI")
    if not path:
        targets = [root / "target"]
        if os.environ.get("CARGO_TARGET_DIR"):
            targets.insert(0, Path(os.environ["CARGO_TARGET_DIR"]))
        built = [t / p / "sdq" for t in targets for p in ("release", "debug")]
        built = [b for b in built if b.is_file()]
        if built:
            path = str(max(built, key=lambda b: b.stat().st_mtime))
        else:
            path = shutil.which("sdq")
    if not path or not Path(path).exists():
        why = f"the sdq command line is not built (cargo build --release, or set SDQ_CLI): {path or 'not found'}"
        if os.environ.get("SDQ_REQUIRE_CLI") == "1":
            pytest.fail(why)
        pytest.skip(why)
    return path


def cli():
    return find_cli()


def run_cli(*args, ok=True):
    r = subprocess.run([cli(), *map(str, args)], capture_output=True, text=True)
    if ok:
        assert r.returncode == 0, r.stderr
    return r


def expected(name):
    return np.fromfile(FIXTURES / f"{name}.expected.bin", dtype="<f4")


def check_fixture(name, tensors, raw):
    """Decoded tensors against X.expected.bin (fixtures/README.md)."""
    want = expected(name)
    at = 0
    for key, arr in tensors.items():
        exp = want[at : at + arr.size].reshape(arr.shape)
        at += arr.size
        if key in raw:
            # Raw tensors keep their dtype, converted exactly.
            np.testing.assert_array_equal(arr.astype(np.float32), exp)
        else:
            assert arr.dtype == np.float32
            tol = 1e-6 * np.abs(exp).max()
            assert np.abs(arr - exp).max() <= tol, key
    assert at == want.size


# -------------------------------------------------------------------------------------------
# fixtures


def test_fixtures_load_file():
    k1 = sdq.load_file(FIXTURES / "k1_tensor_delta.sdq")
    assert list(k1) == ["layer.weight"]
    assert k1["layer.weight"].shape == (24, 10)
    check_fixture("k1_tensor_delta", k1, raw=set())

    mixed = sdq.load_file(str(FIXTURES / "mixed.sdq"))
    assert list(mixed) == ["emb", "scale", "perm.weight", "steps", "fc.weight", "fc.bias"]
    assert mixed["emb"].dtype == np.float16 and mixed["emb"].shape == (16, 8)
    assert mixed["scale"].dtype == np.float32
    assert mixed["steps"].dtype == np.int64 and mixed["steps"].shape == (64,)
    assert mixed["fc.bias"].dtype == np.float32 and mixed["fc.bias"].shape == (10,)
    check_fixture("mixed", mixed, raw={"emb", "scale", "steps"})

    tetris = sdq.load_file(FIXTURES / "tetris_second_order.sdq")
    check_fixture("tetris_second_order", tetris, raw=set())


def test_safe_open_mirrors_safetensors():
    path = FIXTURES / "mixed.sdq"
    everything = sdq.load_file(path)
    with sdq.safe_open(path, framework="np") as f:
        assert f.keys() == list(everything)
        for k in f.keys():
            t = f.get_tensor(k)
            assert t.dtype == everything[k].dtype
            np.testing.assert_array_equal(t, everything[k])
        assert f.metadata() == {
            "producer": "sdq fixtures",
            "note": "raw F16/F32/I64, permuted rows, weight + bias, zstd",
        }
        with pytest.raises(sdq.NoSuchTensorError) as e:
            f.get_tensor("nope")
        assert str(e.value) == f'{path}: no tensor named "nope" in the file'
    # Closed by the with block.
    with pytest.raises(sdq.SdqError, match="closed"):
        f.keys()
    with sdq.safe_open(FIXTURES / "k1_tensor_delta.sdq", "numpy") as f:
        assert f.metadata() is None
    with pytest.raises(sdq.ParameterError, match="framework"):
        sdq.safe_open(path, framework="pt")


def test_exception_hierarchy():
    for name in [
        "FormatError",
        "ChecksumError",
        "LimitError",
        "NoSuchTensorError",
        "ParameterError",
        "DataError",
        "IoError",
    ]:
        assert issubclass(getattr(sdq, name), sdq.SdqError)
    assert issubclass(sdq.SdqError, Exception)


# -------------------------------------------------------------------------------------------
# against the command line


@pytest.fixture
def checkpoint(tmp_path):
    """A small safetensors checkpoint written by safetensors.numpy."""
    rng = np.random.default_rng(7)
    tensors = {
        "fc1.weight": rng.standard_normal((48, 40)).astype(np.float32) / 7,
        "fc1.bias": rng.standard_normal(48).astype(np.float32) / 7,
        "fc2.weight": rng.standard_normal((32, 48)).astype(np.float64) / 7,
        "emb": rng.standard_normal((8, 20)).astype(np.float16),  # d = 8 < 16: stays raw
        "steps": np.arange(-5, 11, dtype=np.int64),
        "mask": rng.integers(0, 2, size=(4, 4)).astype(bool),
    }
    path = tmp_path / "model.safetensors"
    safetensors.numpy.save_file(tensors, str(path), metadata={"model": "test"})
    return path, tensors


def test_pack_matches_the_cli_byte_for_byte(tmp_path, checkpoint):
    path, _ = checkpoint
    sd = ["--scheme", "first-order", "--axis", "columns"]
    sd_kw = {"scheme": "first-order", "axis": "columns"}
    options = [
        # pcm, the default (small tensors like these get bits per weight of their own)
        ([], {}),
        (["--min-dim", "21"], {"min_dim": 21}),
        (["--include", "fc*.weight"], {"include": "fc*.weight"}),
        (
            ["--include", "fc*", "--bias", "--bits-per-weight", "6", "--zstd"],
            {"include": ["fc*"], "bias": True, "bits_per_weight": 6, "zstd": True},
        ),
        (
            ["--include", "fc*", "--max-error", "0.02", "--step-rule", "tensor", "--coding", "fixed"],
            {"include": "fc*", "max_error": 0.02, "step_rule": "tensor", "coding": "fixed"},
        ),
        (
            ["--include", "fc*", "--coding", "fixed", "--step-policy", "least-squares",
             "--bits-per-weight", "4"],
            {"include": "fc*", "coding": "fixed", "step_policy": "least-squares",
             "bits_per_weight": 4},
        ),
        (
            ["--include", "fc*", "--group", "8", "--step-type", "f32", "--same-bits",
             "--sign-seed", "5", "--axis", "columns"],
            {"include": "fc*", "group": 8, "step_type": "f32", "same_bits": True,
             "sign_seed": 5, "axis": "columns"},
        ),
        (
            ["--include", "fc*", "--frame-family", "harmonic", "--sign-seed", "1",
             "--tensor-type", "fc2*=q8", "--tensor-type", "*=raw"],
            {"include": "fc*", "frame_family": "harmonic", "sign_seed": 1,
             "tensor_types": {"fc2*": "q8", "*": "raw"}},
        ),
        (
            ["--include", "fc*", "--frame-family", "spectral-tetris", "--frame-size", "100",
             "--tensor-type", "fc1*=3"],
            {"include": "fc*", "frame_family": "spectral-tetris", "frame_size": 100,
             "tensor_types": [("fc1*", 3)]},
        ),
        # sigma-delta
        (sd, sd_kw),
        (sd + ["--bias", "--zstd"], {**sd_kw, "bias": True, "zstd": True}),
        (
            ["--scheme", "first-order", "--levels", "2", "--redundancy", "3", "--axis", "rows",
             "--delta", "vector"],
            {"scheme": "first-order", "levels": 2, "redundancy": 3.0, "axis": "rows",
             "delta": "vector"},
        ),
        (
            sd + ["--frame-size", "100", "--delta", "0.05", "--exclude", "fc2.*"],
            {**sd_kw, "frame_size": 100, "delta": 0.05, "exclude": ["fc2.*"]},
        ),
        (
            ["--scheme", "second-order", "--axis", "columns", "--levels", "2", "--redundancy",
             "2.53"],
            {"scheme": "second-order", "axis": "columns", "levels": 2, "redundancy": 2.53},
        ),
        (
            sd + ["--frame-family", "spectral-tetris", "--reorder", "--bits-per-weight", "2.5"],
            {**sd_kw, "frame_family": "spectral-tetris", "reorder": True,
             "bits_per_weight": 2.5},
        ),
        (sd + ["--code-bits", "3"], {**sd_kw, "code_bits": 3}),
        (sd + ["--min-dim", "8"], {**sd_kw, "min_dim": 8}),
    ]
    for i, (args, kwargs) in enumerate(options):
        by_cli = tmp_path / f"cli{i}.sdq"
        by_py = tmp_path / f"py{i}.sdq"
        run_cli("pack", path, "-o", by_cli, "-q", *args)
        summary = sdq.pack(str(path), by_py, **kwargs)
        assert by_cli.read_bytes() == by_py.read_bytes(), args
        assert summary["tensors"] == 6
        encodings = {t["encoding"] for t in sdq.info(by_py)["tensors"]}
        if kwargs.get("scheme", "pcm") == "pcm":
            assert "sigma-delta" not in encodings, args
            assert "pcm" in encodings, args
        else:
            assert "sigma-delta" in encodings and "pcm" not in encodings, args


def test_info_is_the_cli_json(tmp_path, checkpoint):
    path, _ = checkpoint
    out = tmp_path / "m.sdq"
    run_cli("pack", path, "-o", out, "-q", "--bias")
    for f in [out, FIXTURES / "mixed.sdq", FIXTURES / "k4_vector_delta.sdq"]:
        want = json.loads(run_cli("info", "--json", f).stdout)
        assert sdq.info(str(f)) == want


def test_load_file_matches_cli_unpack(tmp_path, checkpoint):
    path, original = checkpoint
    out = tmp_path / "m.sdq"
    run_cli("pack", path, "-o", out, "-q")
    unpacked = tmp_path / "u.safetensors"
    run_cli("unpack", out, "-o", unpacked, "-q")
    theirs = safetensors.numpy.load_file(str(unpacked))
    ours = sdq.load_file(out)
    assert set(ours) == set(theirs) == set(original)
    for k in ours:
        np.testing.assert_array_equal(ours[k].astype(np.float32), theirs[k].astype(np.float32))
    # Raw tensors come back bit for bit, in their own dtype.
    for k in ["emb", "steps", "mask", "fc1.bias"]:
        assert ours[k].dtype == original[k].dtype
        np.testing.assert_array_equal(ours[k], original[k])


def test_errors_carry_the_cli_messages(tmp_path, checkpoint):
    path, _ = checkpoint

    def same(exc_type, fn, cli_args):
        with pytest.raises(exc_type) as e:
            fn()
        r = run_cli(*cli_args, ok=False)
        assert r.returncode != 0
        assert r.stderr.strip() == f"sdq: {e.value}"

    missing = tmp_path / "missing.sdq"
    same(sdq.IoError, lambda: sdq.load_file(missing), ["info", missing])
    junk = tmp_path / "junk.sdq"
    junk.write_bytes(b"not an sdq file at all" * 10)
    same(sdq.FormatError, lambda: sdq.info(junk), ["info", junk])
    same(
        sdq.NoSuchTensorError,
        lambda: sdq.safe_open(FIXTURES / "k1_tensor_delta.sdq").get_tensor("x"),
        ["info", FIXTURES / "k1_tensor_delta.sdq", "--tensor", "x"],
    )
    same(
        sdq.ParameterError,
        lambda: sdq.pack(path, tmp_path / "o.sdq", scheme="first-order", axis="columns", levels=8),
        ["pack", path, "-o", tmp_path / "o.sdq", "--scheme", "first-order", "--axis", "columns",
         "--levels", "8", "-q"],
    )

    # A damaged code section: a checksum error, when decoding and in `sdq unpack`.
    good = tmp_path / "good.sdq"
    run_cli("pack", path, "-o", good, "-q", "--scheme", "first-order", "--axis", "columns")
    entry = next(t for t in sdq.info(good)["tensors"] if t["encoding"] == "sigma-delta")
    data = bytearray(good.read_bytes())
    # The last section is the last sigma-delta tensor's codes (or padding): flip its middle.
    bad = tmp_path / "bad.sdq"
    for pos in range(len(data) - 200, len(data) - 64):
        data[pos] ^= 0x10
        bad.write_bytes(bytes(data))
        data[pos] ^= 0x10
        try:
            sdq.load_file(bad)
        except sdq.ChecksumError as e:
            r = run_cli("unpack", bad, "-o", tmp_path / "x.safetensors", "-q", ok=False)
            assert r.stderr.strip() == f"sdq: {e}"
            break
        except sdq.FormatError:
            continue
    else:
        pytest.fail(f"no damaged copy raised ChecksumError ({entry['name']})")


# -------------------------------------------------------------------------------------------
# dicts of numpy arrays, and safetensors.numpy round trips


def test_pack_a_dict_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    w = rng.standard_normal((64, 30)).astype(np.float32)
    tensors = {
        "layer.weight": w,
        "layer.weight_t": np.asfortranarray(w),  # strides other than row-major
        "ids": np.arange(12, dtype=np.int32).reshape(3, 4),
        "flags": np.array([True, False, True]),
        "half": rng.standard_normal(5).astype(np.float16),
        "bytes": np.arange(7, dtype=np.uint8),
        "scalar": np.array(2.5, dtype=np.float64),
    }
    out = tmp_path / "d.sdq"
    summary = sdq.pack(
        tensors,
        out,
        scheme="first-order",
        axis="columns",
        bits_per_weight=8,
        metadata={"source": "pytest"},
    )
    assert summary["quantized"] == 2
    back = sdq.load_file(out)
    assert list(back) == list(tensors)
    for k in ["ids", "flags", "half", "bytes", "scalar"]:
        assert back[k].dtype == tensors[k].dtype and back[k].shape == tensors[k].shape
        np.testing.assert_array_equal(back[k], tensors[k])
    np.testing.assert_array_equal(back["layer.weight"], back["layer.weight_t"])
    # Every column is within its certified bound.
    bound = next(t for t in sdq.info(out)["tensors"] if t["name"] == "layer.weight")
    errors = np.linalg.norm(back["layer.weight"] - w, axis=0)
    assert errors.max() <= bound["quantization"]["max_bound"]
    assert errors.max() < 0.5 * np.linalg.norm(w, axis=0).min()
    with sdq.safe_open(out) as f:
        assert f.metadata() == {"source": "pytest"}


def test_safetensors_numpy_round_trip(tmp_path):
    """numpy -> safetensors.numpy file -> sdq.pack -> sdq.load_file -> safetensors.numpy file."""
    rng = np.random.default_rng(11)
    original = {
        "a.weight": rng.standard_normal((40, 24)).astype(np.float32),
        "a.bias": rng.standard_normal(40).astype(np.float32),
        "count": np.array([3], dtype=np.int64),
    }
    st = tmp_path / "in.safetensors"
    safetensors.numpy.save_file(original, str(st))
    out = tmp_path / "in.sdq"
    sdq.pack(st, out, scheme="first-order", axis="columns", bias=True, redundancy=8)
    loaded = sdq.load_file(out)
    again = tmp_path / "again.safetensors"
    safetensors.numpy.save_file(loaded, str(again))
    reread = safetensors.numpy.load_file(str(again))
    for k in original:
        np.testing.assert_array_equal(reread[k], loaded[k])
        assert reread[k].dtype == original[k].dtype
    np.testing.assert_array_equal(reread["count"], original["count"])
    # Every column of [W | b] is within the certified bound sdq info reports.
    entry = next(t for t in sdq.info(out)["tensors"] if t["name"] == "a.weight")
    assert entry["quantization"]["has_bias"]
    w_b = np.column_stack([original["a.weight"], original["a.bias"]])
    got = np.column_stack([reread["a.weight"], reread["a.bias"]])
    assert np.linalg.norm(got - w_b, axis=0).max() <= entry["quantization"]["max_bound"]


def test_pack_errors(tmp_path):
    w = {"w": np.ones((32, 4), dtype=np.float32)}
    with pytest.raises(sdq.ParameterError, match="mutually exclusive"):
        sdq.pack(w, tmp_path / "x.sdq", scheme="first-order", frame_size=100, redundancy=2.0)
    with pytest.raises(sdq.ParameterError, match="axis"):
        sdq.pack(w, tmp_path / "x.sdq", axis="diagonal")
    with pytest.raises(sdq.ParameterError, match="delta"):
        sdq.pack(w, tmp_path / "x.sdq", delta="huge")
    with pytest.raises(sdq.ParameterError, match="dtype"):
        sdq.pack({"c": np.ones(3, dtype=np.complex64)}, tmp_path / "x.sdq")
    nan = np.ones((32, 4), dtype=np.float32)
    nan[3, 1] = np.nan
    with pytest.raises(sdq.DataError):
        sdq.pack({"w": nan}, tmp_path / "x.sdq", include="w")
    with pytest.raises(sdq.DataError):
        sdq.pack({"w": nan}, tmp_path / "x.sdq", scheme="first-order", axis="columns")
    with pytest.raises(TypeError):
        sdq.pack(42, tmp_path / "x.sdq")
    assert not (tmp_path / "x.sdq").exists()


# -------------------------------------------------------------------------------------------
# the README's Python example


def test_readme_python_example(tmp_path, monkeypatch):
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Embedding: Python", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks, "README: no python block in the Python section"
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})


# -------------------------------------------------------------------------------------------
# issue 14


def test_the_cli_is_found_without_sdq_cli(tmp_path, monkeypatch):
    monkeypatch.delenv("SDQ_CLI", raising=False)
    monkeypatch.delenv("CARGO_TARGET_DIR", raising=False)
    monkeypatch.setenv("PATH", "")
    # Nothing built: skipped, or a failure when CI requires the command line.
    monkeypatch.delenv("SDQ_REQUIRE_CLI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        find_cli(tmp_path)
    monkeypatch.setenv("SDQ_REQUIRE_CLI", "1")
    with pytest.raises(pytest.fail.Exception, match="not built"):
        find_cli(tmp_path)
    # A build in the repository's target directory is found.
    exe = tmp_path / "target" / "release" / "sdq"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    assert find_cli(tmp_path) == str(exe)


def test_pack_include_and_exclude_take_a_string_or_a_list(tmp_path):
    rng = np.random.default_rng(3)
    w = {
        "a.weight": rng.standard_normal((20, 6)).astype(np.float32),
        "b.weight": rng.standard_normal((20, 6)).astype(np.float32),
    }

    def encodings(path):
        return {t["name"]: t["encoding"] for t in sdq.info(path)["tensors"]}

    for include in ["a*", ["a*"], ("a*",)]:
        sdq.pack(w, tmp_path / "x.sdq", include=include)
        assert encodings(tmp_path / "x.sdq") == {"a.weight": "pcm", "b.weight": "raw"}
        sdq.pack(w, tmp_path / "x.sdq", include=include, scheme="first-order", axis="columns")
        assert encodings(tmp_path / "x.sdq") == {"a.weight": "sigma-delta", "b.weight": "raw"}
    sdq.pack(w, tmp_path / "y.sdq", exclude="b*", scheme="first-order", axis="columns")
    assert encodings(tmp_path / "y.sdq") == {"a.weight": "sigma-delta", "b.weight": "raw"}
    for bad in [3, [1, 2], {"a*": 1}]:
        with pytest.raises(sdq.ParameterError, match="include= must be a glob"):
            sdq.pack(w, tmp_path / "z.sdq", include=bad)
    with pytest.raises(sdq.ParameterError, match="exclude= must be a glob .* not int"):
        sdq.pack(w, tmp_path / "z.sdq", exclude=7)
    assert not (tmp_path / "z.sdq").exists()


def test_get_slice_like_safetensors():
    path = FIXTURES / "mixed.sdq"
    everything = sdq.load_file(path)
    with sdq.safe_open(path, framework="np") as f:
        for k in f.keys():
            whole = everything[k]
            s = f.get_slice(k)
            assert s.get_shape() == list(whole.shape)
            assert isinstance(s.get_dtype(), str)
            np.testing.assert_array_equal(s[:], whole)
            np.testing.assert_array_equal(s[1:3], whole[1:3])
            np.testing.assert_array_equal(s[...], whole)
            if whole.ndim >= 2:
                part = s[1:4, 2:5]
                assert isinstance(part, np.ndarray)
                np.testing.assert_array_equal(part, whole[1:4, 2:5])
                np.testing.assert_array_equal(s[2], whole[2])
        assert f.get_slice("emb").get_dtype() == "F16"
        with pytest.raises(sdq.NoSuchTensorError):
            f.get_slice("nope")
        with pytest.raises(sdq.ParameterError, match="basic indexing"):
            f.get_slice("emb")[[0, 1]]


def test_a_directory_is_named_as_such(tmp_path):
    for fn in [sdq.info, sdq.load_file, sdq.safe_open]:
        with pytest.raises(sdq.IoError) as e:
            fn(str(tmp_path))
        assert str(e.value) == f"{tmp_path}: is a directory"


def test_pack_refuses_to_overwrite_its_input(tmp_path, checkpoint):
    path, _ = checkpoint
    before = path.read_bytes()
    with pytest.raises(sdq.ParameterError, match="would destroy the input"):
        sdq.pack(path, path)
    link = tmp_path / "link.sdq"
    os.link(path, link)
    with pytest.raises(sdq.ParameterError, match="same file as the input"):
        sdq.pack(str(path), str(link))
    assert path.read_bytes() == before


# -------------------------------------------------------------------------------------------
# pcm, the default scheme


def test_pack_pcm_default_end_to_end(tmp_path):
    """The default (pcm, rows, at most 5.0 stored bits per weight): large tensors are quantized, small
    ones stay raw; the errors are what the bits allow; the same file as the command line."""
    rng = np.random.default_rng(5)
    tensors = {
        "a.weight": rng.standard_normal((128, 256)).astype(np.float32),
        "b.weight": (rng.standard_normal((256, 128)) / 10).astype(np.float32),
        "small.weight": rng.standard_normal((8, 20)).astype(np.float32),
        "b.bias": rng.standard_normal(256).astype(np.float32),
    }
    st = tmp_path / "in.safetensors"
    safetensors.numpy.save_file(tensors, str(st))
    for bits in [None, 3, 8]:
        kw = {} if bits is None else {"bits_per_weight": bits}
        args = [] if bits is None else ["--bits-per-weight", bits]
        by_py = tmp_path / f"py{bits}.sdq"
        by_cli = tmp_path / f"cli{bits}.sdq"
        summary = sdq.pack(tensors, by_py, **kw)
        assert summary["quantized"] == 2 and summary["raw"] == 2
        info = {t["name"]: t for t in sdq.info(by_py)["tensors"]}
        assert info["a.weight"]["encoding"] == info["b.weight"]["encoding"] == "pcm"
        assert info["a.weight"]["quantization"]["orientation"] == "rows"
        assert info["small.weight"]["encoding"] == info["b.bias"]["encoding"] == "raw"
        b = 5.0 if bits is None else bits
        stored = sum(info[k]["stored_bytes"] for k in ["a.weight", "b.weight"])
        assert 8 * stored <= b * 2 * 128 * 256 * 1.01
        back = sdq.load_file(by_py)
        for k in ["a.weight", "b.weight"]:
            w = tensors[k]
            rel = np.linalg.norm(back[k] - w) / np.linalg.norm(w)
            # Entropy-coded rounding of Gaussian weights: about 1.2 * 2^-b.
            assert rel < 2.0 ** (1.5 - b), (k, bits, rel)
            rows = np.linalg.norm(back[k] - w, axis=1)
            assert rows.max() <= info[k]["quantization"]["max_bound"] * (1 + 1e-6)
        for k in ["small.weight", "b.bias"]:
            np.testing.assert_array_equal(back[k], tensors[k])
        # The same model through a safetensors file: byte for byte the CLI's.
        run_cli("pack", st, "-o", by_cli, "-q", *args)
        sdq.pack(st, tmp_path / "path.sdq", **kw)
        assert (tmp_path / "path.sdq").read_bytes() == by_cli.read_bytes()
        again = sdq.load_file(by_cli)
        for k in tensors:
            np.testing.assert_array_equal(again[k], back[k])


def test_pack_whole_file_cap(tmp_path):
    """The default caps the whole file at 5 bits per float weight (raw vectors counted), as
    `sdq pack` does; an explicit budget has no cap unless one is given."""
    rng = np.random.default_rng(7)
    tensors = {
        "a.weight": rng.standard_normal((256, 256)).astype(np.float32),
        "norm.weight": rng.standard_normal(3000).astype(np.float32),
    }
    floats = 256 * 256 + 3000
    st = tmp_path / "in.safetensors"
    safetensors.numpy.save_file(tensors, str(st))
    summary = sdq.pack(tensors, tmp_path / "d.sdq")
    cap = summary["file_cap"]
    assert cap["cap"] == 5.0 and cap["reached"] and cap["budget"] < cap["requested"] == 5.0
    # What the rest takes: the raw vector with its record, headers and padding.
    assert abs(cap["raw"] + cap["own"] + cap["overhead"] - cap["fixed"]) < 1e-9
    assert cap["raw"] >= 3000 * 32 / floats
    bits = (tmp_path / "d.sdq").stat().st_size * 8 / floats
    assert 4.8 < bits <= 5.0, bits
    run_cli("pack", st, "-o", tmp_path / "cli.sdq", "-q")
    sdq.pack(st, tmp_path / "path.sdq")
    assert (tmp_path / "path.sdq").read_bytes() == (tmp_path / "cli.sdq").read_bytes()
    summary = sdq.pack(tensors, tmp_path / "b.sdq", bits_per_weight=4.5)
    assert summary["file_cap"] is None
    assert (tmp_path / "b.sdq").stat().st_size * 8 / floats > 5.0
    summary = sdq.pack(tensors, tmp_path / "c.sdq", bits_per_weight=4.5, file_bits_per_weight=4.7)
    assert summary["file_cap"]["cap"] == 4.7
    assert (tmp_path / "c.sdq").stat().st_size * 8 / floats <= 4.7
    assert summary["file_cap"]["small_ceiling"] is None
    # A model of many small tensors: they give up their extra bits to meet the cap.
    small = {f"s{i}.weight": rng.standard_normal((32, 72)).astype(np.float32) for i in range(40)}
    small["big.weight"] = tensors["a.weight"]
    summary = sdq.pack(small, tmp_path / "s.sdq")
    cap = summary["file_cap"]
    assert cap["reached"] and 3.0 <= cap["small_ceiling"] < 8.5, cap
    assert cap["budget"] == min(5.0, cap["small_ceiling"]), cap
    assert cap["floor_estimate"] <= 5.0, cap
    floats = sum(v.size for v in small.values())
    assert (tmp_path / "s.sdq").stat().st_size * 8 / floats <= 5.0


def test_pack_rounding(tmp_path):
    """rounding= as `sdq pack --rounding`: zero-sum by default without a frame (each row's
    errors sum to within half a step, and each convolution kernel window's), zero-sum-rows and
    nearest on request; refused where it cannot apply."""
    rng = np.random.default_rng(9)
    w = rng.standard_normal((64, 384)).astype(np.float32)
    st = tmp_path / "in.safetensors"
    safetensors.numpy.save_file({"w": w}, str(st))
    sums = {}
    for rounding in [None, "zero-sum", "nearest"]:
        kw = {} if rounding is None else {"rounding": rounding}
        args = [] if rounding is None else ["--rounding", rounding]
        sdq.pack(st, tmp_path / "py.sdq", **kw)
        run_cli("pack", st, "-o", tmp_path / "cli.sdq", "-q", *args)
        assert (tmp_path / "py.sdq").read_bytes() == (tmp_path / "cli.sdq").read_bytes()
        back = sdq.load_file(tmp_path / "py.sdq")["w"]
        sums[rounding] = np.abs((w.astype(np.float64) - back).sum(axis=1))
    assert np.array_equal(sums[None], sums["zero-sum"])
    # Nearest rounding's row sums are about δ·√(d/12) ≈ 5.7 steps, zero-sum's at most ½.
    assert sums[None].mean() * 5 < sums["nearest"].mean(), (sums[None].mean(), sums["nearest"].mean())
    for kw, needle in [
        ({"rounding": "zero-sum", "frame_family": "harmonic"}, "without a frame"),
        ({"rounding": "zero-sum", "coding": "fixed", "step_policy": "least-squares"}, "certified"),
        ({"rounding": "nearest", "scheme": "first-order"}, "scheme=\"pcm\""),
        ({"rounding": "up"}, "must be"),
        ({"rounding": "zero-sum-rows", "frame_family": "harmonic"}, "without a frame"),
    ]:
        with pytest.raises(sdq.ParameterError, match=needle):
            sdq.pack({"w": w}, tmp_path / "x.sdq", **kw)
    # A convolution [out, in, 3, 3]: zero-sum also takes each kernel window (9 weights),
    # zero-sum-rows only the rows; both files as the command line writes them.
    conv = rng.standard_normal((32, 16, 3, 3)).astype(np.float32)
    st = tmp_path / "conv.safetensors"
    safetensors.numpy.save_file({"c": conv}, str(st))
    window_sums = {}
    for rounding in ["zero-sum", "zero-sum-rows"]:
        sdq.pack(st, tmp_path / "py.sdq", rounding=rounding, bits_per_weight=4)
        run_cli("pack", st, "-o", tmp_path / "cli.sdq", "-q", "--rounding", rounding,
                "--bits-per-weight", "4")
        assert (tmp_path / "py.sdq").read_bytes() == (tmp_path / "cli.sdq").read_bytes()
        back = sdq.load_file(tmp_path / "py.sdq")["c"]
        window_sums[rounding] = np.abs((conv.astype(np.float64) - back).sum(axis=(2, 3))).mean()
    assert window_sums["zero-sum"] * 2 < window_sums["zero-sum-rows"], window_sums


@pytest.mark.parametrize(
    "kwargs, args",
    [
        ({"levels": 2}, ["--levels", "2"]),
        ({"reorder": True}, ["--reorder"]),
        ({"delta": "vector"}, ["--delta", "vector"]),
        ({"redundancy": 2.0}, ["--redundancy", "2"]),
        ({"code_bits": 2}, ["--code-bits", "2"]),
        ({"frame_size": 100}, ["--frame-size", "100"]),
        ({"bits_per_weight": 0}, ["--bits-per-weight", "0"]),
        ({"bits_per_weight": 33}, ["--bits-per-weight", "33"]),
        ({"bits_per_weight": float("nan")}, ["--bits-per-weight", "NaN"]),
        ({"max_error": -1.0}, ["--max-error=-1"]),
        ({"max_error": 0.1, "bits_per_weight": 4}, ["--max-error", "0.1", "--bits-per-weight", "4"]),
        ({"group": 0}, ["--group", "0"]),
        ({"step_rule": "vector"}, ["--step-rule", "vector"]),
        ({"step_policy": "least-squares"}, ["--step-policy", "least-squares"]),
        ({"step_policy": "lsq", "coding": "fixed"}, ["--step-policy", "lsq", "--coding", "fixed"]),
        ({"step_type": "f64"}, ["--step-type", "f64"]),
        ({"coding": "huffman"}, ["--coding", "huffman"]),
        ({"frame_family": "wavelet"}, ["--frame-family", "wavelet"]),
        ({"tensor_types": {"*": "q5"}}, ["--tensor-type", "*=q5"]),
        ({"tensor_types": {"*": -1}}, ["--tensor-type", "*=-1"]),
        ({"scheme": "first-order", "frame_family": "identity"},
         ["--scheme", "first-order", "--frame-family", "identity"]),
        ({"scheme": "first-order", "max_error": 0.1}, ["--scheme", "first-order", "--max-error", "0.1"]),
        ({"scheme": "first-order", "levels": 2, "code_bits": 2},
         ["--scheme", "first-order", "--levels", "2", "--code-bits", "2"]),
        ({"scheme": "first-order", "code_bits": 17}, ["--scheme", "first-order", "--code-bits", "17"]),
        ({"scheme": "third-order"}, ["--scheme", "third-order"]),
        ({"nonfinite": "ignore"}, ["--nonfinite", "ignore"]),
        ({"file_bits_per_weight": 0}, ["--file-bits-per-weight", "0"]),
        ({"file_bits_per_weight": 5, "max_error": 0.1},
         ["--file-bits-per-weight", "5", "--max-error", "0.1"]),
        ({"scheme": "first-order", "file_bits_per_weight": 5},
         ["--scheme", "first-order", "--file-bits-per-weight", "5"]),
    ],
)
def test_pack_refuses_what_the_cli_refuses(tmp_path, checkpoint, kwargs, args):
    path, _ = checkpoint
    with pytest.raises(sdq.ParameterError):
        sdq.pack(path, tmp_path / "x.sdq", **kwargs)
    r = run_cli("pack", path, "-o", tmp_path / "c.sdq", "-q", *args, ok=False)
    assert r.returncode == 2, (args, r.stderr)
    assert not (tmp_path / "x.sdq").exists() and not (tmp_path / "c.sdq").exists()


def test_pack_tensor_types_and_nonfinite(tmp_path):
    rng = np.random.default_rng(9)
    w = rng.standard_normal((128, 256)).astype(np.float32)
    nan = w.copy()
    nan[3, 4] = np.nan
    tensors = {"a.weight": w, "b.weight": w.copy(), "nan.weight": nan}
    out = tmp_path / "t.sdq"
    summary = sdq.pack(
        tensors, out, tensor_types=[("b.*", "raw"), ("*", 8)], nonfinite="raw"
    )
    assert summary["nonfinite_raw"] == ["nan.weight"]
    info = {t["name"]: t for t in sdq.info(out)["tensors"]}
    assert info["a.weight"]["encoding"] == "pcm"
    assert info["a.weight"]["bits_per_weight"] <= 8 * 1.01
    assert info["b.weight"]["encoding"] == info["nan.weight"]["encoding"] == "raw"
    back = sdq.load_file(out)
    np.testing.assert_array_equal(back["nan.weight"], nan)
