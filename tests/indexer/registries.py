"""Registry documents (the `POST /admin/registry` JSON) for tests of the step-1 rules."""

from __future__ import annotations

from typing import Any

from tests.factories import PROVIDER, SELLER

#: A provider whose contract ended on 2022-12-31, long before any test's receipt date.
ENDED_PROVIDER = "0314409058"


def registry(provider_valid_to: str = "2099-12-31") -> dict[str, Any]:
    """The factories' seller (status 00) and provider, plus `ENDED_PROVIDER`."""
    return {
        "taxpayers": [{"tax_id": SELLER, "name": "Công ty Thử nghiệm", "status": "00"}],
        "providers": [
            {
                "provider_id": PROVIDER,
                "name": "T-VAN",
                "valid_from": "2021-07-01",
                "valid_to": provider_valid_to,
            },
            {
                "provider_id": ENDED_PROVIDER,
                "name": "old T-VAN",
                "valid_from": "2021-07-01",
                "valid_to": "2022-12-31",
            },
        ],
    }
