"""An MQTT broker that pheoc starts itself when none is configured (``mqtt.mode: embedded``).

Preferred: a Mosquitto child process bound to 127.0.0.1 with a generated config in a work folder,
persistence on, so QoS 1 messages queued for the ingestor's persistent session survive a broker
restart (Mosquitto writes its database on a clean SIGTERM and every ``autosave_interval``).

Loopback is not a boundary: every local process can reach it. So the embedded broker, too, lets no
one in without a password and lets each identity do only its job (``mosquitto_config``,
``mosquitto_password_file``, ``mosquitto_acl``):

- two users with passwords made with ``secrets`` when the broker first starts, held only in this
  process's memory (never in config); Mosquitto's password file holds only their PBKDF2-SHA512
  hashes (mode 0600). ``ingest_login`` may only read under the topic prefix; ``publisher_login``
  (the demo simulator, tests, local devices) may only publish to the layout's topics and read
  nothing, so it cannot see case reports;
- ``allow_anonymous false``, so a process without the password gets CONNACK "not authorised" and
  cannot take over the ingestor's session by connecting with its client id;
- never root: when pheoc runs as root, Mosquitto is started as the unprivileged ``mosquitto`` user
  and its folder is handed to that user (``_BrokerAccount``).

Fallback when the binary is absent: amqtt in-process (an asyncio loop in a thread). amqtt speaks
MQTT 3.1.1 only and keeps sessions in memory, so clients must connect with v3.1.1 and a broker
restart loses what it held; it moved about 1,000 QoS 1 msg/s here, enough for the demo. It gets the
same two users and passwords (amqtt 0.12's password-file plugin, argon2 hashes): anonymous clients
and wrong passwords are refused. It enforces NO ACL: any client that logs in may publish and
subscribe anywhere, the publisher identity included. amqtt 0.12.1 has a topic ACL plugin, but any
topic plugin loses QoS 1 messages there (of 300 published and acknowledged, 150-190 reached the
subscriber, even with a plugin that allows everything; 300 of 300 without one), and losing data is
worse. It also runs inside pheoc's process, as pheoc's user, root included. Both are logged as a
warning at start; install Mosquitto.

Production runs its own Mosquitto with deploy/mosquitto.conf instead (``mqtt.mode: external``).
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ingest.topics import TopicLayout

log = logging.getLogger(__name__)

DEBIAN_MOSQUITTO = "/usr/sbin/mosquitto"  # Debian/Ubuntu install it outside a normal user's PATH
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 15.0  # a clean stop writes the persistence file; give it time on a loaded disk
# The ingestor acknowledges only after a DuckDB commit, so the broker must let a whole batch be in
# flight at once (Mosquitto's default of 20 would cap throughput at 20 messages per commit).
# MQTT v5 clients also cap it with Receive Maximum; 0 means "no broker-side cap".
MAX_INFLIGHT_MESSAGES = 0
# Messages held per offline persistent session. Mosquitto's default of 1000 would silently drop
# the rest of a longer outage; 1,000,000 readings is hours of a city's sensors at a few bytes each.
MAX_QUEUED_MESSAGES = 1_000_000
# Larger than ingest.max_payload_bytes (64 KiB) so an oversized payload still reaches the
# ingestor and is quarantined with a reason, yet bounded so one client cannot exhaust memory.
MESSAGE_SIZE_LIMIT = 1_048_576

# The two identities of the embedded broker. Fixed names: Mosquitto files a persistent session
# under its user name, so the ingestor's session finds its ACL again after a restart.
INGEST_USER = "pheoc-ingest"
PUBLISHER_USER = "pheoc-publisher"
# Reads the CAP warnings pheoc publishes (retained, under warnings.mqtt_topic) and nothing else: the
# login for the command centre's own displays and sirens on the embedded broker, and for tests.
WARNINGS_READER_USER = "pheoc-warnings-reader"
PASSWORD_BYTES = 32  # 256 random bits: no stretching needed, no guessing possible
# Mosquitto 2's password hash: "$7$" is PBKDF2-HMAC-SHA512 with a 12-byte salt and a 64-byte key,
# 101 iterations being mosquitto_passwd's default (src/password_mosq.h: SALT_LEN, PW_DEFAULT_ITERATIONS).
# A random 256-bit password gains nothing from more iterations; every CONNECT pays for them.
MOSQUITTO_PBKDF2_ID = 7
MOSQUITTO_SALT_BYTES = 12
MOSQUITTO_HASH_BYTES = 64
MOSQUITTO_PBKDF2_ITERATIONS = 101
# The unprivileged user Mosquitto itself switches to when started as root (mosquitto.conf(5),
# option "user"); the Debian package creates it, with /var/lib/mosquitto as its home.
BROKER_ACCOUNT = "mosquitto"
PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700


@dataclass(frozen=True, slots=True)
class Login:
    """A user name and password for the broker; the password stays out of repr() and logs."""
    username: str
    password: str = field(repr=False)


def find_mosquitto() -> str | None:
    """Path of the mosquitto binary, or None when it is not installed."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return DEBIAN_MOSQUITTO if os.access(DEBIAN_MOSQUITTO, os.X_OK) else None


