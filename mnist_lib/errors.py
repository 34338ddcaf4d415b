"""The one exception type the library raises for bad input.

The CLI turns it into a single ``error: ...`` line and exit status 2; notebooks let it
propagate so papermill names the failing cell.
"""


class MnistLibError(Exception):
    """Bad input or an unusable environment: the message names the file or parameter and
    says what to do about it."""
