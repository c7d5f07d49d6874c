"""Every exception streamrank raises on purpose, in one place (the bottom layer, so all can import it)."""


class StreamrankError(Exception):
    """Base of all project errors."""


class SettingsError(StreamrankError):
    """An environment variable holds a value that cannot be used."""


class ValidationError(StreamrankError):
    """A record (event or catalog change) is malformed; the message says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PayloadTooLarge(ValidationError):
    """A record or request body is over the configured size limit."""


class NotFound(StreamrankError):
    """A user, item or model version is unknown."""


class BrokerUnavailable(StreamrankError):
    """Kafka did not answer in time."""


class ModelUnavailable(StreamrankError):
    """A model (pretrained package or checkpoint) cannot be found or loaded; the message says how to fix it."""


class DataError(StreamrankError):
    """An input data file is missing or malformed; the message names the file and the problem."""


class GatewayUnavailable(StreamrankError):
    """The HTTP gateway a job calls did not answer or answered with an error; the message names the URL."""
