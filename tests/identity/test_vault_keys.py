from __future__ import annotations

import copy
import json
import pickle
import unicodedata
from collections.abc import Callable

import pytest
from bip_utils import (  # type: ignore[import-untyped, unused-ignore]
    Base58Encoder,
    Bip39Languages,
    Bip39MnemonicGenerator,
    Bip39SeedGenerator,
    Bip44Changes,
    Bip84,
    Bip84Coins,
    EthAddrEncoder,
    P2WPKHAddrEncoder,
    TrxAddrEncoder,
    WifEncoder,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.errors import StrongroomError
from strongroom.identity.errors import (
    IdentityError,
    InvalidMasterPassword,
    InvalidMnemonic,
    InvalidVaultData,
    UnsupportedCurrency,
    WrongMasterPassword,
)
from strongroom.identity.vault_keys import (
    Argon2Parameters,
    GeneratedVault,
    SealedSecret,
    VaultPublic,
    VaultSigner,
    chain_of_currency,
    deposit_address,
    generate_rsa_key_pair,
    generate_vault,
    generate_vault_from_mnemonic,
    open_vault,
    validate_address,
)

# argon2id at its floor: 8 KiB, one pass. Only test_default_parameters pays the real cost.
CHEAP = Argon2Parameters(time_cost=1, memory_cost_kib=8, parallelism=1)
PASSWORD = "correct horse battery staple"

# BIP84 test vector (https://github.com/bitcoin/bips/blob/master/bip-0084.mediawiki).
ABANDON_ABOUT = " ".join(["abandon"] * 11 + ["about"])
ABANDON_ABOUT_ZPUB = (
    "zpub6rFR7y4Q2AijBEqTUquhVz398htDFrtymD9xYYfG1m4wAcvPhXNfE3EfH1r1ADqtf"
    "SdVCToUG868RvUUkgDKf31mGDtKsAYz2oz2AGutZYs"
)
ABANDON_ABOUT_BTC = [
    "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu",
    "bc1qnjg0jd8228aq7egyzacy8cys3knf9xvrerkf9g",
]
ABANDON_ABOUT_BTC_WIF = "KyZpNDKnfs94vbrwhJneDi77V6jF64PWPF8x5cdJb8ifgg2DUc9d"
# The same mnemonic on m/44'/60'/0'/0/i (MetaMask, Ledger Live, ...).
ABANDON_ABOUT_ETH = [
    "0x9858EfFD232B4033E47d90003D41EC34EcaEda94",
    "0x6Fac4D18c912343BF86fa7049364Dd4E424Ab9C0",
]
ABANDON_ABOUT_ETH_PRIVATE = "1ab42cc412b618bdea3a599e3c9bae199ebf030895b039e9db1e30dafb12b727"

ZERO_ENTROPY_MNEMONIC = " ".join(["abandon"] * 23 + ["art"])

entropies = st.binary(min_size=32, max_size=32)


def counter_random_bytes() -> Callable[[int], bytes]:
    """A deterministic `random_bytes`, as a simulation would inject."""
    state = [0]

    def random_bytes(size: int) -> bytes:
        state[0] += 1
        return bytes((state[0] + offset) % 256 for offset in range(size))

    return random_bytes


@pytest.fixture(scope="module")
def abandon_vault() -> GeneratedVault:
    return generate_vault_from_mnemonic(ABANDON_ABOUT, PASSWORD, parameters=CHEAP)


def public_key_points(private_key: bytes) -> tuple[bytes, bytes]:
    """(compressed, uncompressed) secp256k1 public key, by `cryptography` rather than bip_utils."""
    key = ec.derive_private_key(int.from_bytes(private_key, "big"), ec.SECP256K1())
    public = key.public_key()
    return (
        public.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
        ),
        public.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        ),
    )


def address_of_private_key(currency: str, private_key: bytes) -> str:
    compressed, uncompressed = public_key_points(private_key)
    if currency == "BTC":
        return str(P2WPKHAddrEncoder.EncodeKey(compressed, hrp="bc", wit_ver=0))
    return str(EthAddrEncoder.EncodeKey(uncompressed))


