"""All exceptions of trigger-sim, in one shallow hierarchy.

Each message says what is wrong and, where it helps, what to do about it.
"""


class TriggerSimError(Exception):
    """Base of every error raised on purpose by trigger-sim."""


class ConfigError(TriggerSimError):
    """A configuration file is missing, malformed, or has an unknown or invalid key."""


class WireFormatError(TriggerSimError):
    """A fragment on the wire cannot be decoded."""


class BadMagic(WireFormatError):
    """The header does not start with the fragment magic number: not a trigger-sim fragment."""


class UnsupportedVersion(WireFormatError):
    """The fragment was written in a wire-format version this build does not read."""


class TruncatedFragment(WireFormatError):
    """Frames are missing or shorter than their header says."""


class ChecksumMismatch(WireFormatError):
    """The CRC32 of the received bytes differs from the one in the header."""


class AbsurdSize(WireFormatError):
    """A size in the header exceeds the configured limits (refused before allocating)."""


class MalformedDescriptor(WireFormatError):
    """An array descriptor is inconsistent (unknown dtype, bad shape, bad name)."""


class RecordingError(TriggerSimError):
    """A recording file is not readable (wrong magic, version, or a corrupt record)."""


class InferenceError(TriggerSimError):
    """An inference call failed; the caller falls back to local inference."""


class InferenceTimeout(InferenceError):
    """The inference server did not answer before the call's deadline."""


class InferenceUnavailable(InferenceError):
    """The inference server could not be reached or refused the request."""


class TritonStartError(TriggerSimError):
    """The local tritonserver could not be started or did not become ready."""


class FragmentDataError(TriggerSimError):
    """A fragment decoded cleanly but its contents do not fit the detector (ids out of range)."""


class ImportDataError(TriggerSimError):
    """External event data cannot be imported (unreadable file or unexpected content)."""


class IspyError(ImportDataError):
    """An iSpy event-display file (.ig) is not a zip, has a member that does not parse, or
    lacks a collection or column the importer needs."""