def free_loopback_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the broker binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _terminate_with_parent_hook():
    """A function for Popen's preexec_fn: in the child, before exec, it asks Linux to SIGTERM the
    child when its parent dies, so a pheoc killed with SIGKILL does not leave an orphaned broker
    holding a port. (Linux sends the signal when the *thread* that started the child ends: call
    start() from a long-lived thread.)

    Linux clears this request when the process changes its user id (prctl(2), PR_SET_PDEATHSIG),
    which is why a root pheoc starts Mosquitto as its unprivileged user directly (Popen's user=,
    applied before the hook runs) instead of letting Mosquitto switch users itself after exec.
    ctypes is loaded here, in the parent: the child may already be a user that cannot read Python's
    library folder.
    """
    import ctypes

    PR_SET_PDEATHSIG = 1
    prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl

    def hook() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    return hook


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


# ---- credentials and access rules --------------------------------------------------------------
def new_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


def mosquitto_password_hash(password: str, *, salt: bytes | None = None,
                            iterations: int = MOSQUITTO_PBKDF2_ITERATIONS) -> str:
    """The password-file form Mosquitto 2 checks: ``$7$<iterations>$<salt b64>$<hash b64>``.

    Written here rather than by ``mosquitto_passwd -b``, which would put the password on a command
    line that every local user can read in /proc/<pid>/cmdline while it runs.
    """
    salt = salt if salt is not None else secrets.token_bytes(MOSQUITTO_SALT_BYTES)
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, MOSQUITTO_HASH_BYTES)
    return (f"${MOSQUITTO_PBKDF2_ID}${iterations}${base64.b64encode(salt).decode()}"
            f"${base64.b64encode(key).decode()}")


def mosquitto_password_file(logins: list[Login]) -> str:
    return "".join(f"{login.username}:{mosquitto_password_hash(login.password)}\n" for login in logins)


def mosquitto_acl(layout: TopicLayout, *, ingest_user: str = INGEST_USER, publisher_user: str = PUBLISHER_USER,
                  warnings_topic: str | None = None) -> str:
    """Who may do what: the ingestor reads everything under the prefix and publishes nothing;
    publishers write only the layout's topics (and, when ``warnings_topic`` is given, the CAP warnings
    under it) and read nothing; the warnings reader reads only the warnings. Whatever is not granted
    is denied."""
    lines = ["# Generated by pheoc (ingest/broker.py) for the embedded broker.",
             f"user {ingest_user}", f"topic read {layout.subscription}", "",
             f"user {publisher_user}", *(f"topic write {topic}" for topic in layout.publish_filters)]
    if warnings_topic:
        lines += [f"topic write {warnings_topic}/#", "", f"user {WARNINGS_READER_USER}", f"topic read {warnings_topic}/#"]
    return "\n".join(lines) + "\n"


