"""Typed exceptions. The library raises these; only the CLI turns them into one line and an exit code."""


class RnnEdgeError(Exception):
    """Base of every error rnnedge raises on purpose."""


class ConfigError(RnnEdgeError, ValueError):
    """A configuration value is out of its allowed range or of the wrong type."""


class DataError(RnnEdgeError, ValueError):
    """An input data file is unreadable or holds values we refuse (missing, non-numeric, unsorted)."""


class ArtifactError(RnnEdgeError):
    """A model artifact cannot be loaded; the message says which file and what is wrong."""


class MissingFileError(ArtifactError):
    """A file the manifest needs (or the manifest itself) is not there."""


class DigestMismatchError(ArtifactError):
    """A file's sha256 differs from the one the manifest recorded."""


class SchemaVersionError(ArtifactError):
    """The manifest's schema version is one this release cannot read."""


class ShapeMismatchError(ArtifactError):
    """An array's shape disagrees with the model shapes the manifest declares."""


class NonFiniteError(ArtifactError):
    """An array holds NaN or infinity."""


class MissingDependencyError(RnnEdgeError):
    """A host-only feature needs a package this install does not have."""
