"""What went wrong with the OS keyring, in plain words, and how to fix it on this platform.

keyring raises a handful of exception types (and some backends leak their own: D-Bus errors from
SecretStorage or jeepney, ``pywintypes.error`` from the Windows Credential Locker, macOS Security framework
status codes inside a generic ``KeyringError``). `diagnose` sorts any of them into one `KeyringProblem`
kind, and `fix_for` gives the fix for that kind on this platform. keys.py puts both in its `KeyStoreError`
(what the proxy's 503, the control API and ``sidecar keys`` say); ``sidecar doctor`` prints them in full.
No exception text is quoted: backend messages can carry item attributes, and the kind says enough.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from typing import Any

import keyring.errors

NO_BACKEND = "no_backend"
LOCKED = "locked"
CANNOT_OPEN = "cannot_open"
STORES_NOTHING = "stores_nothing"
FAILED = "failed"

_SUMMARY = {
    NO_BACKEND: "no usable keyring backend was found",
    LOCKED: "the keyring is locked, or access to it was denied",
    CANNOT_OPEN: "the keyring could not be opened (no unlock prompt could be shown?)",
    STORES_NOTHING: "the selected keyring backend stores nothing (keyring.backends.null)",
    FAILED: "the keyring backend failed",
}

_MAC_NO_PROMPT = "-25308"
"""errSecInteractionNotAllowed: the keychain is locked and no password prompt can be shown (an SSH session)."""


@dataclass(frozen=True, slots=True)
class KeyringProblem:
    kind: str
    """One of NO_BACKEND, LOCKED, CANNOT_OPEN, STORES_NOTHING, FAILED."""
    backend: str
    """The backend's class path, e.g. ``keyring.backends.SecretService.Keyring``."""
    detail: str = ""
    """A precise, quotable cause when one is known (an exception type name, a macOS status code)."""

    @property
    def summary(self) -> str:
        text = _SUMMARY[self.kind]
        return f"{text} ({self.detail})" if self.detail else text

    def message(self, system: str | None = None) -> str:
        """One paragraph: what is wrong, the fix on this platform, and where to look further."""
        return (f"keyring ({self.backend}): {self.summary}. {fix_for(self.kind, system)} "
                "`sidecar doctor` shows what keyring sees.")


def backend_name(backend: Any = None) -> str:
    backend = keyring.get_keyring() if backend is None else backend
    return f"{type(backend).__module__}.{type(backend).__name__}"


def backend_problem(backend: Any = None) -> KeyringProblem | None:
    """A problem visible from the selected backend alone, before any call: none, a null one, an empty chain."""
    from keyring.backends import chainer, fail, null

    backend = keyring.get_keyring() if backend is None else backend
    name = backend_name(backend)
    if isinstance(backend, fail.Keyring) or (isinstance(backend, chainer.ChainerBackend) and not backend.backends):
        return KeyringProblem(NO_BACKEND, name)
    if isinstance(backend, null.Keyring):
        return KeyringProblem(STORES_NOTHING, name)
    return None


def diagnose(exc: BaseException, backend: Any = None) -> KeyringProblem:
    """Sort any exception a keyring call raised into a problem kind."""
    name = backend_name(backend)
    if isinstance(exc, keyring.errors.NoKeyringError):
        return KeyringProblem(NO_BACKEND, name)
    if isinstance(exc, keyring.errors.KeyringLocked):
        return KeyringProblem(LOCKED, name)
    if isinstance(exc, keyring.errors.InitError):
        return KeyringProblem(CANNOT_OPEN, name)
    if _MAC_NO_PROMPT in str(exc):  # macOS reports it as a generic KeyringError carrying the status code
        return KeyringProblem(LOCKED, name, f"macOS status {_MAC_NO_PROMPT}, errSecInteractionNotAllowed")
    module = type(exc).__module__.split(".")[0]
    if module in ("secretstorage", "jeepney", "dbus"):  # the Secret Service/KWallet daemon itself
        if "Locked" in type(exc).__name__:
            return KeyringProblem(LOCKED, name)
        return KeyringProblem(CANNOT_OPEN, name, f"{module} {type(exc).__name__}")
    return KeyringProblem(FAILED, name, type(exc).__name__)