# Known vectors.


def test_bip84_vector_gives_the_account_key_and_receive_addresses(
    abandon_vault: GeneratedVault,
) -> None:
    assert abandon_vault.public.bitcoin_account_key == ABANDON_ABOUT_ZPUB
    for index, expected in enumerate(ABANDON_ABOUT_BTC):
        assert deposit_address(abandon_vault.public, "BTC", index) == expected


def test_same_mnemonic_on_bip44_ethereum_path(abandon_vault: GeneratedVault) -> None:
    for index, expected in enumerate(ABANDON_ABOUT_ETH):
        assert deposit_address(abandon_vault.public, "ETH", index) == expected
    # USDT is an ERC-20 token: it is received on the vault's Ethereum address.
    assert deposit_address(abandon_vault.public, "USDT") == ABANDON_ABOUT_ETH[0]
    assert chain_of_currency("USDT") == "ETH"


def test_signer_private_keys_match_the_published_vectors(abandon_vault: GeneratedVault) -> None:
    signer = open_vault(abandon_vault.sealed, abandon_vault.vault_uuid, PASSWORD)
    assert WifEncoder.Encode(signer.private_key("BTC", 0)) == ABANDON_ABOUT_BTC_WIF
    assert signer.private_key("ETH", 0).hex() == ABANDON_ABOUT_ETH_PRIVATE


def test_entropy_gives_the_bip39_mnemonic_of_24_words() -> None:
    from_entropy = generate_vault(PASSWORD, entropy=bytes(32), parameters=CHEAP)
    from_words = generate_vault_from_mnemonic(ZERO_ENTROPY_MNEMONIC, PASSWORD, parameters=CHEAP)
    assert from_entropy.public == from_words.public
    assert from_entropy.vault_uuid != from_words.vault_uuid  # ids are drawn, not derived


def test_mnemonic_spelling_is_normalised() -> None:
    loose = "  " + ABANDON_ABOUT.upper().replace(" ", " \t ") + "\n"
    vault = generate_vault_from_mnemonic(loose, PASSWORD, parameters=CHEAP)
    assert deposit_address(vault.public, "BTC") == ABANDON_ABOUT_BTC[0]


# Sealing and opening.


def test_round_trip_through_plain_dicts_opens_with_working_keys() -> None:
    vault = generate_vault(PASSWORD, parameters=CHEAP)
    sealed_document = json.loads(json.dumps(vault.sealed.to_dict()))
    public_document = json.loads(json.dumps(vault.public.to_dict()))
    assert all(isinstance(value, str | int) for value in sealed_document.values())
    assert all(isinstance(value, str) for value in public_document.values())
    sealed = SealedSecret.from_dict(sealed_document)
    public = VaultPublic.from_dict(public_document)
    assert sealed == vault.sealed
    assert public == vault.public

    signer = open_vault(sealed, vault.vault_uuid, PASSWORD)
    assert signer.public == public
    for currency in ("BTC", "ETH", "USDT"):
        for index in (0, 1, 7, 2**31 - 1):
            private_key = signer.private_key(currency, index)
            assert len(private_key) == 32
            assert address_of_private_key(currency, private_key) == deposit_address(
                public, currency, index
            )


def test_vault_uuid_is_32_lower_case_hex_digits_and_unique() -> None:
    uuids = {generate_vault(PASSWORD, parameters=CHEAP).vault_uuid for _ in range(5)}
    assert len(uuids) == 5
    assert all(len(uuid) == 32 and uuid == uuid.lower() and int(uuid, 16) >= 0 for uuid in uuids)


def test_default_parameters_are_argon2id_t3_64_mib_p1() -> None:
    vault = generate_vault(PASSWORD)
    document = vault.sealed.to_dict()
    assert document["key_derivation"] == "argon2id"
    assert document["cipher"] == "aes-256-gcm"
    assert (document["time_cost"], document["memory_cost_kib"], document["parallelism"]) == (
        3,
        65_536,
        1,
    )
    assert len(bytes.fromhex(str(document["salt"]))) == 16
    assert len(bytes.fromhex(str(document["nonce"]))) == 12
    signer = open_vault(SealedSecret.from_dict(document), vault.vault_uuid, PASSWORD)
    assert signer.public == vault.public


