"""The speed work: the fast twins (npixelcnn.fast_ops) give the same numbers as the plain
operations (npixelcnn.ops), their threaded split changes nothing, the cached sampler's
products run on one BLAS thread (npixelcnn.blas), and the data parallel training step
(npixelcnn.data_parallel) gives the serial loss and gradients. By default none of it runs:
a layer called from Python runs the plain operations in the caller's thread."""

import numpy as np
import pytest

import npixelcnn as npc
from npixelcnn import blas, data_parallel, fast_ops, ops
from npixelcnn.distributions import SoftmaxOutput

from conftest import randomize


def numpy_uses_openblas():
    blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    return "openblas" in blas["name"].lower()


def test_the_limit_takes_effect_exactly_when_numpy_uses_openblas():
    before = blas.blas_threads()
    with blas.limit_blas_threads(1) as took_effect:
        assert took_effect == numpy_uses_openblas()
        if took_effect:
            assert blas.blas_threads() == 1
        a = np.random.default_rng(0).random((300, 200))
        np.testing.assert_allclose(a @ a.T, np.einsum("ik,jk->ij", a, a), rtol=1e-12)
    assert blas.blas_threads() == before


def test_the_thread_count_is_restored_after_an_error():
    before = blas.blas_threads()
    with pytest.raises(KeyError):
        with blas.limit_blas_threads(1):
            raise KeyError("boom")
    assert blas.blas_threads() == before


def test_the_limit_never_raises_the_thread_count():
    before = blas.blas_threads()
    if before is None:
        pytest.skip("NumPy's BLAS is not OpenBLAS: nothing to limit")   # covered by the first test
    with blas.limit_blas_threads(before + 5):
        assert blas.blas_threads() == before


def test_cached_sampling_runs_on_one_blas_thread_and_restores_the_count(monkeypatch):
    model = npc.PixelCNN(levels=4, hidden=2, blocks=1, head=4, seed=0)
    before = blas.blas_threads()
    seen = []
    real_draw = SoftmaxOutput.draw

    def recording_draw(*args, **kwargs):
        seen.append(blas.blas_threads())
        return real_draw(*args, **kwargs)
    monkeypatch.setattr(SoftmaxOutput, "draw", recording_draw)
    npc.sample(model, 2, (4, 4), seed=0, method="cached")
    assert seen == [1 if numpy_uses_openblas() else None] * 16
    assert blas.blas_threads() == before

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(SoftmaxOutput, "draw", interrupted)
    with pytest.raises(KeyboardInterrupt):
        npc.sample(model, 2, (4, 4), seed=0, method="cached")
    assert blas.blas_threads() == before


def count_submissions(monkeypatch):
    """Route fast's thread pool through a recorder; returns the list of what was submitted."""
    submitted = []
    real_pool = fast_ops.get_pool()

    class CountingPool:
        def submit(self, *args):
            submitted.append(args)
            return real_pool.submit(*args)

    monkeypatch.setattr(fast_ops, "get_pool", CountingPool)
    return submitted


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
        with ops.fast():
            logits = model.forward(x)
            _, dlogits = npc.softmax_cross_entropy(logits, levels)
            model.backward(dlogits)
        return logits, {name: g.copy() for name, g in model.grads.items()}

    monkeypatch.setattr(fast_ops, "WORKERS", 1)
    one_logits, one_grads = step()

    submitted = count_submissions(monkeypatch)
    monkeypatch.setattr(fast_ops, "WORKERS", 3)
    monkeypatch.setattr(fast_ops, "MIN_PARALLEL_BYTES", 0)
    split_logits, split_grads = step()

    assert len(submitted) > 0, "the work was never split"
    np.testing.assert_array_equal(split_logits, one_logits)
    for name in one_grads:
        np.testing.assert_array_equal(split_grads[name], one_grads[name], err_msg=name)


# ------------------------------------------------------------------ the fast twins equal the plain operations