def fix_for(kind: str, system: str | None = None) -> str:
    """The fix for ``kind`` on ``system`` (``platform.system()`` by default)."""
    system = system or platform.system()
    fixes = _FIXES.get(system, _FIXES["other"])
    return fixes.get(kind) or _FIXES["other"][kind]


_ENV = ("To pick a backend explicitly, set PYTHON_KEYRING_BACKEND (e.g. keyring.backends.SecretService.Keyring) "
        "or a keyringrc.cfg (`python -m keyring diagnose` shows where).")

_FIXES: dict[str, dict[str, str]] = {
    "Linux": {
        NO_BACKEND: ("Fix: run a Secret Service in your session: GNOME Keyring (`sudo apt install gnome-keyring`), "
                     "KDE KWallet (with the system python3-dbus package), or KeePassXC with its Secret Service "
                     "integration on. Headless (SSH, CI, containers): `dbus-run-session -- sh -c 'printf %s "
                     "\"$PASSWORD\" | gnome-keyring-daemon --unlock --components=secrets; sidecar serve'`. " + _ENV),
        LOCKED: ("Fix: unlock the login keyring: log in to the desktop session, or unlock it in Seahorse "
                 "(Passwords and Keys) or KWalletManager. Headless: `printf %s \"$PASSWORD\" | gnome-keyring-daemon "
                 "--replace --unlock --components=secrets` with that keyring's password (a wrong one keeps it locked)."),
        CANNOT_OPEN: ("Fix: the daemon wanted to show an unlock or create-keyring prompt and could not (no display, "
                      "or the prompt was dismissed). Unlock it from the desktop session; headless, start "
                      "gnome-keyring-daemon with `--unlock` and the password on stdin; for KWallet, open "
                      "KWalletManager and check the wallet exists and is enabled."),
    },
    "Darwin": {
        NO_BACKEND: ("Fix: the macOS Keychain backend is not available to this Python (a sandboxed or "
                     "non-framework build?). Check `python -m keyring --list-backends` and unset "
                     "PYTHON_KEYRING_BACKEND if it points elsewhere."),
        LOCKED: ("Fix: unlock the login keychain: `security unlock-keychain ~/Library/Keychains/login.keychain-db`, "
                 "or unlock it in Keychain Access. Over SSH no password prompt can appear, so unlock it first. "
                 "If you pressed Deny on the access prompt, run the command again and choose Always Allow."),
        CANNOT_OPEN: ("Fix: open Keychain Access, check that the login keychain exists and is the default, "
                      "then unlock it (`security unlock-keychain`)."),
    },
    "Windows": {
        NO_BACKEND: ("Fix: the Windows Credential Locker backend needs pywin32-ctypes, which keyring installs; "
                     "reinstall with `pip install --force-reinstall keyring` and unset PYTHON_KEYRING_BACKEND if it "
                     "names another backend."),
        LOCKED: ("Fix: run the sidecar as the logged-in user: Credential Manager refuses service accounts and "
                 "sessions without a loaded user profile (some SSH or scheduled-task setups). Check Control "
                 "Panel > Credential Manager > Windows Credentials."),
        CANNOT_OPEN: ("Fix: Credential Manager could not be opened for this user; sign in interactively once, "
                      "then check Control Panel > Credential Manager."),
    },
    "other": {
        NO_BACKEND: "Fix: install a keyring backend for this system (see keyring's documentation). " + _ENV,
        LOCKED: "Fix: unlock the system keyring from your desktop session, then retry.",
        CANNOT_OPEN: "Fix: unlock or create the system keyring from your desktop session, then retry.",
        STORES_NOTHING: ("Fix: PYTHON_KEYRING_BACKEND or keyringrc selects the null backend, which keeps no "
                         "secrets; unset it to use the system keyring."),
        FAILED: ("Fix: the backend raised an unexpected error; check it with `python -m keyring --list-backends` "
                 "and `python -m keyring diagnose`, then retry. " + _ENV),
    },
}
