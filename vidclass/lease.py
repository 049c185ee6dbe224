"""One writer per output directory: a run holds a lease on `--output` from before its first write until after
its commit, and commits only while it still holds it.

Why: two runs into one output used to interleave (the second run's start deleted the first one's staging
folder, and a reader saw `_SUCCESS` beside files of both). Now the lease is an object `_LEASE` in the output
directory, created only if absent (atomically, see `lease_store`). It names its holder (a random run token,
host, pid, command, start time) and carries a heartbeat that a thread renews every TTL/4 while the run lives.
A second run finds it and stops at once with one line naming the holder (`errors.OutputBusy`, exit 2).

A killed run's lease goes stale: once its heartbeat is older than its TTL, the next run takes it over, and
`--force` takes over at once. A takeover is a conditional replace of the version just read, so of two runs
taking over the same stale lease only one wins. Before the commit swaps files in, and again before
`_SUCCESS`, the holder renews conditionally (`Lease.verify`): if another run took the lease, that fails and
the commit is refused (`LeaseLost`, exit 1). The lease is deleted (conditionally, so never someone else's)
when the run ends, however it ends.

Expiry compares the holder's heartbeat with this machine's clock: hosts sharing an output need clocks
within a small fraction of the TTL (NTP gives milliseconds).
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import re
import socket
import sys
import threading
import time
import uuid

from vidclass import errors, lease_store

LEASE = "_LEASE"
FORMAT = "vidclass-lease/1"
TTL_ENV = "VIDCLASS_LEASE_TTL_S"
# A killed run blocks its output for at most this long (or until --force); a live one must miss 4 heartbeats
# in a row (slow storage, a stalled launcher) before another run may take over.
DEFAULT_TTL_S = 120.0
BEATS_PER_TTL = 4


class LeaseLost(errors.RunFailed):
    """Another run took this run's output lease over (it expired, or `--force`): nothing is committed."""


def ttl_from_env() -> float:
    """The lease TTL: `VIDCLASS_LEASE_TTL_S` when set (tests, or storage with slow writes), else 120 s."""
    text = os.environ.get(TTL_ENV)
    if not text:
        return DEFAULT_TTL_S
    try:
        ttl = float(text)
    except ValueError:
        ttl = math.nan
    if not math.isfinite(ttl) or ttl <= 0:
        raise errors.UsageError(f"{TTL_ENV}={text!r}: must be a positive number of seconds")
    return ttl


def _iso(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat(timespec="microseconds")


def _epoch(text: str) -> float:
    return datetime.datetime.fromisoformat(text).timestamp()


def describe_command(prog: str, *parts: str) -> str:
    """What a holder says it is running, without credentials (`user:secret@` in a URL is cut out)."""
    return " ".join([prog, *(re.sub(r"//[^/@\s]+@", "//", p) for p in parts)])


@dataclasses.dataclass(frozen=True)
class Holder:
    """What `_LEASE` says: who holds the output, since when, and until when without a heartbeat."""

    token: str
    host: str
    pid: int
    command: str
    started_at: float
    heartbeat_at: float
    ttl_s: float
    seq: int = 0  # bumped on every renewal, so each version of the object differs

    @classmethod
    def new(cls, command: str, ttl_s: float) -> "Holder":
        now = time.time()
        return cls(uuid.uuid4().hex, socket.gethostname(), os.getpid(), command, now, now, ttl_s)

    @property
    def expires_at(self) -> float:
        return self.heartbeat_at + self.ttl_s

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) > self.expires_at

    def renewed(self) -> "Holder":
        return dataclasses.replace(self, heartbeat_at=time.time(), seq=self.seq + 1)

    def to_bytes(self) -> bytes:
        return json.dumps({
            "format": FORMAT, "token": self.token, "host": self.host, "pid": self.pid, "command": self.command,
            "started_at": _iso(self.started_at), "heartbeat_at": _iso(self.heartbeat_at),
            "expires_at": _iso(self.expires_at), "ttl_s": self.ttl_s, "seq": self.seq}, indent=1).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Holder | None":
        """The holder, or None for an object that is not a lease this version can read."""
        try:
            doc = json.loads(data)
            if doc.get("format") != FORMAT:
                return None
            return cls(str(doc["token"]), str(doc["host"]), int(doc["pid"]), str(doc["command"]),
                       _epoch(doc["started_at"]), _epoch(doc["heartbeat_at"]), float(doc["ttl_s"]),
                       int(doc.get("seq", 0)))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    def describe(self) -> str:
        beat = max(0.0, time.time() - self.heartbeat_at)
        return (f"{self.command} (pid {self.pid} on {self.host}, started {_iso(self.started_at)[:19]}Z, "
                f"last heartbeat {beat:.0f} s ago)")


