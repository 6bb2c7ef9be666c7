"""A real single-node SLURM (Debian's slurm-wlm + munge) started on localhost for the tests, stopped by PID.

munged (its own socket, the system's key) and slurmctld + slurmd with a generated ``slurm.conf`` (``CONF``) keep their
state, spool, pid files and logs in the test's folder; ``SLURM_CONF`` points the SLURM commands at it. Needs root and
the packages (the nox ``tests`` session installs them)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

CONF = """ClusterName=ablate-test
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire: how long a requeued job waits before it may start again (default 120 s, most of the requeue test)
AuthInfo=socket={d}/munge/munge.socket,cred_expire=10
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool/slurmd-%n
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd-%n.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={d}/log/jobcomp.txt
ReturnToService=2
MinJobAge=300
KillWait=5
NodeName=localhost CPUs={cpus} Boards=1 SocketsPerBoard=1 CoresPerSocket={cpus} ThreadsPerCore=1 RealMemory=20000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


def available() -> str | None:
    """None when a local cluster can be started here, else why not."""
    if os.geteuid() != 0:
        return "needs root to start slurmctld/slurmd/munged"
    missing = [b for b in ("slurmctld", "slurmd", "munged", "sbatch") if shutil.which(b) is None]
    return f"missing {', '.join(missing)} (apt-get install slurm-wlm munge)" if missing else None


def _wait(check, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise TimeoutError(f"timed out waiting for {what}")


class Cluster:
    def __init__(self, folder: Path):
        self.dir = folder
        self.env = dict(os.environ, SLURM_CONF=str(folder / "slurm.conf"))

    def start(self) -> None:
        d = self.dir
        for sub in ("state", "spool", "log", "munge"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(d / "munge", 0o755)
        key = d / "munge" / "munge.key"
        shutil.copy("/etc/munge/munge.key", key)
        os.chmod(key, 0o600)
        sock = d / "munge" / "munge.socket"
        subprocess.run(
            [
                "munged",
                f"--key-file={key}",
                f"--socket={sock}",
                f"--pid-file={d}/munge/munged.pid",
                f"--log-file={d}/log/munged.log",
                f"--seed-file={d}/munge/seed",
            ],
            check=True,
        )
        _wait(lambda: subprocess.run(["munge", "-S", str(sock), "-n"], capture_output=True).returncode == 0, "munge")
        port = 16817 + os.getpid() % 500 * 2
        (d / "slurm.conf").write_text(CONF.format(d=d, ctld_port=port, d_port=port + 1, cpus=os.cpu_count() or 2))
        subprocess.run(["slurmctld"], env=self.env, check=True)
        subprocess.run(["slurmd", "-N", "localhost"], env=self.env, check=True)
        _wait(lambda: "idle" in self.run("sinfo", "-h", "-o", "%T"), "an idle node", 60)

    def run(self, *cmd: str) -> str:
        return subprocess.run(list(cmd), env=self.env, capture_output=True, text=True).stdout

    def stop(self) -> None:
        d = self.dir
        for pidfile in (d / "slurmd-localhost.pid", d / "slurmctld.pid", d / "munge" / "munged.pid"):
            try:
                pid = int(pidfile.read_text().strip())
                os.kill(pid, signal.SIGTERM)
            except (OSError, ValueError):
                continue
            _wait(lambda pid=pid: not Path(f"/proc/{pid}").exists(), f"pid {pid} to exit", 20)
