"""parallel.limit_blas_threads: the cached sampler's products run on one BLAS thread."""

import numpy as np
import pytest

import npixelcnn as npc
from npixelcnn import parallel


def numpy_uses_openblas():
    blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    return "openblas" in blas["name"].lower()


def test_the_limit_takes_effect_exactly_when_numpy_uses_openblas():
    before = parallel.blas_threads()
    with parallel.limit_blas_threads(1) as took_effect:
        assert took_effect == numpy_uses_openblas()
        if took_effect:
            assert parallel.blas_threads() == 1
        a = np.random.default_rng(0).random((300, 200))
        np.testing.assert_allclose(a @ a.T, np.einsum("ik,jk->ij", a, a), rtol=1e-12)
    assert parallel.blas_threads() == before


def test_the_thread_count_is_restored_after_an_error():
    before = parallel.blas_threads()
    with pytest.raises(KeyError):
        with parallel.limit_blas_threads(1):
            raise KeyError("boom")
    assert parallel.blas_threads() == before


def test_the_limit_never_raises_the_thread_count():
    before = parallel.blas_threads()
    if before is None:
        pytest.skip("NumPy's BLAS is not OpenBLAS: nothing to limit")   # covered by the first test
    with parallel.limit_blas_threads(before + 5):
        assert parallel.blas_threads() == before


def test_cached_sampling_runs_on_one_blas_thread_and_restores_the_count(monkeypatch):
    model = npc.PixelCNN(levels=4, hidden=2, blocks=1, head=4, seed=0)
    before = parallel.blas_threads()
    seen = []
    real_draw = npc.sampling.draw

    def recording_draw(*args):
        seen.append(parallel.blas_threads())
        return real_draw(*args)
    monkeypatch.setattr(npc.sampling, "draw", recording_draw)
    npc.sample(model, 2, (4, 4), seed=0, method="cached")
    assert seen == [1 if numpy_uses_openblas() else None] * 16
    assert parallel.blas_threads() == before

    def interrupted(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(npc.sampling, "draw", interrupted)
    with pytest.raises(KeyboardInterrupt):
        npc.sample(model, 2, (4, 4), seed=0, method="cached")
    assert parallel.blas_threads() == before
