"""Downloading a data set's files: each URL tried in turn, every file checked, nothing half-written left.

:mod:`npixelcnn.data` (MNIST, Fashion-MNIST) and :mod:`npixelcnn.cifar10` download with
:func:`download_first`. Each attempt streams into a temporary file beside the target, named as
:func:`npixelcnn.files.temporary_path` names one, so that the next download of the same file
removes what a ``kill -9`` left behind. The caller's ``accept`` checks the file (its checksum,
its format) and only then puts what it holds in place: a rename (os.replace within one folder
is atomic) or an unpacking. The temporary file is removed whatever happens, Ctrl-C included, so
the folder never holds a partial or unverified file. When no URL delivers a good copy, the
error lists every URL tried with what went wrong there, and says what to do without internet.
"""

import http.client
import tarfile
import urllib.error
import urllib.request
import zlib

from tqdm import tqdm

from .files import remove_stale_temporaries, temporary_path

TIMEOUT_SECONDS = 30

# What a failed attempt raises: no connection or an HTTP error (OSErrors), a connection that
# broke, a file cut short or not gzip or tar, a failed check (ValueError). The next URL is tried.
FAILURES = (OSError, EOFError, zlib.error, ValueError, http.client.HTTPException, tarfile.TarError)


class DownloadError(RuntimeError):
    """No URL delivered a good copy of a file."""


def download_first(urls, target, accept, progress=True, error=DownloadError, advice="", sources="URLs"):
    """Download ``target`` from the first of ``urls`` whose copy ``accept`` takes.

    Args:
        urls: whole URLs of the file, tried in order.
        target: Path of the file in its folder (created with its parents if missing); its
            name labels the progress bar and the temporary files.
        accept: ``accept(tmp)`` checks the complete download at Path ``tmp`` and puts what it
            holds in place (renames it to ``target``, unpacks it); it raises one of
            :data:`FAILURES` (a failed check: ValueError) to refuse the copy.
        progress: show a progress bar while downloading.
        error: the exception class raised when no URL delivered (a :class:`DownloadError`).
        advice: the last lines of that error: what to do without internet.
        sources: what ``urls`` came from, for the error of an empty list ("mirrors").

    Returns:
        What ``accept`` returned for the first good copy.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    reasons = []
    for url in urls:
        tmp = temporary_path(target)
        out = open(tmp, "xb")          # outside the try: a folder we cannot write is not the URL's fault
        try:
            with out:
                fetch(url, out, target.name, progress)
            return accept(tmp)
        except FAILURES as failure:
            reasons.append(f"  {url}: {describe(failure)}")
        finally:                       # also on Ctrl-C: the temporary file never stays behind
            tmp.unlink(missing_ok=True)
    tried = "\n".join(reasons) if reasons else f"  (the list of {sources} was empty)"
    raise error(f"could not download {target.name} into {target.parent}. Tried:\n{tried}\n{advice}")


def fetch(url, out, label, progress=True):
    """Stream the body at ``url`` into the binary file ``out``, with a progress bar labelled ``label``.

    Raises what urllib raises (an HTTPError or URLError: OSErrors), and ValueError when fewer
    bytes arrive than the server announced (urllib returns what came before a dropped connection).
    """
    with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
        length = response.headers.get("Content-Length")
        expected = int(length) if length else None
        received = 0
        with tqdm(total=expected, unit="B", unit_scale=True, unit_divisor=1024,
                  desc=label, disable=not progress) as bar:
            while chunk := response.read(1 << 16):
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if expected is not None and received != expected:
        raise ValueError(f"received {received} bytes, the server announced {expected}")


def describe(error):
    """One line that says what went wrong: "HTTP 404 Not Found", "cannot connect (...)", a check's message."""
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return f"cannot connect ({error.reason})"
    if type(error) is ValueError:              # our own checks: the message says it all
        return str(error)
    return f"{type(error).__name__}: {error}"