class Lease:
    """A held lease: a daemon thread renews it; `verify()` proves it is still ours right before a commit;
    `release()` (or leaving the `with` block) deletes it."""

    def __init__(self, directory: str, store: lease_store.Store, holder: Holder, version: str):
        self.directory, self._store = directory, store
        self._holder, self._version = holder, version
        self._lock = threading.Lock()  # the heartbeat thread, verify() and release() take turns
        self._lost: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease-heartbeat {directory}", daemon=True)
        self._thread.start()

    @property
    def token(self) -> str:
        return self._holder.token

    def _renew(self) -> None:
        """One conditional renewal; a `Conflict` means the object changed since our last write. If the change
        was our own (a renewal whose reply got lost), adopt it and renew again; else the lease is lost."""
        with self._lock:
            if self._lost:
                raise LeaseLost(self._lost)
            for _ in range(2):
                new = self._holder.renewed()
                try:
                    self._version = self._store.replace(new.to_bytes(), self._version)
                    self._holder = new
                    return
                except lease_store.Conflict:
                    current = self._store.read()
                    other = Holder.from_bytes(current[0]) if current else None
                    if current is None or other is None or other.token != self.token:
                        self._lost = (f"the lease on {self.directory} was taken over by "
                                      f"{other.describe() if other else 'another run'}; nothing committed")
                        raise LeaseLost(self._lost) from None
                    self._holder, self._version = other, current[1]
            raise LeaseLost(f"the lease on {self.directory} keeps changing under this run")

    def _beat(self) -> None:
        every = self._holder.ttl_s / BEATS_PER_TTL
        while not self._stop.wait(every):
            try:
                self._renew()
            except LeaseLost:
                return  # verify() reports it, at the commit
            except Exception:  # noqa: BLE001 - storage hiccup: try again next beat; verify() is the judge
                continue

    def verify(self) -> None:
        """Renew now, conditionally: proves no other run has taken the lease, and gives the commit that follows
        a whole TTL. Raises `LeaseLost` otherwise."""
        self._renew()

    @property
    def lost(self) -> bool:
        return self._lost is not None

    def release(self) -> None:
        """Stop renewing and delete the lease if it is still ours (a lease taken over stays its taker's)."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
        with self._lock:
            if self._lost:
                return
            self._lost = f"the lease on {self.directory} was released"
            try:
                self._store.delete(self._version)
            except lease_store.Conflict:
                pass
            except Exception as e:  # noqa: BLE001 - never mask how the run ended; the lease expires anyway
                print(f"vidclass: note: could not delete the lease on {self.directory} ({e}); it expires by "
                      f"itself in {self._holder.ttl_s:.0f} s", file=sys.stderr)

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def acquire(directory: str, command: str, force: bool = False, ttl_s: float | None = None) -> Lease:
    """Take the lease on `directory` before writing anything there. A live holder -> `OutputBusy` naming it;
    a stale one (heartbeat older than its TTL), or any with `force` -> taken over, said on stderr."""
    directory = directory.rstrip("/") or directory
    store = lease_store.for_url(f"{directory}/{LEASE}")
    me = Holder.new(command, ttl_s or ttl_from_env())
    for _ in range(10):
        try:
            return Lease(directory, store, me, store.create(me.to_bytes()))
        except lease_store.Conflict:
            pass
        current = store.read()
        if current is None:
            continue  # released between our create and read: try to create again
        holder = Holder.from_bytes(current[0])
        if not force:
            if holder is None:
                raise errors.OutputBusy(f"{directory} holds a {LEASE} this vidclass cannot read; if no run is "
                                        "writing there, pass --force")
            if not holder.expired():
                raise errors.OutputBusy(
                    f"{directory} is being written by another run: {holder.describe()}; wait for it to finish, "
                    f"or if it is dead pass --force (its lease expires by itself at {_iso(holder.expires_at)[:19]}Z)")
        try:
            lease = Lease(directory, store, me, store.replace(me.to_bytes(), current[1]))
        except lease_store.Conflict:
            continue  # another run took it over first: look again
        why = "--force" if force and not (holder and holder.expired()) else "expired"
        print(f"vidclass: took over the output lease on {directory} ({why}) from "
              f"{holder.describe() if holder else 'an unreadable lease'}", file=sys.stderr)
        return lease
    raise errors.OutputBusy(f"{directory}: the lease changed hands 10 times while this run tried to take it")
