"""Tests of sdq.calibration (Gram files for `sdq pack --calibration`): the means against numpy,
the safetensors files against the `safetensors` package, and the refusals."""

import json
import os

import numpy as np
import pytest
import safetensors.numpy

import sdq
from sdq.calibration import GramAccumulator, save_safetensors


def test_full_gram_equals_numpy_mean_over_updates(tmp_path):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 5, 7)).astype(np.float32)  # [batch, seq, in]: 15 vectors
    b = rng.standard_normal((4, 7)).astype(np.float16)  # 4 more, another float dtype
    acc = GramAccumulator()
    acc.update("l.weight", a)
    acc.update("l.weight", b)
    x = np.concatenate([a.reshape(-1, 7).astype(np.float64), b.astype(np.float64)])
    want = x.T @ x / len(x)
    got = acc.gram("l.weight")
    assert got.shape == (7, 7) and got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert (got == got.T).all()
    assert acc.count("l.weight") == 19
    # positive semi-definite (up to rounding)
    assert np.linalg.eigvalsh(got).min() > -1e-12


def test_round_trip_through_safetensors_f32_and_f64(tmp_path):
    rng = np.random.default_rng(2)
    acc = GramAccumulator()
    acc.update("enc.q.weight", rng.standard_normal((40, 16)))
    acc.update("enc.fc2.weight", rng.standard_normal((2, 10, 33)) * 3.0)
    assert acc.names() == ["enc.q.weight", "enc.fc2.weight"]
    p32 = tmp_path / "gram32.safetensors"
    acc.save(p32, metadata={"sentences": "40"})
    back = safetensors.numpy.load_file(str(p32))
    assert set(back) == {"enc.q.weight", "enc.fc2.weight"}
    for k in back:
        assert back[k].dtype == np.float32
        assert back[k].shape == acc.gram(k).shape
        np.testing.assert_array_equal(back[k], acc.gram(k).astype(np.float32))
    with safetensors.safe_open(str(p32), framework="np") as f:
        assert f.metadata() == {"sentences": "40"}
    p64 = tmp_path / "gram64.safetensors"
    acc.save(p64, dtype="F64")
    back = safetensors.numpy.load_file(str(p64))
    for k in back:
        assert back[k].dtype == np.float64
        np.testing.assert_array_equal(back[k], acc.gram(k))
    # the header is 8-byte aligned and no temporary file is left behind
    raw = p64.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    assert n % 8 == 0 and json.loads(raw[8:8 + n])["enc.q.weight"]["dtype"] == "F64"
    assert sorted(os.listdir(tmp_path)) == ["gram32.safetensors", "gram64.safetensors"]


def test_diagonal_mode_is_the_mean_of_squares(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 9, 12)).astype(np.float32)
    acc = GramAccumulator(diagonal=True)
    acc.update("fc.weight", x)
    flat = x.reshape(-1, 12).astype(np.float64)
    g = acc.gram("fc.weight")
    assert g.shape == (12,)
    np.testing.assert_allclose(g, (flat ** 2).mean(0), rtol=1e-12)
    full = GramAccumulator()
    full.update("fc.weight", x)
    np.testing.assert_allclose(g, np.diag(full.gram("fc.weight")), rtol=1e-12)
    p = tmp_path / "imatrix.safetensors"
    acc.save(p)
    assert safetensors.numpy.load_file(str(p))["fc.weight"].shape == (12,)


def test_refusals_name_the_tensor(tmp_path):
    acc = GramAccumulator()
    acc.update("a.weight", np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"a\.weight.*in = 5.*in = 4"):
        acc.update("a.weight", np.ones((3, 5)))
    x = np.ones((2, 4))
    x[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"b\.weight.*non-finite"):
        acc.update("b.weight", x)
    with pytest.raises(ValueError, match=r"c\.weight.*floating-point"):
        acc.update("c.weight", np.ones((2, 4), dtype=np.int32))
    with pytest.raises(ValueError, match=r"d\.weight.*shape"):
        acc.update("d.weight", np.ones((3, 0)))
    with pytest.raises(ValueError, match=r"d\.weight.*shape"):
        acc.update("d.weight", np.float32(1.0))
    with pytest.raises(TypeError, match="name"):
        acc.update("", np.ones((2, 4)))
    # a refused update leaves the statistics as they were
    assert acc.names() == ["a.weight"] and acc.count("a.weight") == 2
    np.testing.assert_array_equal(acc.gram("a.weight"), np.ones((4, 4)))
    with pytest.raises(KeyError, match="zzz"):
        acc.gram("zzz")
    acc.update("e.weight", np.ones((0, 3)))
    with pytest.raises(ValueError, match=r"e\.weight.*no activation"):
        acc.gram("e.weight")
    with pytest.raises(ValueError, match="nothing to save"):
        GramAccumulator().save(tmp_path / "x.safetensors")
    with pytest.raises(ValueError, match="dtype"):
        save_safetensors({"a": np.ones(2)}, tmp_path / "x.safetensors", dtype="F16")
    with pytest.raises(ValueError, match=r"ints.*float array"):
        save_safetensors({"ints": np.ones(2, dtype=np.int32)}, tmp_path / "x.safetensors")
    with pytest.raises(ValueError, match=r"big.*non-finite"):
        save_safetensors({"big": np.array([1e300])}, tmp_path / "x.safetensors")
    assert os.listdir(tmp_path) == []


def test_package_reexports_the_native_module():
    import sdq._native as native

    for name in ("load_file", "info", "pack", "safe_open", "safe_slice", "SdqError",
                 "FormatError", "ChecksumError", "LimitError", "NoSuchTensorError",
                 "ParameterError", "DataError", "IoError", "__version__"):
        assert getattr(sdq, name) is getattr(native, name)
    assert sdq.calibration.GramAccumulator is GramAccumulator
