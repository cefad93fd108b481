"""Errors of the identity package; the edges map them to their codes in one place."""

from __future__ import annotations

from collections.abc import Sequence

from strongroom.errors import StrongroomError


class IdentityError(StrongroomError):
    """Base of the identity package's errors."""

    code = "identity_error"


class SignatureRejected(IdentityError):
    """A signed API key request that is not accepted; `reason` says why, for the caller."""

    code = "signature_rejected"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class WrongMasterPassword(IdentityError):
    """A sealed vault did not open: wrong password, or sealed data or vault_uuid altered.

    AES-GCM cannot tell these apart, and the message says no more on purpose.
    """

    code = "wrong_master_password"

    def __init__(self) -> None:
        super().__init__("wrong master password")


class InvalidMasterPassword(IdentityError):
    """A master password that cannot seal a vault (empty, or beyond the length limit)."""

    code = "invalid_master_password"


class InvalidMnemonic(IdentityError):
    """A phrase that is not an English BIP39 mnemonic of 12 to 24 words with a valid checksum."""

    code = "invalid_mnemonic"


class UnsupportedCurrency(IdentityError):
    """A currency with no deposit address here: unknown, or fiat."""

    code = "unsupported_currency"


class InvalidVaultData(IdentityError):
    """Stored vault data (sealed secret, public keys, vault_uuid) that is malformed."""

    code = "invalid_vault_data"


class InvalidEmail(IdentityError):
    """An email address that is not accepted; `reason` completes "The email ..."."""

    code = "invalid_email"

    def __init__(self, reason: str) -> None:
        super().__init__(f"email {reason}")
        self.reason = reason


class WeakPassword(IdentityError):
    """A password refused by the policy; `reasons` each complete "The password ..."."""

    code = "weak_password"

    def __init__(self, reasons: Sequence[str]) -> None:
        super().__init__("password " + "; ".join(reasons))
        self.reasons = tuple(reasons)


class OtpRejected(IdentityError):
    """A one-time password that is not accepted: "malformed", "wrong code", "already used"."""

    code = "otp_rejected"

    def __init__(self, reason: str) -> None:
        super().__init__(f"one-time password {reason}")
        self.reason = reason


class InvalidToken(IdentityError):
    """A user token that is not accepted; `reason` is short and precise ("expired", ...)."""

    code = "invalid_token"

    def __init__(self, reason: str) -> None:
        super().__init__(f"token {reason}")
        self.reason = reason


class Throttled(IdentityError):
    """Too many failed logins for the account or the address; retry after `retry_after_s`."""

    code = "throttled"

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"too many failed logins; retry after {retry_after_s:.1f} s")
        self.retry_after_s = retry_after_s


class EmailTaken(IdentityError):
    code = "email_taken"


class ExternalIdTaken(IdentityError):
    code = "external_id_taken"


class InvalidCredentials(IdentityError):
    code = "invalid_credentials"


class OtpRequired(IdentityError):
    code = "otp_required"


class WrongState(IdentityError):
    """The user is not in the state this step needs (e.g. 2FA already on, vault not ready)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
