"""The budget settings: key budgets per role, the old all-roles variables, the per-key share
of an invoice's day (docs/access.md)."""

from __future__ import annotations

from verify.settings import ROLE_KEY_BUDGETS, KeyBudget, Settings


def test_defaults_per_role() -> None:
    limits = Settings.from_env({}).limits
    assert {role: limits.key_budget(role) for role in ROLE_KEY_BUDGETS} == {
        "intake": KeyBudget(3000, 2000), "verify": KeyBudget(1200, 1000),
        "audit": KeyBudget(3000, 5000), "admin": KeyBudget(6000, 5000)}
    assert (limits.invoice_per_day, limits.invoice_per_key_per_day) == (100, 25)


def test_all_roles_at_once_and_a_role_of_its_own() -> None:
    limits = Settings.from_env({"INVOICE_RATE_KEY_BURST": "7",
                                "INVOICE_RATE_KEY_PER_MINUTE": "60",
                                "INVOICE_RATE_INTAKE_BURST": "9"}).limits
    assert limits.key_budget("intake") == KeyBudget(60, 9)
    assert limits.key_budget("verify") == limits.key_budget("admin") == KeyBudget(60, 7)


def test_the_key_share_follows_the_invoice_day() -> None:
    def share(per_day: str, **env: str) -> int:
        return Settings.from_env({"INVOICE_RATE_INVOICE_PER_DAY": per_day,
                                  **env}).limits.invoice_per_key_per_day

    assert (share("1000000"), share("400"), share("100"), share("40"), share("3")) == (
        250_000, 100, 25, 25, 3)
    assert share("100", INVOICE_RATE_INVOICE_PER_KEY_PER_DAY="5") == 5