def mosquitto_config(port: int, data_dir: Path, *, host: str = "127.0.0.1",
                     max_queued_messages: int = MAX_QUEUED_MESSAGES,
                     message_size_limit: int = MESSAGE_SIZE_LIMIT, autosave_interval_s: int = 60) -> str:
    """The embedded broker's config: loopback only, passwords and ACL from ``data_dir``, persistent."""
    lines = [
        "# Generated by pheoc (ingest/broker.py) for the embedded broker; not for production.",
        # Global rather than per-listener security: the embedded port changes from run to run, and
        # Mosquitto ties a persisted session to its listener's settings when they are per listener
        # (it then cannot find the session's ACL after a restart on another port).
        "per_listener_settings false",
        f"listener {port} {host}",
        "allow_anonymous false",
        f"password_file {data_dir / 'passwd'}",
        f"acl_file {data_dir / 'acl'}",
        "persistence true",
        f"persistence_location {data_dir}/",
        f"autosave_interval {autosave_interval_s}",
        f"max_inflight_messages {MAX_INFLIGHT_MESSAGES}",
        f"max_queued_messages {max_queued_messages}",
        f"message_size_limit {message_size_limit}",
        f"log_dest file {data_dir / 'mosquitto.log'}",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "connection_messages true",
    ]
    return "\n".join(lines) + "\n"


# ---- not root ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _BrokerAccount:
    """The unprivileged user a root pheoc runs Mosquitto as (``None`` stands for "pheoc's own user")."""
    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: Path

    @classmethod
    def for_this_process(cls) -> "_BrokerAccount | None":
        if os.geteuid() != 0:
            return None
        try:
            entry = pwd.getpwnam(BROKER_ACCOUNT)
        except KeyError:
            raise RuntimeError(f"pheoc runs as root, and the embedded broker must not: create the unprivileged "
                               f"user {BROKER_ACCOUNT!r} (Debian's mosquitto package does) or run pheoc as an "
                               "ordinary user") from None
        groups = tuple(os.getgrouplist(entry.pw_name, entry.pw_gid))
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid, groups, Path(entry.pw_dir))

    def may_enter(self, folder: Path) -> bool:
        """Whether this user can reach ``folder``: every folder on the way must let it pass (x).
        (POSIX ACLs are not read: a folder they open is taken as closed, the safe mistake.)"""
        folder = folder.resolve()
        for part in (folder, *folder.parents):
            try:
                st = part.stat()
            except OSError:
                return False
            if st.st_uid == self.uid:
                bit = stat.S_IXUSR
            elif st.st_gid in self.groups:
                bit = stat.S_IXGRP
            else:
                bit = stat.S_IXOTH
            if not st.st_mode & bit:
                return False
        return True

    def popen_kwargs(self) -> dict:
        return {"user": self.uid, "group": self.gid, "extra_groups": list(self.groups)}


def _own(path: Path, account: _BrokerAccount | None) -> None:
    if account is not None:
        os.chown(path, account.uid, account.gid, follow_symlinks=False)


