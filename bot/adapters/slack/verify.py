"""Request signature verification (HTTP mode): ``v0=HMAC-SHA256(signing_secret, "v0:{ts}:{body}")``,
timestamps more than 5 minutes off refused, digests compared in constant time — slack_sdk's
``SignatureVerifier`` — answered with 401 before authorization or any listener runs.

bolt's built-in middleware lets a malformed timestamp header escape as a ``ValueError`` (HTTP 500);
this one treats every malformed header as what it is, an unsigned request (401).
"""

from __future__ import annotations

from slack_bolt.middleware.request_verification.async_request_verification import AsyncRequestVerification
from slack_sdk.signature import SignatureVerifier

MAX_SKEW_S = 60 * 5


class StrictSignatureVerifier(SignatureVerifier):
    def is_valid(self, body: str | bytes, timestamp: str | None, signature: str | None) -> bool:
        if not timestamp or not signature or not timestamp.isascii() or not timestamp.isdigit():
            return False
        if not signature.startswith("v0="):
            return False
        return super().is_valid(body, timestamp, signature)


class SlackSignatureCheck(AsyncRequestVerification):
    """bolt's verification middleware with the strict verifier (skipped for Socket Mode envelopes)."""

    @property
    def verifier(self) -> SignatureVerifier:
        if self._verifier is None:
            self._verifier = StrictSignatureVerifier(signing_secret=self._signing_secret)
        return self._verifier
