"""A user's vault keys: a BIP39 mnemonic sealed under the master password, and its public keys.

Seed 000 ("Vault Generation Sequence", "Technology Concept"): the vault is generated once the
user has set a master password; every user's vault has its own keys, and only the holder of
the master password can sign. So:

- `generate_vault` draws 256 bits of entropy, makes the 24-word English BIP39 mnemonic (no
  BIP39 passphrase) and keeps in the clear only the account extended public keys: BTC BIP84
  m/84'/0'/0' (native segwit, a `zpub`) and ETH BIP44 m/44'/60'/0' (an `xpub`). Deposit
  addresses come from these alone (`deposit_address`): showing one needs no password.
- The mnemonic is sealed with AES-256-GCM under a key stretched from the master password by
  argon2id. The associated data binds the ciphertext to its vault_uuid, so a sealed secret
  copied onto another vault does not open there. `open_vault` gives a `VaultSigner`; a wrong
  password, or any altered byte, raises `WrongMasterPassword` and says nothing more.
- The master password is NFC-normalised before stretching, so the same password typed on two
  keyboards that compose accents differently opens the vault.
- vault_uuid is 128 random bits in lower-case hex, drawn even when the entropy is given: it
  is a public identifier, and deriving it from the entropy would tie it to the keys for no
  gain.
- Nothing secret is kept in `GeneratedVault`, `VaultPublic` or `SealedSecret`. Only
  `VaultSigner` holds the seed, its repr shows the vault_uuid alone and it refuses to be
  pickled or copied. Python cannot wipe memory: drop a signer as soon as its work is done.

Pure: no I/O, no clock, no threads. Randomness comes from `random_bytes`
(`secrets.token_bytes` unless a deterministic simulation injects its own).
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from argon2.low_level import Type, hash_secret_raw
from bip_utils import (  # type: ignore[import-untyped, unused-ignore]
    Base58ChecksumError,
    Base58Decoder,
    Bech32ChecksumError,
    Bip32KeyError,
    Bip39Languages,
    Bip39MnemonicGenerator,
    Bip39MnemonicValidator,
    Bip39SeedGenerator,
    Bip44,
    Bip44Changes,
    Bip44Coins,
    Bip44DepthError,
    Bip44Levels,
    Bip84,
    Bip84Coins,
    EthAddrDecoder,
    SegwitBech32Decoder,
)
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from strongroom.identity.errors import (
    InvalidMasterPassword,
    InvalidMnemonic,
    InvalidVaultData,
    UnsupportedCurrency,
    WrongMasterPassword,
)

BITCOIN = "BTC"
ETHEREUM = "ETH"
TRON = "TRON"
# Tokens whose deposit address is an Ethereum address of the vault (ERC-20).
ETHEREUM_TOKENS = frozenset({"USDT"})
FIAT_CURRENCIES = frozenset({"USD", "EUR"})

CIPHER = "aes-256-gcm"
KEY_DERIVATION = "argon2id"
KEY_SIZE = 32
SALT_SIZE = 16
NONCE_SIZE = 12
TAG_SIZE = 16
ENTROPY_SIZE = 32  # 256 bits: a 24-word mnemonic
VAULT_UUID_SIZE = 16
MASTER_PASSWORD_LENGTH_MAX = 1024  # characters
MNEMONIC_LENGTH_MAX = 512  # characters; 24 English words need at most 215
CIPHERTEXT_SIZE_MAX = MNEMONIC_LENGTH_MAX + TAG_SIZE
EXTENDED_KEY_LENGTH_MAX = 128  # an xpub or zpub has 111 characters
ADDRESS_LENGTH_MAX = 100  # characters, before any decoding
ADDRESS_INDEX_MAX = 2**31 - 1  # non-hardened children only: derivable from a public key
RSA_KEY_BITS = (2048, 3072, 4096)

ARGON2_TIME_COST_MAX = 10
ARGON2_MEMORY_COST_KIB_MAX = 1_048_576  # 1 GiB: a stored record cannot ask for more
ARGON2_PARALLELISM_MAX = 8

_ASSOCIATED_DATA_PREFIX = b"strongroom vault mnemonic v1:"
_VAULT_UUID_PATTERN = re.compile(rf"[0-9a-f]{{{VAULT_UUID_SIZE * 2}}}")
_HEX_PATTERN = re.compile(r"(?:[0-9a-f]{2})*")
_MNEMONIC_WORD_COUNTS = frozenset({12, 15, 18, 21, 24})
_SEALED_FIELDS = frozenset(
    {"cipher", "key_derivation", "time_cost", "memory_cost_kib", "parallelism"}
    | {"salt", "nonce", "ciphertext"}
)

_BECH32_ALPHABET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_LENGTH_MAX = 90  # BIP173
_BECH32_CHECKSUM_LENGTH = 6
_BITCOIN_HUMAN_READABLE_PART = "bc"
_BASE58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BITCOIN_BASE58_VERSIONS = frozenset({0x00, 0x05})  # P2PKH, P2SH
_BASE58_PAYLOAD_SIZE = 21  # version byte and a 20-byte hash
_TRON_VERSION = 0x41
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")

RandomBytes = Callable[[int], bytes]


@dataclass(frozen=True, slots=True)
class Argon2Parameters:
    """Cost of stretching a master password; the defaults cost about 64 MiB and 0.1 s."""

    time_cost: int = 3
    memory_cost_kib: int = 65_536
    parallelism: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.parallelism <= ARGON2_PARALLELISM_MAX:
            raise ValueError(f"parallelism must be 1 to {ARGON2_PARALLELISM_MAX}")
        if not 1 <= self.time_cost <= ARGON2_TIME_COST_MAX:
            raise ValueError(f"time_cost must be 1 to {ARGON2_TIME_COST_MAX}")
        # argon2 needs 8 KiB per lane.
        if not 8 * self.parallelism <= self.memory_cost_kib <= ARGON2_MEMORY_COST_KIB_MAX:
            raise ValueError(
                f"memory_cost_kib must be 8 × parallelism to {ARGON2_MEMORY_COST_KIB_MAX}"
            )


DEFAULT_ARGON2_PARAMETERS = Argon2Parameters()


@dataclass(frozen=True, slots=True)
class SealedSecret:
    """The mnemonic, encrypted: what is stored, and all that is needed to open it again."""

    parameters: Argon2Parameters
    salt: bytes
    nonce: bytes
    ciphertext: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.salt) != SALT_SIZE:
            raise InvalidVaultData(f"salt must be {SALT_SIZE} bytes")
        if len(self.nonce) != NONCE_SIZE:
            raise InvalidVaultData(f"nonce must be {NONCE_SIZE} bytes")
        if not TAG_SIZE < len(self.ciphertext) <= CIPHERTEXT_SIZE_MAX:
            raise InvalidVaultData(
                f"ciphertext must be {TAG_SIZE + 1} to {CIPHERTEXT_SIZE_MAX} bytes"
            )

    def to_dict(self) -> dict[str, str | int]:
        return {
            "cipher": CIPHER,
            "key_derivation": KEY_DERIVATION,
            "time_cost": self.parameters.time_cost,
            "memory_cost_kib": self.parameters.memory_cost_kib,
            "parallelism": self.parameters.parallelism,
            "salt": self.salt.hex(),
            "nonce": self.nonce.hex(),
            "ciphertext": self.ciphertext.hex(),
        }

    @classmethod
    def from_dict(cls, document: Mapping[str, object]) -> SealedSecret:
        """The sealed secret `to_dict` wrote; anything else raises `InvalidVaultData`."""
        if set(document) != _SEALED_FIELDS:
            raise InvalidVaultData("sealed secret: unexpected or missing fields")
        if document["cipher"] != CIPHER or document["key_derivation"] != KEY_DERIVATION:
            raise InvalidVaultData(f"sealed secret: only {CIPHER} under {KEY_DERIVATION}")
        try:
            parameters = Argon2Parameters(
                time_cost=_integer(document, "time_cost"),
                memory_cost_kib=_integer(document, "memory_cost_kib"),
                parallelism=_integer(document, "parallelism"),
            )
        except ValueError as error:
            raise InvalidVaultData(f"sealed secret: {error}") from None
        return cls(
            parameters,
            salt=_hex_bytes(document, "salt"),
            nonce=_hex_bytes(document, "nonce"),
            ciphertext=_hex_bytes(document, "ciphertext"),
        )


@dataclass(frozen=True, slots=True)
class VaultPublic:
    """The account extended public keys: every deposit address derives from them, nothing signs."""

    bitcoin_account_key: str  # zpub of m/84'/0'/0'
    ethereum_account_key: str  # xpub of m/44'/60'/0'

    def __post_init__(self) -> None:
        _public_account(BITCOIN, self.bitcoin_account_key)
        _public_account(ETHEREUM, self.ethereum_account_key)

    def to_dict(self) -> dict[str, str]:
        return {BITCOIN: self.bitcoin_account_key, ETHEREUM: self.ethereum_account_key}

    @classmethod
    def from_dict(cls, document: Mapping[str, object]) -> VaultPublic:
        """The keys `to_dict` wrote; anything else raises `InvalidVaultData`."""
        if set(document) != {BITCOIN, ETHEREUM}:
            raise InvalidVaultData(f"public keys: exactly {BITCOIN} and {ETHEREUM} expected")
        bitcoin, ethereum = document[BITCOIN], document[ETHEREUM]
        if not isinstance(bitcoin, str) or not isinstance(ethereum, str):
            raise InvalidVaultData("public keys: strings expected")
        return cls(bitcoin_account_key=bitcoin, ethereum_account_key=ethereum)


@dataclass(frozen=True, slots=True)
class GeneratedVault:
    """A new vault: its id, public keys and sealed mnemonic, to store; no repr shows a secret."""

    vault_uuid: str
    public: VaultPublic
    sealed: SealedSecret


class VaultSigner:
    """An opened vault: derives private keys. Holds the seed; shows and serializes none of it."""

    __slots__ = ("_seed", "public", "vault_uuid")

    def __init__(self, vault_uuid: str, seed: bytes) -> None:
        self.vault_uuid = vault_uuid
        self._seed = seed
        self.public = _public_from_seed(seed)

    def private_key(self, currency: str, index: int = 0) -> bytes:
        """The 32-byte secp256k1 private key behind `deposit_address(public, currency, index)`."""
        chain = chain_of_currency(currency)
        _check_index(index)
        account = _private_account(chain, self._seed)
        address_key = account.Change(Bip44Changes.CHAIN_EXT).AddressIndex(index)
        return bytes(address_key.PrivateKey().Raw().ToBytes())

    def __repr__(self) -> str:
        return f"VaultSigner(vault_uuid={self.vault_uuid!r})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a VaultSigner holds a seed and is never pickled or copied")


def generate_vault(
    master_password: str,
    *,
    entropy: bytes | None = None,
    parameters: Argon2Parameters = DEFAULT_ARGON2_PARAMETERS,
    random_bytes: RandomBytes = secrets.token_bytes,
) -> GeneratedVault:
    """A new vault from 32 bytes of `entropy` (drawn from `random_bytes` unless given)."""
    if entropy is None:
        entropy = _draw(random_bytes, ENTROPY_SIZE)
    if len(entropy) != ENTROPY_SIZE:
        raise ValueError(f"entropy must be {ENTROPY_SIZE} bytes")
    mnemonic = str(Bip39MnemonicGenerator(Bip39Languages.ENGLISH).FromEntropy(entropy).ToStr())
    return generate_vault_from_mnemonic(
        mnemonic, master_password, parameters=parameters, random_bytes=random_bytes
    )


def generate_vault_from_mnemonic(
    mnemonic: str,
    master_password: str,
    *,
    parameters: Argon2Parameters = DEFAULT_ARGON2_PARAMETERS,
    random_bytes: RandomBytes = secrets.token_bytes,
) -> GeneratedVault:
    """A vault for an existing English BIP39 mnemonic of 12 to 24 words (restore, test vectors)."""
    words = _normalized_mnemonic(mnemonic)
    password = _password_bytes(master_password)
    if password is None:
        raise InvalidMasterPassword(
            f"a master password has 1 to {MASTER_PASSWORD_LENGTH_MAX} characters"
        )
    vault_uuid = _draw(random_bytes, VAULT_UUID_SIZE).hex()
    public = _public_from_seed(_seed(words))
    salt = _draw(random_bytes, SALT_SIZE)
    nonce = _draw(random_bytes, NONCE_SIZE)
    key = _stretch(password, salt, parameters)
    ciphertext = AESGCM(key).encrypt(nonce, words.encode(), _associated_data(vault_uuid))
    return GeneratedVault(vault_uuid, public, SealedSecret(parameters, salt, nonce, ciphertext))


def open_vault(sealed: SealedSecret, vault_uuid: str, master_password: str) -> VaultSigner:
    """The signer of a sealed vault; `WrongMasterPassword` if it does not open."""
    if not _VAULT_UUID_PATTERN.fullmatch(vault_uuid):
        raise InvalidVaultData(f"vault_uuid must be {VAULT_UUID_SIZE * 2} lower-case hex digits")
    password = _password_bytes(master_password)
    if password is None:
        raise WrongMasterPassword()
    key = _stretch(password, sealed.salt, sealed.parameters)
    try:
        plaintext = AESGCM(key).decrypt(
            sealed.nonce, sealed.ciphertext, _associated_data(vault_uuid)
        )
    except InvalidTag:
        raise WrongMasterPassword() from None
    # Authentic, so written by generate_vault: a bad mnemonic here is a bug, not an attack.
    words = _normalized_mnemonic(plaintext.decode())
    return VaultSigner(vault_uuid, _seed(words))


def chain_of_currency(currency: str) -> str:
    """The chain whose address receives `currency`: BTC, or ETH for ether and ERC-20 tokens."""
    if currency == BITCOIN:
        return BITCOIN
    if currency == ETHEREUM or currency in ETHEREUM_TOKENS:
        return ETHEREUM
    if currency in FIAT_CURRENCIES:
        raise UnsupportedCurrency(f"{currency} is fiat: it has no deposit address")
    raise UnsupportedCurrency(f"no deposit address for currency {currency[:16]!r}")


def deposit_address(public: VaultPublic, currency: str, index: int = 0) -> str:
    """The receive address number `index` (…/0/index) of `currency`, from public keys alone."""
    chain = chain_of_currency(currency)
    _check_index(index)
    key = public.bitcoin_account_key if chain == BITCOIN else public.ethereum_account_key
    account = _public_account(chain, key)
    address_key = account.Change(Bip44Changes.CHAIN_EXT).AddressIndex(index)
    return str(address_key.PublicKey().ToAddress())


def validate_address(chain: str, address: str) -> tuple[bool, str]:
    """(True, "") for a mainnet address of `chain` (BTC, ETH or TRON), else (False, why)."""
    if not address:
        return False, "empty address"
    if len(address) > ADDRESS_LENGTH_MAX:
        return False, f"longer than {ADDRESS_LENGTH_MAX} characters"
    if address != address.strip():
        return False, "leading or trailing whitespace"
    validator = _ADDRESS_VALIDATORS.get(chain)
    if validator is None:
        return False, f"unsupported chain {chain[:16]!r}"
    reason = validator(address)
    return reason == "", reason


def generate_rsa_key_pair(bits: int = 2048) -> tuple[str, str]:
    """(public key PEM SubjectPublicKeyInfo, private key PEM PKCS8 unencrypted), exponent 65537."""
    if bits not in RSA_KEY_BITS:
        raise ValueError(f"RSA key size must be one of {RSA_KEY_BITS}")
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return public_pem.decode("ascii"), private_pem.decode("ascii")


# Keys and secrets.


def _draw(random_bytes: RandomBytes, size: int) -> bytes:
    drawn = random_bytes(size)
    if len(drawn) != size:
        raise ValueError(f"random_bytes gave {len(drawn)} bytes, not {size}")
    return drawn


def _password_bytes(master_password: str) -> bytes | None:
    """The password's UTF-8 bytes after NFC, or None if it is empty or too long."""
    if not 0 < len(master_password) <= MASTER_PASSWORD_LENGTH_MAX:
        return None
    return unicodedata.normalize("NFC", master_password).encode()