@pytest.mark.parametrize("shape", [(2, 5, 7, 3), (9, 28, 28, 20)])        # the second crosses the 1 MiB threshold
def test_element_wise_twins_equal_the_plain_operations(shape):
    rng = np.random.default_rng(0)
    x, dy = rng.standard_normal(shape), rng.standard_normal(shape)
    y = np.maximum(x, 0)
    rows = x.reshape(-1, shape[-1])
    b = rng.standard_normal(shape[-1])
    np.testing.assert_array_equal(fast_ops.relu(x), np.maximum(x, 0))
    np.testing.assert_array_equal(fast_ops.relu_backward(dy, y), dy * (y > 0))
    np.testing.assert_array_equal(fast_ops.add(x, dy), x + dy)
    np.testing.assert_array_equal(fast_ops.add_bias(rows.copy(), b), rows + b)
    np.testing.assert_allclose(fast_ops.sum_rows(rows), rows.sum(axis=0), rtol=1e-12, atol=1e-12)
    row_max = rows.max(axis=1, keepdims=True)
    exp, sums = fast_ops.exp_and_row_sums(rows, row_max)
    np.testing.assert_array_equal(exp, np.exp(rows - row_max))
    np.testing.assert_allclose(sums, np.exp(rows - row_max).sum(axis=1), rtol=1e-12)
    W = rng.standard_normal((7, shape[-1]))
    np.testing.assert_allclose(fast_ops.matmul_into_scratch(rows, W.T), rows @ W.T, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("levels", [4, 48, 256])
@pytest.mark.parametrize("dtype, rtol", [(np.float32, 2e-6), (np.float64, 1e-14)])
def test_the_running_sums_twin_equals_cumsum(levels, dtype, rtol):
    """In blocks of 16 (48 and 256 levels) the sums are taken in another order: equal to
    float rounding; 4 levels go to np.cumsum itself."""
    p = np.exp(np.random.default_rng(levels).standard_normal((64, levels)) * 4).astype(dtype)
    p /= p.max(axis=1, keepdims=True)                    # as draw makes them: the largest is 1
    expected = np.cumsum(p, axis=1)
    got = fast_ops.cumsum_rows(p)
    assert got.dtype == dtype and got.shape == p.shape
    if levels % fast_ops.CUMSUM_BLOCK:
        np.testing.assert_array_equal(got, expected)
    else:
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=0)
    with ops.plain():
        np.testing.assert_array_equal(ops.cumsum_rows(p), expected)


@pytest.mark.parametrize("k, mask_type", [(1, "B"), (3, "A"), (3, "B"), (5, "A"), (7, "A"), (7, "B")])
@pytest.mark.parametrize("shape", [(2, 6, 5, 3), (3, 4, 9, 2)])
def test_a_masked_convolution_gives_the_same_numbers_on_both_paths(k, mask_type, shape):
    rng = np.random.default_rng(k)
    layer = randomize(npc.MaskedConv2D(shape[-1], 4, k, mask_type), seed=k)
    x = rng.standard_normal(shape)
    dy = rng.standard_normal(shape[:3] + (4,))

    def forward_and_backward():
        y = layer.forward(x).copy()
        return y, layer.backward(dy).copy(), {n: g.copy() for n, g in layer.grads.items()}

    with ops.fast():
        y_fast, dx_fast, grads_fast = forward_and_backward()
    y_plain, dx_plain, grads_plain = forward_and_backward()        # the default: the plain operations
    np.testing.assert_allclose(y_fast, y_plain, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx_fast, dx_plain, rtol=1e-12, atol=1e-12)
    for name in grads_plain:
        np.testing.assert_allclose(grads_fast[name], grads_plain[name], rtol=1e-12, atol=1e-12)


def test_a_whole_model_gives_the_same_numbers_on_both_paths():
    from conftest import tiny_pixelcnn
    rng = np.random.default_rng(0)
    levels = rng.integers(0, 3, (4, 9, 8))
    x = levels[..., None] / 2.0
    model = tiny_pixelcnn(levels=3, seed=2)

    def step():
        logits = model.forward(x).copy()
        _, dlogits = npc.softmax_cross_entropy(logits, levels)
        model.backward(dlogits)
        return logits, {name: g.copy() for name, g in model.grads.items()}

    with ops.fast():
        logits_fast, grads_fast = step()
    logits_plain, grads_plain = step()
    np.testing.assert_allclose(logits_fast, logits_plain, rtol=1e-12, atol=1e-12)
    for name in grads_plain:
        np.testing.assert_allclose(grads_fast[name], grads_plain[name], rtol=1e-10, atol=1e-12, err_msg=name)


def test_plain_mode_really_runs_the_plain_operations(monkeypatch):
    """By default, and inside ops.plain(), no fast twin is called (so the tests above compare two
    paths); inside ops.fast() every one is."""
    called = []
    for name in ("relu", "relu_backward", "add", "add_bias", "sum_rows", "im2col", "col2im",
                 "matmul_into_scratch", "exp_and_row_sums"):
        real = getattr(fast_ops, name)
        monkeypatch.setattr(fast_ops, name, lambda *a, _real=real, _name=name, **k: called.append(_name) or _real(*a, **k))
    from conftest import tiny_pixelcnn
    model = tiny_pixelcnn(levels=3)
    x = np.zeros((1, 5, 5, 1))
    levels = np.zeros((1, 5, 5), np.int64)
    model.backward(npc.softmax_cross_entropy(model.forward(x), levels)[1])
    with ops.fast(), ops.plain():
        model.backward(npc.softmax_cross_entropy(model.forward(x), levels)[1])
    assert called == []
    with ops.fast():
        model.backward(npc.softmax_cross_entropy(model.forward(x), levels)[1])
    assert not ops.using_fast()                       # the block put the default back
    assert set(called) == {"relu", "relu_backward", "add", "add_bias", "sum_rows", "im2col", "col2im",
                           "matmul_into_scratch", "exp_and_row_sums"}


