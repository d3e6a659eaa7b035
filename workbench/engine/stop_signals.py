"""SIGTERM and SIGINT during training: the main process records them, data-loading workers ignore them.

A cluster's preemption (SLURM's scancel) and a terminal's Ctrl-C signal every process of the job, the DataLoader
workers too. A worker that dies of it would crash the loader before the main process could save; workers therefore
ignore both signals and leave when the loader shuts down.
"""
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