def _normalized_mnemonic(mnemonic: str) -> str:
    if len(mnemonic) > MNEMONIC_LENGTH_MAX:
        raise InvalidMnemonic(f"longer than {MNEMONIC_LENGTH_MAX} characters")
    words = mnemonic.lower().split()
    if len(words) not in _MNEMONIC_WORD_COUNTS:
        raise InvalidMnemonic("a mnemonic has 12, 15, 18, 21 or 24 words")
    phrase = " ".join(words)
    if not Bip39MnemonicValidator(Bip39Languages.ENGLISH).IsValid(phrase):
        raise InvalidMnemonic("not English BIP39 words with a valid checksum")
    return phrase


def _seed(words: str) -> bytes:
    return bytes(Bip39SeedGenerator(words, Bip39Languages.ENGLISH).Generate())


def _stretch(password: bytes, salt: bytes, parameters: Argon2Parameters) -> bytes:
    return hash_secret_raw(
        secret=password,
        salt=salt,
        time_cost=parameters.time_cost,
        memory_cost=parameters.memory_cost_kib,
        parallelism=parameters.parallelism,
        hash_len=KEY_SIZE,
        type=Type.ID,
    )


def _associated_data(vault_uuid: str) -> bytes:
    return _ASSOCIATED_DATA_PREFIX + vault_uuid.encode()