# ------------------------------------------------------------------ data parallel training


def loss_and_gradients(model, x, levels, labels=None):
    """What Trainer.loss_and_gradients does, without the trainer."""
    logits = model.forward(x, labels)
    loss, dlogits = npc.softmax_cross_entropy(logits, levels)
    model.backward(dlogits)
    return loss


def tiny_gated(seed=0):
    return randomize(npc.GatedPixelCNN(levels=3, channels=4, layers=3, head=6, seed=seed), seed=seed)


@pytest.mark.parametrize("make_model", [tiny_gated, lambda seed: __import__("conftest").tiny_pixelcnn(seed=seed)],
                         ids=["gated", "pixelcnn"])
def test_data_parallel_gives_the_serial_loss_and_gradient(make_model):
    """Three replicas on a batch of 5 (parts of 1, 2 and 2 images): the weighted mean of
    their gradients is the gradient of the whole batch's mean loss, to float64 rounding."""
    rng = np.random.default_rng(0)
    levels = rng.integers(0, 3, (5, 7, 7))
    x = levels[..., None] / 2.0
    serial = make_model(seed=1)
    serial_loss = loss_and_gradients(serial, x, levels)
    model = make_model(seed=1)
    parallel = data_parallel.DataParallel(model, workers=3)
    loss = parallel.mean_loss_and_gradients(loss_and_gradients, x, levels)
    assert loss == pytest.approx(serial_loss, rel=1e-13)
    for name, grad in serial.grads.items():
        assert np.abs(grad).max() > 0, name            # a check of zeros would prove nothing
        np.testing.assert_allclose(model.grads[name], grad, rtol=1e-10, atol=1e-14, err_msg=name)
    # The replicas kept their own gradients: each saw only its part of the batch.
    output_weights = [name for name in model.grads if name.endswith("W")][-1]
    assert not np.allclose(parallel.replicas[1].grads[output_weights], model.grads[output_weights])


def test_replicas_share_the_models_weights_through_updates_and_conversions():
    model = npc.GatedPixelCNN(levels=3, channels=4, layers=2, head=6, seed=0)
    parallel = data_parallel.DataParallel(model, workers=2)
    replica = parallel.replicas[1]
    for name, value in model.params.items():
        assert replica.params[name] is value, name
    levels = np.random.default_rng(1).integers(0, 3, (4, 6, 6))
    x = (levels[..., None] / 2.0).astype(np.float32)
    parallel.mean_loss_and_gradients(loss_and_gradients, x, levels)
    npc.Adam(model, lr=0.1).step()                     # in place: the replica sees the new weights
    np.testing.assert_array_equal(replica.forward(x[:1]), model.forward(x[:1]))
    model.astype(np.float64)                          # new arrays: relinked at the next call
    loss = parallel.mean_loss_and_gradients(loss_and_gradients, x.astype(np.float64), levels)
    assert np.isfinite(loss)
    for name, value in model.params.items():
        assert replica.params[name] is value and replica.grads[name].dtype == np.float64, name


def test_a_replicas_error_reaches_the_caller_and_leaves_no_limit_behind():
    model = npc.PixelCNN(levels=3, hidden=2, blocks=1, head=4, seed=0)
    parallel = data_parallel.DataParallel(model, workers=2)
    before = blas.blas_threads()

    def failing(model_or_replica, x, levels, labels=None):
        if model_or_replica is not model:
            raise FloatingPointError("the replica's part diverged")
        return loss_and_gradients(model_or_replica, x, levels)

    levels = np.zeros((4, 5, 5), dtype=int)
    with pytest.raises(FloatingPointError, match="replica's part"):
        parallel.mean_loss_and_gradients(failing, (levels[..., None] / 2.0).astype(np.float32), levels)
    assert blas.blas_threads() == before
    assert not fast_ops.in_replica()


