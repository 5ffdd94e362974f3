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


def test_the_threaded_split_changes_no_number_even_on_one_core(monkeypatch):
    """for_each_chunk is exercised whatever the machine: three workers, no size threshold.

    Each chunk applies the same element-wise operation to its own rows, so the
    split must give bit-identical logits and gradients."""
    from conftest import tiny_pixelcnn
    rng = np.random.default_rng(0)
    levels = rng.integers(0, 3, (5, 7, 7))
    x = levels[..., None] / 2.0

    def step():
        model = tiny_pixelcnn(levels=3, seed=1)
        logits = model.forward(x)
        _, dlogits = npc.softmax_cross_entropy(logits, levels)
        model.backward(dlogits)
        return logits, {name: g.copy() for name, g in model.grads.items()}

    monkeypatch.setattr(parallel, "WORKERS", 1)
    one_logits, one_grads = step()

    submitted = []
    real_pool = parallel._get_pool()

    class CountingPool:
        def submit(self, *args):
            submitted.append(args)
            return real_pool.submit(*args)

    monkeypatch.setattr(parallel, "WORKERS", 3)
    monkeypatch.setattr(parallel, "MIN_PARALLEL_BYTES", 0)
    monkeypatch.setattr(parallel, "_get_pool", CountingPool)
    split_logits, split_grads = step()

    assert len(submitted) > 0, "the work was never split"
    np.testing.assert_array_equal(split_logits, one_logits)
    for name in one_grads:
        np.testing.assert_array_equal(split_grads[name], one_grads[name], err_msg=name)