def _private_account(chain: str, seed: bytes) -> Any:
    if chain == BITCOIN:
        return Bip84.FromSeed(seed, Bip84Coins.BITCOIN).Purpose().Coin().Account(0)
    return Bip44.FromSeed(seed, Bip44Coins.ETHEREUM).Purpose().Coin().Account(0)


def _public_from_seed(seed: bytes) -> VaultPublic:
    return VaultPublic(
        bitcoin_account_key=str(_private_account(BITCOIN, seed).PublicKey().ToExtended()),
        ethereum_account_key=str(_private_account(ETHEREUM, seed).PublicKey().ToExtended()),
    )


def _public_account(chain: str, extended_key: str) -> Any:
    """The account level of `chain` from a public extended key; `InvalidVaultData` otherwise."""
    if len(extended_key) > EXTENDED_KEY_LENGTH_MAX:
        raise InvalidVaultData(f"{chain} account key: longer than {EXTENDED_KEY_LENGTH_MAX}")
    try:
        if chain == BITCOIN:
            account = Bip84.FromExtendedKey(extended_key, Bip84Coins.BITCOIN)
        else:
            account = Bip44.FromExtendedKey(extended_key, Bip44Coins.ETHEREUM)
    except (Base58ChecksumError, Bip32KeyError, Bip44DepthError, ValueError):
        raise InvalidVaultData(f"{chain} account key: not an extended key of this chain") from None
    # A private key here would put a secret where everything is assumed public.
    if not account.IsPublicOnly():
        raise InvalidVaultData(f"{chain} account key: must be public, got a private key")
    if account.Level() != Bip44Levels.ACCOUNT:
        raise InvalidVaultData(f"{chain} account key: not at account depth 3")
    return account