def test_injected_randomness_makes_generation_reproducible() -> None:
    first = generate_vault(PASSWORD, parameters=CHEAP, random_bytes=counter_random_bytes())
    second = generate_vault(PASSWORD, parameters=CHEAP, random_bytes=counter_random_bytes())
    assert first == second


@pytest.mark.parametrize(
    "password", ["correct horse battery stapler", "", "x" * 2000, " " + PASSWORD]
)
def test_wrong_password_says_nothing_more(abandon_vault: GeneratedVault, password: str) -> None:
    with pytest.raises(WrongMasterPassword) as raised:
        open_vault(abandon_vault.sealed, abandon_vault.vault_uuid, password)
    assert str(raised.value) == "wrong master password"


def test_password_is_compared_after_nfc_normalisation() -> None:
    composed = "caf\u00e9 au lait"
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    vault = generate_vault(composed, parameters=CHEAP)
    assert open_vault(vault.sealed, vault.vault_uuid, decomposed).public == vault.public


def flip_first_bit(text: str) -> str:
    """Hex text with the first bit of its first byte flipped."""
    return f"{int(text[:2], 16) ^ 0x80:02x}{text[2:]}"


@pytest.mark.parametrize("field", ["ciphertext", "nonce", "salt"])
def test_tampered_sealed_bytes_do_not_open(abandon_vault: GeneratedVault, field: str) -> None:
    document = abandon_vault.sealed.to_dict()
    document[field] = flip_first_bit(str(document[field]))
    with pytest.raises(WrongMasterPassword):
        open_vault(SealedSecret.from_dict(document), abandon_vault.vault_uuid, PASSWORD)


def test_tampered_last_ciphertext_byte_does_not_open(abandon_vault: GeneratedVault) -> None:
    document = abandon_vault.sealed.to_dict()
    ciphertext = str(document["ciphertext"])
    document["ciphertext"] = ciphertext[:-2] + f"{int(ciphertext[-2:], 16) ^ 1:02x}"
    with pytest.raises(WrongMasterPassword):
        open_vault(SealedSecret.from_dict(document), abandon_vault.vault_uuid, PASSWORD)


def test_sealed_secret_of_another_vault_does_not_open(abandon_vault: GeneratedVault) -> None:
    uuid = abandon_vault.vault_uuid
    other_uuid = ("1" if uuid[0] == "0" else "0") + uuid[1:]
    with pytest.raises(WrongMasterPassword):
        open_vault(abandon_vault.sealed, other_uuid, PASSWORD)


def test_changed_cost_parameters_do_not_open(abandon_vault: GeneratedVault) -> None:
    document = abandon_vault.sealed.to_dict()
    document["time_cost"] = 2
    with pytest.raises(WrongMasterPassword):
        open_vault(SealedSecret.from_dict(document), abandon_vault.vault_uuid, PASSWORD)


@pytest.mark.parametrize("uuid", ["", "A" * 32, "0" * 31, "0" * 33, "g" * 32])
def test_malformed_vault_uuid_is_refused(abandon_vault: GeneratedVault, uuid: str) -> None:
    with pytest.raises(InvalidVaultData):
        open_vault(abandon_vault.sealed, uuid, PASSWORD)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("cipher", "aes-128-gcm"),
        ("key_derivation", "scrypt"),
        ("time_cost", True),
        ("time_cost", "3"),
        ("time_cost", 0),
        ("memory_cost_kib", 2**40),  # a stored record must not make us allocate a terabyte
        ("parallelism", 99),
        ("salt", "00" * 15),
        ("salt", "ZZ" * 16),
        ("nonce", "AB" * 12),  # lower-case hex only: one spelling per value
        ("nonce", " " + "00" * 12),
        ("ciphertext", "00" * 16),
        ("ciphertext", "00" * 100_000),
    ],
)
def test_malformed_sealed_documents_are_refused(
    abandon_vault: GeneratedVault, field: str, value: object
) -> None:
    document: dict[str, object] = dict(abandon_vault.sealed.to_dict())
    document[field] = value
    with pytest.raises(InvalidVaultData):
        SealedSecret.from_dict(document)


