"""The one exception type the CLI turns into a single clear line and a non-zero exit."""


class SpriteForgeError(Exception):
    """A problem the user can fix (bad file, bad flag, missing dataset); never shown with a traceback."""