def _check_index(index: int) -> None:
    if not 0 <= index <= ADDRESS_INDEX_MAX:
        raise ValueError(f"address index must be 0 to {ADDRESS_INDEX_MAX}")


def _integer(document: Mapping[str, object], name: str) -> int:
    value = document[name]
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidVaultData(f"sealed secret: {name} must be an integer")
    return value


def _hex_bytes(document: Mapping[str, object], name: str) -> bytes:
    value = document[name]
    if (
        not isinstance(value, str)
        or len(value) > 2 * CIPHERTEXT_SIZE_MAX
        or not _HEX_PATTERN.fullmatch(value)
    ):
        raise InvalidVaultData(f"sealed secret: {name} must be lower-case hex")
    return bytes.fromhex(value)


# Addresses. Each validator returns "" for a valid address, else a short reason.


def _bitcoin_reason(address: str) -> str:
    if address[:3].lower() == _BITCOIN_HUMAN_READABLE_PART + "1":
        return _segwit_reason(address)
    if address[0] in "13":
        return _bitcoin_base58_reason(address)
    return "not a mainnet Bitcoin address (bc1…, 1… or 3…)"


def _segwit_reason(address: str) -> str:
    """BIP173 (bech32, version 0) and BIP350 (bech32m, version 1 and above), mainnet."""
    if len(address) > _BECH32_LENGTH_MAX:
        return f"longer than {_BECH32_LENGTH_MAX} characters (BIP173)"
    if address not in (address.lower(), address.upper()):
        return "mixed upper and lower case"
    data = address.lower()[len(_BITCOIN_HUMAN_READABLE_PART) + 1 :]
    outside = sorted(set(data) - set(_BECH32_ALPHABET))
    if outside:
        return f"character {outside[0]!r} is not in the bech32 alphabet"
    if len(data) <= _BECH32_CHECKSUM_LENGTH:
        return "no witness version and program before the checksum"
    try:
        version, program = SegwitBech32Decoder.Decode(_BITCOIN_HUMAN_READABLE_PART, address)
    except Bech32ChecksumError:
        return "checksum does not match (bech32 for version 0, bech32m above)"
    except ValueError:
        return _segwit_decoding_reason(data)
    if version == 0:
        return ""  # the decoder has checked the 20- or 32-byte program
    if version == 1 and len(program) == 32:
        return ""
    if version == 1:
        return f"version 1 program length {len(program)}; taproot needs 32 bytes"
    # Valid per BIP350, but spendable by anyone until a soft fork gives them rules.
    return f"witness version {version} has no spending rules yet"