def test_sealed_documents_with_missing_or_extra_fields_are_refused(
    abandon_vault: GeneratedVault,
) -> None:
    document: dict[str, object] = dict(abandon_vault.sealed.to_dict())
    with pytest.raises(InvalidVaultData):
        SealedSecret.from_dict({**document, "mnemonic": "x"})
    del document["nonce"]
    with pytest.raises(InvalidVaultData):
        SealedSecret.from_dict(document)


def test_public_keys_refuse_private_swapped_or_wrong_depth_keys(
    abandon_vault: GeneratedVault,
) -> None:
    good = abandon_vault.public.to_dict()
    seed = Bip39SeedGenerator(ABANDON_ABOUT, Bip39Languages.ENGLISH).Generate()
    account = Bip84.FromSeed(seed, Bip84Coins.BITCOIN).Purpose().Coin().Account(0)
    private_zprv = str(account.PrivateKey().ToExtended())
    address_level = str(
        account.Change(Bip44Changes.CHAIN_EXT).AddressIndex(0).PublicKey().ToExtended()
    )
    bad_documents: list[dict[str, object]] = [
        {**good, "BTC": private_zprv},
        {**good, "BTC": address_level},
        {"BTC": good["ETH"], "ETH": good["BTC"]},
        {**good, "BTC": good["BTC"][:-1] + ("a" if good["BTC"][-1] != "a" else "b")},
        {**good, "ETH": "x" * 1000},
        {**good, "ETH": 7},
        {"BTC": good["BTC"]},
        {**good, "TRON": good["ETH"]},
    ]
    for document in bad_documents:
        with pytest.raises(InvalidVaultData):
            VaultPublic.from_dict(document)


# Nothing secret in any repr.


def test_no_repr_or_str_shows_a_secret(abandon_vault: GeneratedVault) -> None:
    seed_hex = Bip39SeedGenerator(ABANDON_ABOUT, Bip39Languages.ENGLISH).Generate().hex()
    signer = open_vault(abandon_vault.sealed, abandon_vault.vault_uuid, PASSWORD)
    private_hex = signer.private_key("ETH").hex()
    shown: list[object] = [
        abandon_vault,
        abandon_vault.public,
        abandon_vault.sealed,
        abandon_vault.sealed.parameters,
        abandon_vault.sealed.to_dict(),
        abandon_vault.public.to_dict(),
        signer,
    ]
    texts = [text for item in shown for text in (repr(item), str(item))]
    for error in (WrongMasterPassword(), InvalidMnemonic("x")):
        texts += [repr(error), str(error)]
    for text in texts:
        lowered = text.lower()
        for secret in ("abandon", "about", seed_hex, private_hex, PASSWORD.lower()):
            assert secret not in lowered


def test_no_repr_shows_the_words_of_a_random_mnemonic() -> None:
    entropy = bytes(range(32))
    words = str(Bip39MnemonicGenerator(Bip39Languages.ENGLISH).FromEntropy(entropy).ToStr())
    vault = generate_vault(PASSWORD, entropy=entropy, parameters=CHEAP)
    signer = open_vault(vault.sealed, vault.vault_uuid, PASSWORD)
    for item in (vault, vault.public, vault.sealed, signer):
        text = repr(item).lower()
        assert words not in text
        # Long words only: a three-letter word may turn up inside base58 by chance.
        assert not [word for word in words.split() if len(word) >= 5 and word in text]