def _write_private(path: Path, text: str, account: _BrokerAccount | None) -> None:
    """Write a file only its owner (the broker's user) may read: password hashes, the ACL."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, PRIVATE_FILE_MODE)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)  # an older file keeps its mode through O_CREAT
        if account is not None:
            os.fchown(fd, account.uid, account.gid)
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _data_dir_for(workdir: Path, account: _BrokerAccount | None) -> Path:
    """Where the broker keeps its files. The work folder, unless pheoc is root and the broker's user
    cannot reach it (a home folder or pytest's tmp_path is mode 0700): then a folder in that user's
    home named after the work folder's path, so the persistence file still survives pheoc restarts."""
    if account is None or account.may_enter(workdir.parent):
        return workdir
    digest = hashlib.blake2b(str(workdir.resolve()).encode(), digest_size=8).hexdigest()
    fallback = account.home / f"pheoc-{digest}"
    if not account.may_enter(account.home):
        raise RuntimeError(f"the embedded broker runs as {account.name!r}, which can reach neither {workdir} "
                           f"nor its home {account.home}; put store.path in a folder it can enter")
    log.warning("the broker's user %r cannot enter %s; the embedded broker keeps its files in %s",
                account.name, workdir.parent, fallback)
    return fallback


class EmbeddedBroker:
    """A loopback MQTT broker owned by this process: Mosquitto if installed, else amqtt.

    ``port=0`` picks a free port at the first start and keeps it across restarts, so clients
    reconnect to the same address; the passwords, likewise, are made at the first start and kept
    by restart(), so connected clients log in again. ``workdir`` holds the config, log and
    persistence database; a temporary folder is used (and removed on stop) when none is given.
    ``topic_prefix`` (``mqtt.topic_prefix``) is what the ACL grants.
    """

    def __init__(self, workdir: Path | str | None = None, *, topic_prefix: str, port: int = 0,
                 host: str = "127.0.0.1", prefer: str = "mosquitto",
                 max_queued_messages: int = MAX_QUEUED_MESSAGES, message_size_limit: int = MESSAGE_SIZE_LIMIT,
                 warnings_topic: str | None = None):
        self.host = host
        self.warnings_topic = warnings_topic  # warnings.mqtt_topic: the publisher may write CAP warnings there
        self.port = port
        self.layout = TopicLayout(topic_prefix)
        self._own_tmp = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="pheoc-broker-"))
        self._binary = find_mosquitto() if prefer == "mosquitto" else None
        self._max_queued = max_queued_messages
        self._size_limit = message_size_limit
        self._logins: dict[str, Login] = {}
        self._account: _BrokerAccount | None = None
        self.data_dir = self.workdir
        self._proc: subprocess.Popen | None = None
        self._amqtt_loop: asyncio.AbstractEventLoop | None = None
        self._amqtt_thread: threading.Thread | None = None
        self._amqtt_broker = None

    @property
    def kind(self) -> str:
        return "mosquitto" if self._binary else "amqtt"

    @property
    def mqtt_v5(self) -> bool:
        """Whether clients may speak MQTT 5 (amqtt 0.12 accepts 3.1.1 only)."""
        return self._binary is not None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def ingest_login(self) -> Login:
        """May subscribe under the topic prefix; may not publish."""
        return self._login(INGEST_USER)

    @property
    def publisher_login(self) -> Login:
        """May publish to the layout's topics (readings, cases, tests, capacity, supplies); may not read."""
        return self._login(PUBLISHER_USER)

    @property
    def warnings_reader_login(self) -> Login:
        """May read the CAP warnings under ``warnings_topic``; nothing else."""
        return self._login(WARNINGS_READER_USER)

    def _login(self, user: str) -> Login:
        if user not in self._logins:
            raise RuntimeError("the broker's passwords are made when it starts: call start() first")
        return self._logins[user]

    def is_running(self) -> bool:
        if self._binary:
            return self._proc is not None and self._proc.poll() is None
        return self._amqtt_thread is not None and self._amqtt_thread.is_alive()

    def start(self) -> "EmbeddedBroker":
        if self.is_running():
            return self
        if not self._logins:
            self._logins = {user: Login(user, new_password()) for user in (INGEST_USER, PUBLISHER_USER)}
            if self.warnings_topic:
                self._logins[WARNINGS_READER_USER] = Login(WARNINGS_READER_USER, new_password())
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_loopback_port()
        if self._binary:
            self._start_mosquitto()
        else:
            self._start_amqtt()
        log.info("embedded %s broker on %s:%d", self.kind, self.host, self.port)
        return self

    def stop(self, *, remove_workdir: bool | None = None) -> None:
        """Stop cleanly (SIGTERM for Mosquitto, which then saves its persistence file)."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.send_signal(signal.SIGTERM)
                try:
                    self._proc.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    log.warning("mosquitto did not stop within %.0f s; killing it", STOP_TIMEOUT_S)
                    self._proc.kill()
                    self._proc.wait()
            self._proc = None
        if self._amqtt_loop is not None:
            fut = asyncio.run_coroutine_threadsafe(self._amqtt_broker.shutdown(), self._amqtt_loop)
            try:
                fut.result(STOP_TIMEOUT_S)
            except Exception:  # a failed shutdown must not keep the loop thread alive
                log.exception("amqtt shutdown failed")
            self._amqtt_loop.call_soon_threadsafe(self._amqtt_loop.stop)
            self._amqtt_thread.join(STOP_TIMEOUT_S)
            self._amqtt_loop = self._amqtt_thread = self._amqtt_broker = None
        if remove_workdir if remove_workdir is not None else self._own_tmp:
            shutil.rmtree(self.workdir, ignore_errors=True)
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def restart(self) -> None:
        self.stop(remove_workdir=False)
        self.start()

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- Mosquitto ----------------------------------------------------------------------------
    def _prepare_data_dir(self) -> None:
        """Make the broker's folder belong to the user it runs as, with nobody else let in."""
        self._account = _BrokerAccount.for_this_process()
        self.data_dir = _data_dir_for(self.workdir, self._account)
        self.data_dir.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
        os.chmod(self.data_dir, PRIVATE_DIR_MODE)
        _own(self.data_dir, self._account)
        for entry in self.data_dir.iterdir():  # e.g. a persistence file written by an earlier root run
            _own(entry, self._account)

    def _start_mosquitto(self) -> None:
        self._prepare_data_dir()
        account, data = self._account, self.data_dir
        logins = list(self._logins.values())
        _write_private(data / "passwd", mosquitto_password_file(logins), account)
        _write_private(data / "acl", mosquitto_acl(self.layout, warnings_topic=self.warnings_topic), account)
        conf = data / "mosquitto.conf"
        _write_private(conf, mosquitto_config(self.port, data, host=self.host, max_queued_messages=self._max_queued,
                                              message_size_limit=self._size_limit), account)
        on_parent_death = _terminate_with_parent_hook() if sys.platform == "linux" else None
        self._proc = subprocess.Popen([self._binary, "-c", str(conf)], stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=data,
                                      preexec_fn=on_parent_death, **(account.popen_kwargs() if account else {}))
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with code {self._proc.returncode}; see "
                                   f"{data / 'mosquitto.log'}")
            if _port_open(self.host, self.port):
                return
            time.sleep(0.05)
        self._proc.kill()
        raise RuntimeError(f"mosquitto did not listen on {self.host}:{self.port} within {START_TIMEOUT_S} s")

    # ---- amqtt ----------------------------------------------------------------------------------
    def _amqtt_config(self) -> dict:
        """Listener and password file for amqtt 0.12 (its plugins' ``Config`` dataclasses); no ACL
        plugin: see the module docstring."""
        from pwdlib.hashers.argon2 import Argon2Hasher  # amqtt's own dependency, for its FileAuthPlugin

        # The lightest argon2id (RFC 9106 allows t=1): a random 256-bit password needs no stretching,
        # and amqtt verifies the hash at every CONNECT in its event loop.
        hasher = Argon2Hasher(time_cost=1, memory_cost=8192, parallelism=1)
        passwd = self.workdir / "amqtt-passwd"
        _write_private(passwd, "".join(f"{login.username}:{hasher.hash(login.password)}\n"
                                       for login in self._logins.values()), None)
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                # Both must say yes: a CONNECT without a user name, and one with an unknown user or a
                # wrong password, are refused.
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": False},
                "amqtt.plugins.authentication.FileAuthPlugin": {"password_file": str(passwd)},
            },
        }

    def _start_amqtt(self) -> None:
        """amqtt in a thread of this process: passwords, but no ACL and no user of its own."""
        from amqtt.broker import Broker  # imported only when needed: it pulls in websockets etc.

        log.warning("Mosquitto is not installed: the embedded amqtt broker refuses clients without the password "
                    "but enforces no ACL (any client that logs in may publish and subscribe to any topic)%s; "
                    "install Mosquitto", ", and it runs inside pheoc's process, as root" if os.geteuid() == 0 else "")
        config = self._amqtt_config()
        loop = asyncio.new_event_loop()
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)

            async def boot() -> None:
                self._amqtt_broker = Broker(config, loop=loop)
                await self._amqtt_broker.start()

            try:
                loop.run_until_complete(boot())
            except BaseException as exc:  # report start failures to the caller's thread
                failure.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.close()

        self._amqtt_loop = loop
        self._amqtt_thread = threading.Thread(target=run, name="amqtt-broker", daemon=True)
        self._amqtt_thread.start()
        if not started.wait(START_TIMEOUT_S) or failure:
            raise RuntimeError(f"amqtt broker did not start: {failure[0] if failure else 'timeout'}")
