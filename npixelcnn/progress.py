"""Progress bars: tqdm, as a widget in Jupyter when ipywidgets is installed, as text otherwise.

``tqdm.auto`` picks the widget bar inside Jupyter, and when ipywidgets is not
installed it says so with a warning and falls back to the text bar. The text
bar works well in notebooks too (and is what a saved notebook can show), so
we skip the warning rather than require ipywidgets.
"""

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="IProgress not found")
    from tqdm.auto import tqdm  # noqa: F401  (re-exported)
