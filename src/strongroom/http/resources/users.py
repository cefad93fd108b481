"""Users (seed 000, 001 "User Information"): registration by a partner, login, TOTP 2FA,
the master password, profiles and deposit keys; and the partner's own record (/user/...).

Identity errors become problem details here, in one table (`PROBLEMS`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Annotated, Any, ClassVar

import falcon
import falcon.asgi
import msgspec

from strongroom.actors.messages import AccountCode
from strongroom.http.body import read_json
from strongroom.http.context import Services, principal
from strongroom.http.problems import Problem
from strongroom.http.representations import balances_json, deposit_json, iso
from strongroom.identity import errors, users, vault_keys
from strongroom.money import format_minor, format_units
from strongroom.persistence import repositories

Text = Annotated[str, msgspec.Meta(min_length=1, max_length=320)]
Secret = Annotated[str, msgspec.Meta(max_length=1_024)]
Otp = Annotated[str, msgspec.Meta(max_length=16)]
ExternalId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
BASIS_POINT_PERCENT = Decimal("0.01")  # one basis point in percent
RECENT_TRANSACTIONS = 20

# identity error -> (status, field the 422 names, or None)
PROBLEMS: dict[type[errors.IdentityError], tuple[int, str | None]] = {
    errors.InvalidEmail: (422, "email"),
    errors.WeakPassword: (422, "password"),
    errors.EmailTaken: (409, None),
    errors.ExternalIdTaken: (409, None),
    errors.InvalidCredentials: (401, None),
    errors.OtpRequired: (401, None),
    errors.OtpRejected: (401, None),
    errors.WrongState: (409, None),
}


@asynccontextmanager
async def identity_problems(password_field: str = "password") -> AsyncIterator[None]:
    try:
        yield
    except errors.Throttled as error:
        raise Problem(
            429,
            "too_many_attempts",
            str(error),
            headers={"Retry-After": str(int(error.retry_after_s) + 1)},
        ) from None
    except errors.IdentityError as error:
        status, field = PROBLEMS.get(type(error), (400, None))
        if isinstance(error, errors.WeakPassword):
            field_errors = [{"field": password_field, "message": r} for r in error.reasons]
            raise Problem(422, error.code, str(error), errors=field_errors) from None
        if field is not None:
            raise Problem(
                status, error.code, str(error), errors=[{"field": field, "message": str(error)}]
            ) from None
        raise Problem(status, error.code, str(error)) from None


class RegisterIn(msgspec.Struct, forbid_unknown_fields=True):
    email: Text
    password: Secret
    external_id: ExternalId | None = None


class LoginIn(msgspec.Struct, forbid_unknown_fields=True):
    email: Text
    password: Secret
    otp: Otp | None = None


class OtpIn(msgspec.Struct, forbid_unknown_fields=True):
    otp: Otp


class MasterPasswordIn(msgspec.Struct, forbid_unknown_fields=True):
    master_password: Secret
    otp: Otp


def user_json(user: users.User) -> dict[str, Any]:
    return {
        "uid": user.uid,
        "email": user.email,
        "external_id": user.external_id,
        "vault_status": user.vault_status,
        "main_vault_uuid": user.main_vault_uuid,
        "2fa_enabled": user.totp_enabled,
        "wallet_id": user.wallet_id,
        "created": iso(user.created_at),
    }


class RegisterResource:
    scopes: ClassVar[dict[str, str]] = {"POST": "write"}

    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        partner = principal(req).partner_id
        body = await read_json(req, RegisterIn)
        async with identity_problems():
            user = await self.services.users.register(
                partner, body.email, body.password, body.external_id
            )
        self.services.wallet_owners[user.wallet_id] = partner
        resp.status = falcon.HTTP_201
        resp.media = {**user_json(user), "rsa_public_key": user.rsa_public_key}


class LoginResource:
    public = True

    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body = await read_json(req, LoginIn)
        async with identity_problems():
            token = await self.services.users.login(
                body.email, body.password, body.otp, req.remote_addr or "unknown"
            )
        resp.set_header("Cache-Control", "no-store")
        resp.media = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.services.users.tokens.lifetime_s,
        }


def user_id(req: falcon.asgi.Request) -> str:
    """The calling user (`AuthMiddleware` lets only users call `partners = False` routes)."""
    uid = principal(req).user_id
    assert uid is not None
    return uid


class TwoFactorSetupResource:
    users = True
    partners = False  # a user's own call

    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        async with identity_problems():
            resp.media = await self.services.users.setup_two_factor(user_id(req))
        resp.set_header("Cache-Control", "no-store")


class TwoFactorConfirmResource:
    users = True
    partners = False  # a user's own call

    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        uid = user_id(req)
        body = await read_json(req, OtpIn)
        async with identity_problems():
            await self.services.users.confirm_two_factor(uid, body.otp)
        resp.media = {"2fa_enabled": True}


class MasterPasswordResource:
    users = True
    partners = False  # a user's own call

    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        uid = user_id(req)
        body = await read_json(req, MasterPasswordIn)
        async with identity_problems("master_password"):
            await self.services.users.set_master_password(uid, body.master_password, body.otp)
        resp.status = falcon.HTTP_202
        resp.media = {"status": "accepted", "vault_status": users.GENERATING}


async def deposit_keys(services: Services, uid: str) -> list[dict[str, str]]:
    public = await services.users.vault_public(uid)
    if public is None:
        return []
    keys = []
    for code, currency in services.config.currencies.items():
        try:
            chain = vault_keys.chain_of_currency(code)
        except errors.UnsupportedCurrency:
            continue
        keys.append(
            {
                "currency": currency.code,
                "chain": chain,
                "address": vault_keys.deposit_address(public, code),
            }
        )
    return keys


class ProfileResource:
    users = True
    partners = False  # a user's own call
    basic = False

    def __init__(self, services: Services, *, basic: bool = False) -> None:
        self.services = services
        self.basic = basic

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        user = await self.services.users.user(user_id(req))
        assert user is not None
        profile = user_json(user)
        if not self.basic:
            pool = self.services.pool
            amounts = await repositories.member_balances(pool, [user.wallet_id])
            deposits = await repositories.recent_deposits(pool, user.wallet_id, RECENT_TRANSACTIONS)
            profile.update(
                rsa_public_key=user.rsa_public_key,
                wallets=[
                    {
                        "wallet_id": user.wallet_id,
                        "balances": balances_json(amounts[user.wallet_id], self.services.config),
                    }
                ],
                deposit_keys=await deposit_keys(self.services, user.uid),
                recent_transactions=[
                    {"transaction_type": "deposit", **deposit_json(deposit, self.services.config)}
                    for deposit in deposits
                ],
            )
        resp.media = profile


class DepositKeysResource:
    users = True
    partners = False  # a user's own call

    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        uid = user_id(req)
        user = await self.services.users.user(uid)
        assert user is not None
        if user.vault_status != users.READY:
            raise Problem(
                409, "vault_not_ready", f"the vault is {user.vault_status}: no deposit keys yet"
            )
        resp.media = await deposit_keys(self.services, uid)


class TenantResource:
    """GET /user/me/: the partner's own record (seed 001 "User Information")."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        caller = principal(req)
        master_wallet_id = await repositories.master_wallet(self.services.pool, caller.partner_id)
        self.services.wallet_owners[master_wallet_id] = caller.partner_id
        applications = await self.services.authority.applications(caller.partner_id)
        fees = self.services.config.fees
        webhook = await self.services.webhooks.setting(caller.partner_id)
        resp.media = {
            # A partner is named by its first application.
            "name": applications[0].name if applications else caller.partner_id,
            "partner_id": caller.partner_id,
            "transaction_fee": {
                "maker_percent": format_units(fees.maker_bps, BASIS_POINT_PERCENT),
                "taker_percent": format_units(fees.taker_bps, BASIS_POINT_PERCENT),
            },
            "is_fee_paid_by_user": True,
            "webhook_callback_url": None if webhook is None else webhook.callback_url,
            "webhook_secret_masked": None if webhook is None else webhook.secret_masked,
            "master_wallet_id": master_wallet_id,
        }


class FeesResource:
    """GET /user/fees/: fee revenue per currency, from the ledger's revenue accounts."""

    scopes: ClassVar[dict[str, str]] = {"GET": "admin"}

    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        revenue = await repositories.account_totals(
            self.services.pool, (AccountCode.REVENUE_FIAT, AccountCode.REVENUE_COIN)
        )
        currencies = self.services.config.currencies
        resp.media = {
            "fees": [
                {"currency": code, "amount": format_minor(revenue.get(code, 0), currency.decimals)}
                for code, currency in currencies.items()
            ]
        }
