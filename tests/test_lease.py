"""The output lease on each storage it lives on: local disk (real processes), S3 (a real moto server) and
memory://: one winner among concurrent acquirers, renewal, expiry and takeover, --force, and a holder that
lost its lease cannot commit."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import pytest

from s3server import s3_server
from vidclass import errors, lease, lease_store, outdir

HOLD = textwrap.dedent("""
    import sys, time
    from vidclass import errors, lease
    directory, start, ttl, hold = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    while time.time() < start:
        time.sleep(0.001)
    try:
        held = lease.acquire(directory, "holder " + sys.argv[5], ttl_s=ttl)
    except errors.OutputBusy as e:
        print("BUSY", e, flush=True)
        sys.exit(2)
    print("WON", flush=True)
    time.sleep(hold)
    held.release()
""")


@pytest.fixture(scope="module")
def s3():
    import s3fs
    with s3_server() as server:
        server.make_bucket("leases")
        saved = {k: os.environ.get(k) for k in server.env()}
        os.environ.update(server.env())
        s3fs.S3FileSystem.clear_instance_cache()  # an instance made for another server must not answer
        try:
            yield server
        finally:
            s3fs.S3FileSystem.clear_instance_cache()
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


@pytest.fixture(params=["local", "memory", "s3"])
def where(request, tmp_path):
    """An output directory URL on each kind of storage."""
    if request.param == "local":
        return str(tmp_path / "out")
    if request.param == "memory":
        return f"memory://lease-tests/{uuid.uuid4().hex}"
    request.getfixturevalue("s3")
    return f"s3://leases/{uuid.uuid4().hex}"


def _holders(directory, n, ttl=30.0, hold=1.5, env=None):
    """n processes that all try to take the lease at the same instant; their outputs."""
    start = time.time() + 1.0 + 0.1 * n  # after every interpreter is up
    procs = [subprocess.Popen([sys.executable, "-c", HOLD, directory, str(start), str(ttl), str(hold), str(i)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
             for i in range(n)]
    return [p.communicate(timeout=60)[0] for p in procs], [p.returncode for p in procs]


def test_second_acquirer_is_told_who_holds_it(where):
    """The second run fails at once, with one line naming host, pid, start time and command; after a release
    the output is free again."""
    with lease.acquire(where, "vidclass preprocess --input /videos/a") as held:
        with pytest.raises(errors.OutputBusy) as busy:
            lease.acquire(where, "vidclass preprocess --input /videos/b")
        text = str(busy.value)
        assert "\n" not in text and busy.value.status == errors.Exit.USAGE
        assert "vidclass preprocess --input /videos/a" in text and f"pid {os.getpid()}" in text
        assert os.uname().nodename in text and "started 20" in text and "--force" in text
        assert not held.lost
    with lease.acquire(where, "vidclass preprocess --input /videos/b"):
        pass


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_concurrent_processes_exactly_one_wins(kind, tmp_path, request):
    """Four processes race for one output lease, twice: each time exactly one wins and the rest are told who."""
    env = None
    if kind == "s3":
        env = {**os.environ, **request.getfixturevalue("s3").env()}
        directory = f"s3://leases/race-{uuid.uuid4().hex}"
    else:
        directory = str(tmp_path / "race")
    for _ in range(2):
        outs, codes = _holders(directory, 4, env=env)
        assert sorted(codes) == [0, 2, 2, 2], outs
        winner = outs[codes.index(0)]
        assert winner.startswith("WON")
        assert all(o.startswith("BUSY") and "holder " in o for o, c in zip(outs, codes) if c == 2)


def _race(where: str, who: str, n: int = 8) -> tuple[list, list[str]]:
    """`n` threads try to acquire the lease at the same instant: (the leases won, the refusals' messages)."""
    barrier, won, busy = threading.Barrier(n), [], []

    def race(i):
        barrier.wait()
        try:
            won.append(lease.acquire(where, f"{who} {i}"))
        except errors.OutputBusy as e:
            busy.append(str(e))
    threads = [threading.Thread(target=race, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return won, busy


def test_concurrent_threads_exactly_one_wins(where):
    """Eight threads of one process (memory:// spans only one) race: one winner; the others see it."""
    won, busy = _race(where, "thread")
    assert len(won) == 1 and len(busy) == 7
    won[0].release()


def test_heartbeat_keeps_a_live_lease(where):
    """A short TTL does not free a lease whose holder is alive: the heartbeat renews it."""
    with lease.acquire(where, "long run", ttl_s=0.6) as held:
        for _ in range(4):
            time.sleep(0.4)
            with pytest.raises(errors.OutputBusy):
                lease.acquire(where, "impatient run")
        held.verify()
    with lease.acquire(where, "impatient run"):
        pass


def _stale(where, ago=3600.0):
    """A lease left by a run that stopped beating `ago` seconds ago."""
    then = time.time() - ago
    dead = lease.Holder("dead" * 8, "elsewhere", 4242, "vidclass preprocess --input /old", then, then, 60.0)
    lease_store.for_url(f"{where}/{lease.LEASE}").create(dead.to_bytes())


def test_two_takeovers_of_one_stale_lease_one_wins(where):
    """Eight runs find the same expired lease at once: the conditional replace lets exactly one take it."""
    _stale(where)
    won, busy = _race(where, "taker")
    assert len(won) == 1 and len(busy) == 7
    assert all("taker " in b for b in busy)  # they were told about the winner, not the dead run
    won[0].release()


def test_a_killed_holders_lease_expires_and_is_taken_over(tmp_path):
    """A real process holding the lease is SIGKILLed: until its TTL passes the output stays busy; then the
    next run takes it over by itself."""
    directory = str(tmp_path / "out")
    proc = subprocess.Popen([sys.executable, "-c", HOLD, directory, "0", "1.5", "600", "victim"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("WON")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = time.time()
    with pytest.raises(errors.OutputBusy, match="holder victim"):
        lease.acquire(directory, "next run")
    time.sleep(max(0.0, killed_at + 1.6 - time.time()))
    with lease.acquire(directory, "next run") as held:
        on_disk = json.loads((tmp_path / "out" / lease.LEASE).read_text())
        assert on_disk["token"] == held.token and on_disk["command"] == "next run"


def test_force_takes_over_and_the_old_holder_cannot_commit(where):
    """--force takes a live lease at once; the run it was taken from is refused at its commit (before any
    file is swapped in), and its release leaves the new holder's lease alone."""
    old = lease.acquire(where, "old run")
    staging = outdir.begin(where, old)
    fs, path = outdir._fs(staging)
    fs.pipe_file(f"{path}/predictions-00000-of-00001.parquet", b"old rows")
    new = lease.acquire(where, "new run", force=True)
    with pytest.raises(lease.LeaseLost, match="new run"):
        outdir.commit(where, staging, ["predictions-*.parquet"], old)
    assert not outdir.is_finished(where)
    _, root = outdir._fs(where)
    assert not fs.exists(f"{root}/predictions-00000-of-00001.parquet")
    old.release()
    new.verify()  # still the new run's
    assert outdir.commit(where, outdir.begin(where, new), ["predictions-*.parquet"], new) == []
    assert outdir.is_finished(where)
    new.release()
    assert not fs.exists(f"{root}/{lease.LEASE}")


def test_a_renewal_whose_reply_was_lost_is_still_ours(tmp_path):
    """Storage applied a renewal but the reply never came: the next renewal finds our own token and goes on."""
    with lease.acquire(str(tmp_path / "out"), "run", ttl_s=60) as held:
        held._version = "a version storage never had"  # what a lost reply leaves behind
        held.verify()
        assert not held.lost


def test_ttl_from_the_environment(monkeypatch):
    monkeypatch.setenv(lease.TTL_ENV, "2.5")
    assert lease.ttl_from_env() == 2.5
    for bad in ("nan", "-1", "0", "soon"):
        monkeypatch.setenv(lease.TTL_ENV, bad)
        with pytest.raises(errors.UsageError, match=lease.TTL_ENV):
            lease.ttl_from_env()


def test_the_lease_names_no_credentials():
    assert lease.describe_command("vidclass infer", "--input", "https://me:s3cret@host/v/") == \
        "vidclass infer --input https://host/v/"
