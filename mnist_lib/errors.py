"""The one exception type the library raises for bad input: the CLI turns it into a single
``error: ...`` line and exit status 2; notebooks let it propagate so papermill names the failing cell."""


class MnistLibError(Exception):
    """Bad input or an unusable environment: the message names the file or parameter and what to do."""


class Diverged(MnistLibError):
    """Training produced a non-finite loss. ``history`` holds the epochs finished before it, so a
    study can record the run as failed instead of stopping."""

    def __init__(self, message: str, history: list | None = None):
        super().__init__(message)
        self.history = list(history or [])
