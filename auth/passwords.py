"""Password hashing with argon2id (RFC 9106), and the few rules a new password must meet.

argon2id is memory-hard: each guess costs the attacker ``argon2_memory_kib`` of RAM, which is what
makes a stolen hash expensive to brute-force on GPUs (RFC 9106 §1). Verification always runs exactly
once per login attempt, against a dummy hash when the name is unknown, so the response time does not
reveal whether an account exists.
"""
from __future__ import annotations

import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from settings import AuthConfig

# NIST SP 800-63B §5.1.1.2 asks for at least 8 characters; staff accounts that reach geocoded
# health data get a stricter floor. The ceiling only bounds the hashing work per request.
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 256
# Generated passwords: 4 groups of 5 from 31 unambiguous characters, about 99 bits.
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


class WeakPassword(ValueError):
    """A new password does not meet the rules; the message says which."""


class Passwords:
    def __init__(self, cfg: AuthConfig):
        self._hasher = PasswordHasher(time_cost=cfg.argon2_time_cost, memory_cost=cfg.argon2_memory_kib,
                                      parallelism=cfg.argon2_parallelism, hash_len=32, salt_len=16, type=Type.ID)
        # Same parameters as real hashes, so verifying against it takes as long as a real check.
        self._dummy = self._hasher.hash(secrets.token_urlsafe(24))
        self.verifications = 0  # counted so a test can see that every attempt costs one verification

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        """True only if ``stored_hash`` exists and matches; always one argon2 verification."""
        self.verifications += 1
        try:
            matched = self._hasher.verify(stored_hash or self._dummy, password[:MAX_PASSWORD_LENGTH])
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return bool(matched) and stored_hash is not None

    def needs_rehash(self, stored_hash: str) -> bool:
        """The hash was made with older (weaker) parameters than configured now."""
        try:
            return self._hasher.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return True


def check_new_password(password: str, username: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPassword(f"a password has at most {MAX_PASSWORD_LENGTH} characters")
    if username and username.lower() in password.lower():
        raise WeakPassword("a password must not contain the user name")
    if len(set(password)) < 4:
        raise WeakPassword("a password needs more than three different characters")


def generate_password() -> str:
    return "-".join("".join(secrets.choice(_ALPHABET) for _ in range(5)) for _ in range(4))
