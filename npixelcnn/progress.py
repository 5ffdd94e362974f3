"""Progress bars: tqdm, as a widget in Jupyter when ipywidgets is installed, as text otherwise.

``tqdm.auto`` picks the widget bar inside Jupyter, and when ipywidgets is not
installed it says so with a warning and falls back to the text bar. The text
bar works well in notebooks too (and is what a saved notebook can show), so
we skip the warning rather than require ipywidgets.
"""

import warnings
from contextlib import contextmanager

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="IProgress not found")
    from tqdm.auto import tqdm  # noqa: F401  (re-exported)


@contextmanager
def paused(bar):
    """Leave the time spent inside the block out of ``bar``'s rate, elapsed time and ETA.

    The training loop evaluates the test set and saves checkpoints inside this,
    so the bar shows the speed of training steps and the time they still need,
    not a rate that drops at every evaluation. tqdm measures both from its
    start time and the time of its last refresh; moving them forward by the
    pause removes it.
    """
    if bar.disable:
        yield
        return
    started = bar._time()
    try:
        yield
    finally:
        pause = bar._time() - started
        bar.start_t += pause
        bar.last_print_t += pause
