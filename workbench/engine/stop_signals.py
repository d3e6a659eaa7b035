"""SIGTERM and SIGINT during training: the main process records them, data-loading workers ignore them.

A cluster's preemption (SLURM's scancel) and a terminal's Ctrl-C signal every process of the job, the DataLoader
workers too. A worker that dies of it would crash the loader before the main process could save; workers therefore
ignore both signals and leave when the loader shuts down. A process that exits without shutting its loader down
(an error's traceback keeps the loader alive) kills its remaining workers at exit, where multiprocessing's own exit
would send them SIGTERM and wait forever.
"""
import atexit
import multiprocessing
import signal

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignal:
    """Records the first SIGTERM / SIGINT so the training loop can save and exit at the end of an iteration.

    While installed, further signals are absorbed (torchrun forwards the one it got to every worker). `restore` puts
    the previous handlers back: a signal after the loop has ended, or failed, then ends the process at once.
    """

    def __init__(self):
        self.received: str | None = None
        self.previous = {sig: signal.signal(sig, self._handle) for sig in STOP_SIGNALS}

    def _handle(self, signum, frame) -> None:
        self.received = self.received or signal.Signals(signum).name

    def restore(self) -> None:
        """Puts the previous handlers back."""
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def ignore_stop_signals(worker_id: int) -> None:
    """A DataLoader `worker_init_fn`: the worker ignores SIGTERM and SIGINT."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


@atexit.register  # after multiprocessing's exit function is registered, so it runs before it
def kill_loader_workers() -> None:
    """Kills the daemonic children (DataLoader workers) still alive when the process exits, with SIGKILL where
    multiprocessing would send the SIGTERM they ignore. The loader's SIGCHLD handler, which would report their end as
    an error, is removed first."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for child in multiprocessing.active_children():
        if child.daemon:
            child.kill()
