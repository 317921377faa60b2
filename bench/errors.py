"""The one exception type a user can cause; the CLI prints its message as a single sentence."""


class BenchError(Exception):
    """A failure with a message that tells the user what to do. Printed without a traceback."""