def test_inside_a_replica_the_element_wise_work_is_not_split_again(monkeypatch):
    """Each core already has its share of the batch: for_each_chunk must not hand out more threads."""
    submitted = count_submissions(monkeypatch)
    monkeypatch.setattr(fast_ops, "MIN_PARALLEL_BYTES", 0)
    model = npc.PixelCNN(levels=3, hidden=2, blocks=1, head=4, seed=0)
    levels = np.random.default_rng(2).integers(0, 3, (4, 6, 6))
    x = (levels[..., None] / 2.0).astype(np.float32)
    data_parallel.DataParallel(model, workers=2).mean_loss_and_gradients(loss_and_gradients, x, levels)
    assert len(submitted) == 1                        # the second replica, and nothing else


def test_the_trainer_splits_its_batches_over_the_cores_when_asked(monkeypatch):
    """Trainer(parallel=True) splits each batch over the cores: with two workers its first loss is
    the serial one (float32 rounding); by default it runs the whole batch on the model itself."""
    from npixelcnn.config import TrainConfig
    images = np.random.default_rng(3).integers(0, 4, (24, 8, 8)).astype(np.uint8)
    config = TrainConfig(levels=4, model=dict(hidden=4, blocks=1, head=8), batch_size=6, total_steps=2, evals=1)
    made, real_parallel = [], data_parallel.DataParallel

    def recording_parallel(*args, **kwargs):
        made.append(real_parallel(*args, **kwargs))
        return made[-1]
    monkeypatch.setattr(data_parallel, "DataParallel", recording_parallel)
    losses = {}
    for workers in (1, 2):
        monkeypatch.setattr(fast_ops, "WORKERS", workers)
        losses[workers] = npc.Trainer(config, images, images[:4], parallel=True).train_step()
    assert [p.workers for p in made] == [2]
    assert losses[2] == pytest.approx(losses[1], rel=1e-5)
    assert npc.Trainer(config, images, images[:4]).train_step() == losses[1]    # bit for bit
    assert len(made) == 1                             # the default step made no replicas


def test_evaluation_splits_its_batches_over_the_cores_when_asked_and_gives_the_serial_figure(monkeypatch):
    """evaluate(parallel=True): with three workers each batch is scored in three parts by
    replicas (in inference mode), and their totals add up to the serial figure."""
    model = tiny_gated(seed=4).astype(np.float64)
    levels = np.random.default_rng(5).integers(0, 3, (7, 6, 6))
    submitted = count_submissions(monkeypatch)
    monkeypatch.setattr(fast_ops, "WORKERS", 3)
    serial = npc.evaluate(model, levels, batch_size=5)
    assert submitted == []                           # the default: no thread but the caller's
    split = npc.evaluate(model, levels, batch_size=5, parallel=True)
    # Batches of 5 and 2 images: 2 + 1 parts on other threads (the model itself takes the first).
    assert len(submitted) == 3
    assert split == pytest.approx(serial, rel=1e-13)
    assert split == pytest.approx(npc.evaluate(model, levels, batch_size=7), rel=1e-13)
    replicas = data_parallel._data_parallel[model].replicas
    assert len(replicas) == 3
    for replica in replicas[1:]:                     # they ran in inference mode: nothing kept for backward
        assert all(not leaf.training and leaf._cache is None for _, leaf in replica.named_leaves())
    assert model.training                            # put back in the mode it was in


def test_with_the_defaults_a_layers_backward_runs_in_the_callers_thread(monkeypatch):
    """A breakpoint a learner sets in Conv2D.backward or ReLU.backward stops in their own thread:
    called from Python (a model, a layer, the loss, a training step, an evaluation), nothing is
    handed to another thread."""
    import threading
    seen = []
    for layer_class in (npc.Conv2D, npc.ReLU):
        real = layer_class.backward
        monkeypatch.setattr(layer_class, "backward",
                            lambda self, dy, _real=real: seen.append(threading.current_thread()) or _real(self, dy))
    submitted = count_submissions(monkeypatch)
    monkeypatch.setattr(fast_ops, "MIN_PARALLEL_BYTES", 0)           # any split would show
    from npixelcnn.config import TrainConfig
    images = np.random.default_rng(6).integers(0, 4, (12, 8, 8)).astype(np.uint8)
    for arch, model in (("pixelcnn", dict(hidden=4, blocks=1, head=8)), ("gated", dict(channels=4, layers=2, head=8))):
        config = TrainConfig(arch=arch, levels=4, model=model, batch_size=6, total_steps=2, evals=1)
        trainer = npc.Trainer(config, images, images[:4])
        trainer.train_step()
        x = npc.to_model_input(images[:2], 4)
        trainer.model.backward(npc.softmax_cross_entropy(trainer.model.forward(x), images[:2])[1])
        npc.evaluate(trainer.model, images[:4])
    assert len(seen) > 0 and set(seen) == {threading.current_thread()}
    assert submitted == []