def _segwit_decoding_reason(data: str) -> str:
    """Why a bech32 string with a good checksum is still no segwit address."""
    version = _BECH32_ALPHABET.index(data[0])
    program_size = (len(data) - 1 - _BECH32_CHECKSUM_LENGTH) * 5 // 8
    if version > 16:
        return f"witness version {version} is above 16"
    if not 2 <= program_size <= 40:
        return f"witness program length {program_size}; 2 to 40 bytes allowed"
    if version == 0 and program_size not in (20, 32):
        return f"version 0 program length {program_size}; 20 or 32 bytes allowed"
    return "witness program has invalid padding bits"


def _base58_payload(address: str) -> bytes | str:
    """The payload of a base58check string, or the reason it has none."""
    outside = sorted(set(address) - set(_BASE58_ALPHABET))
    if outside:
        return f"character {outside[0]!r} is not in the base58 alphabet"
    try:
        payload = bytes(Base58Decoder.CheckDecode(address))
    except Base58ChecksumError:
        return "base58check checksum does not match"
    if len(payload) != _BASE58_PAYLOAD_SIZE:
        return f"decodes to {len(payload) + 4} bytes, not {_BASE58_PAYLOAD_SIZE + 4}"
    return payload


def _bitcoin_base58_reason(address: str) -> str:
    payload = _base58_payload(address)
    if isinstance(payload, str):
        return payload
    if payload[0] not in _BITCOIN_BASE58_VERSIONS:
        return f"version byte 0x{payload[0]:02x} is neither P2PKH (0x00) nor P2SH (0x05)"
    return ""


def _tron_reason(address: str) -> str:
    if not address.startswith("T"):
        return "a TRON address starts with T"
    payload = _base58_payload(address)
    if isinstance(payload, str):
        return payload
    if payload[0] != _TRON_VERSION:
        return f"version byte 0x{payload[0]:02x}, not 0x{_TRON_VERSION:02x}"
    return ""


def _ethereum_reason(address: str) -> str:
    if not address.startswith("0x"):
        return "an Ethereum address starts with 0x"
    digits = address[2:]
    if len(digits) != 40:
        return f"{len(digits)} characters after 0x, not 40"
    if not set(digits) <= _HEX_DIGITS:
        return "not hexadecimal after 0x"
    if digits in (digits.lower(), digits.upper()):
        return ""  # a single case carries no EIP-55 checksum
    try:
        EthAddrDecoder.DecodeAddr(address)
    except ValueError:
        return "mixed case does not match the EIP-55 checksum"
    return ""


_ADDRESS_VALIDATORS: dict[str, Callable[[str], str]] = {
    BITCOIN: _bitcoin_reason,
    ETHEREUM: _ethereum_reason,
    TRON: _tron_reason,
}