def test_signer_is_never_pickled_or_copied(abandon_vault: GeneratedVault) -> None:
    signer = open_vault(abandon_vault.sealed, abandon_vault.vault_uuid, PASSWORD)
    with pytest.raises(TypeError):
        pickle.dumps(signer)
    with pytest.raises(TypeError):
        copy.copy(signer)
    assert repr(signer) == f"VaultSigner(vault_uuid={abandon_vault.vault_uuid!r})"
    assert isinstance(signer, VaultSigner)


# Refusals.


@pytest.mark.parametrize("currency", ["USD", "EUR"])
def test_fiat_has_no_deposit_address(abandon_vault: GeneratedVault, currency: str) -> None:
    with pytest.raises(UnsupportedCurrency, match="fiat"):
        deposit_address(abandon_vault.public, currency)


@pytest.mark.parametrize("currency", ["XRP", "btc", "", "TRON" * 100])
def test_unknown_currency_has_no_deposit_address(
    abandon_vault: GeneratedVault, currency: str
) -> None:
    with pytest.raises(UnsupportedCurrency) as raised:
        deposit_address(abandon_vault.public, currency)
    assert len(str(raised.value)) < 80
    signer = open_vault(abandon_vault.sealed, abandon_vault.vault_uuid, PASSWORD)
    with pytest.raises(UnsupportedCurrency):
        signer.private_key(currency)


@pytest.mark.parametrize("index", [-1, 2**31])
def test_hardened_or_negative_index_is_refused(abandon_vault: GeneratedVault, index: int) -> None:
    with pytest.raises(ValueError, match="index"):
        deposit_address(abandon_vault.public, "BTC", index)


@pytest.mark.parametrize(
    "mnemonic",
    [
        " ".join(["abandon"] * 12),  # bad checksum
        " ".join(["abandon"] * 10 + ["about"]),  # 11 words
        " ".join(["abandon"] * 11 + ["zzzzz"]),  # not a BIP39 word
        " ".join(["abandon"] * 11 + ["about"] * 200),  # too long
        "",
    ],
)
def test_invalid_mnemonics_are_refused(mnemonic: str) -> None:
    with pytest.raises(InvalidMnemonic) as raised:
        generate_vault_from_mnemonic(mnemonic, PASSWORD, parameters=CHEAP)
    assert "abandon" not in str(raised.value)


@pytest.mark.parametrize("password", ["", "x" * 1025])
def test_unusable_master_passwords_are_refused(password: str) -> None:
    with pytest.raises(InvalidMasterPassword):
        generate_vault(password, parameters=CHEAP)


def test_entropy_must_be_32_bytes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        generate_vault(PASSWORD, entropy=bytes(16), parameters=CHEAP)


