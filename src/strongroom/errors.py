"""The package-wide error hierarchy; each edge maps these to its own codes in one place."""


class StrongroomError(Exception):
    """Base of every error strongroom raises on purpose."""

    code = "error"


class ValidationError(StrongroomError):
    """Input that is not acceptable: off grid, too precise, out of range, unknown name."""

    code = "validation_error"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ConfigurationError(StrongroomError):
    code = "configuration_error"