@pytest.mark.parametrize(
    "arguments",
    [
        {"time_cost": 0},
        {"time_cost": 11},
        {"memory_cost_kib": 7},
        {"memory_cost_kib": 8, "parallelism": 2},
        {"memory_cost_kib": 2**21},
        {"parallelism": 0},
    ],
)
def test_argon2_parameters_have_limits(arguments: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        Argon2Parameters(**arguments)


def test_errors_belong_to_the_identity_hierarchy() -> None:
    for error_type in (
        WrongMasterPassword,
        InvalidMasterPassword,
        InvalidMnemonic,
        UnsupportedCurrency,
        InvalidVaultData,
    ):
        assert issubclass(error_type, IdentityError)
        assert issubclass(error_type, StrongroomError)


# Address validation.


def flip_character(address: str, position: int, alphabet: str) -> str:
    """`address` with the character at `position` replaced by the next one of `alphabet`."""
    replacement = alphabet[(alphabet.index(address[position]) + 1) % len(alphabet)]
    return address[:position] + replacement + address[position + 1 :]


def flip_case(address: str, position: int) -> str:
    return address[:position] + address[position].swapcase() + address[position + 1 :]


BECH32_ALPHABET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
BASE58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


@pytest.mark.parametrize(
    "address",
    [
        # BIP173, mainnet segwit version 0 (upper case is valid too).
        "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
        "bc1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3qccfmv3",
        # BIP350, mainnet taproot (version 1, 32 bytes, bech32m).
        "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
        # Base58check P2PKH and P2SH.
        "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
        "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
        "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",
        *ABANDON_ABOUT_BTC,
    ],
)
def test_valid_bitcoin_addresses(address: str) -> None:
    assert validate_address("BTC", address) == (True, "")


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        # BIP350 invalid vectors.
        ("tc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq5zuyut", "mainnet"),
        ("bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd", "checksum"),
        ("BC1S0XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ54WELL", "checksum"),
        ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh", "checksum"),
        ("bc1p38j9r5y49hruaue7wxjce0updqjuyyx0kh56v8s25huc6995vvpql3jow4", "alphabet"),
        ("BC130XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ7ZWS8R", "above 16"),
        ("bc1pw5dgrnzv", "program length 1"),
        (
            "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v8n0nx0muaewav253zgeav",
            "program length 41",
        ),
        ("BC1QR508D6QEJXTDG4Y5R3ZARVARYV98GJ9P", "version 0 program length 16"),
        ("bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v07qwwzcrf", "padding"),
        ("bc1gmk9yu", "no witness version"),
        # BIP173 invalid vectors that still apply under BIP350.
        ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5", "checksum"),
        ("tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7", "mainnet"),
        # BIP173 valid, but version 1 with bech32 is invalid since BIP350.
        (
            "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7k7grplx",
            "checksum",
        ),
        # BIP350 valid encodings that this custody refuses: no spending rules, anyone can spend.
        ("BC1SW50QGDZ25J", "witness version 16 has no spending rules"),
        ("bc1zw508d6qejxtdg4y5r3zarvaryvaxxpcs", "witness version 2 has no spending rules"),
        (
            "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kt5nd6y",
            "taproot needs 32 bytes",
        ),
        ("bc1qW508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", "mixed upper and lower case"),
        ("bc1q" + "q" * 90, "longer than 90"),
        # Base58check.
        ("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb", "checksum"),
        ("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfN0", "'0' is not in the base58 alphabet"),
        ("mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn", "mainnet"),  # testnet P2PKH
        ("TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t", "mainnet"),  # a TRON address
        ("", "empty"),
        (" bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu", "whitespace"),
        ("1" * 101, "longer than 100"),
    ],
)
def test_invalid_bitcoin_addresses_say_why(address: str, reason: str) -> None:
    valid, why = validate_address("BTC", address)
    assert not valid
    assert reason in why


@pytest.mark.parametrize(
    "address",
    [
        # EIP-55 examples: mixed case with the checksum, and single case without one.
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
        "0x52908400098527886E0F7030069857D2E4169EE7",
        "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
        "0xde709f2102306220921060314715629080e2fb77",
        "0x27b1fdb04752bbc536007a920d24acb045561c26",
        "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
        *ABANDON_ABOUT_ETH,
    ],
)
def test_valid_ethereum_addresses(address: str) -> None:
    assert validate_address("ETH", address) == (True, "")


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "EIP-55"),  # one case flipped
        ("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAee", "EIP-55"),  # one digit changed
        ("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAe", "39 characters"),
        ("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed0", "41 characters"),
        ("0X5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "starts with 0x"),
        ("5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "starts with 0x"),
        ("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeg", "not hexadecimal"),
    ],
)
def test_invalid_ethereum_addresses_say_why(address: str, reason: str) -> None:
    valid, why = validate_address("ETH", address)
    assert not valid
    assert reason in why


def test_tron_addresses(abandon_vault: GeneratedVault) -> None:
    usdt_contract = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
    assert validate_address("TRON", usdt_contract) == (True, "")
    # A TRON address for a key of the vault: same secp256k1 key, 0x41 and base58check.
    signer = open_vault(abandon_vault.sealed, abandon_vault.vault_uuid, PASSWORD)
    _, uncompressed = public_key_points(signer.private_key("ETH"))
    generated = str(TrxAddrEncoder.EncodeKey(uncompressed))
    assert validate_address("TRON", generated) == (True, "")
    for address in (usdt_contract, generated):
        for position in range(1, len(address)):
            valid, why = validate_address(
                "TRON", flip_character(address, position, BASE58_ALPHABET)
            )
            assert not valid
            assert why
    assert "starts with T" in validate_address("TRON", "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa")[1]
    # Good base58check, wrong content: version byte 0x42, and 22 bytes after 0x41.
    wrong_version = str(Base58Encoder.CheckEncode(b"\x42" + bytes(20)))
    assert wrong_version.startswith("T")
    assert validate_address("TRON", wrong_version) == (False, "version byte 0x42, not 0x41")
    valid, why = validate_address("TRON", "T" + str(Base58Encoder.CheckEncode(b"\x41" + bytes(21))))
    assert not valid
    assert why


def test_unknown_chain_is_not_valid() -> None:
    assert validate_address("XRP", "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh") == (
        False,
        "unsupported chain 'XRP'",
    )


@settings(deadline=None)
@given(entropy=entropies, index=st.integers(min_value=0, max_value=2**31 - 1))
def test_addresses_are_deterministic_and_valid(entropy: bytes, index: int) -> None:
    first = generate_vault(PASSWORD, entropy=entropy, parameters=CHEAP)
    second = generate_vault("another password", entropy=entropy, parameters=CHEAP)
    assert first.public == second.public
    assert first.vault_uuid != second.vault_uuid
    for currency, chain in (("BTC", "BTC"), ("ETH", "ETH"), ("USDT", "ETH")):
        address = deposit_address(first.public, currency, index)
        assert address == deposit_address(second.public, currency, index)
        assert validate_address(chain, address) == (True, "")


@settings(deadline=None)
@given(entropy=entropies, data=st.data())
def test_one_changed_character_makes_an_address_invalid(
    entropy: bytes, data: st.DataObject
) -> None:
    public = generate_vault(PASSWORD, entropy=entropy, parameters=CHEAP).public
    bitcoin = deposit_address(public, "BTC")
    # Bech32's BCH code detects any single substitution, anywhere after "bc1".
    position = data.draw(st.integers(min_value=3, max_value=len(bitcoin) - 1))
    valid, why = validate_address("BTC", flip_character(bitcoin, position, BECH32_ALPHABET))
    assert not valid
    assert why

    ethereum = deposit_address(public, "ETH")
    letters = [
        position for position, character in enumerate(ethereum) if character in "abcdefABCDEF"
    ]
    digits = ethereum[2:]
    if letters and digits not in (digits.lower(), digits.upper()):
        position = data.draw(st.sampled_from(letters))
        valid, why = validate_address("ETH", flip_case(ethereum, position))
        assert not valid
        assert "EIP-55" in why


def test_generated_private_keys_prove_the_addresses() -> None:
    vault = generate_vault(PASSWORD, parameters=CHEAP)
    signer = open_vault(vault.sealed, vault.vault_uuid, PASSWORD)
    for currency in ("BTC", "ETH"):
        address = address_of_private_key(currency, signer.private_key(currency, 3))
        assert address == deposit_address(vault.public, currency, 3)
        assert address != deposit_address(vault.public, currency, 4)


# RSA for registration.


def test_rsa_key_pair_is_pem_spki_and_pkcs8() -> None:
    public_pem, private_pem = generate_rsa_key_pair()
    assert public_pem.startswith("-----BEGIN PUBLIC KEY-----\n")
    assert private_pem.startswith("-----BEGIN PRIVATE KEY-----\n")
    public_key = serialization.load_pem_public_key(public_pem.encode())
    private_key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    assert isinstance(public_key, rsa.RSAPublicKey)
    assert isinstance(private_key, rsa.RSAPrivateKey)
    assert public_key.key_size == 2048
    assert private_key.public_key().public_numbers() == public_key.public_numbers()
    assert public_key.public_numbers().e == 65537
    assert generate_rsa_key_pair()[0] != public_pem


@pytest.mark.parametrize("bits", [1024, 2047, 8192])
def test_rsa_key_size_is_limited(bits: int) -> None:
    with pytest.raises(ValueError):
        generate_rsa_key_pair(bits)
