"""Errors that mean "the user's input is wrong", reported without a traceback.

The command line (:mod:`recbole_selfattn.cli`) prints these as one paragraph
and exits with status 2. Any other exception is a bug and keeps its traceback.
"""


class UsageError(Exception):
    """Bad input (model name, dataset, atomic file, config value). The message
    says what is wrong and how to fix it."""


class UnknownModelError(UsageError):
    """The model name is neither a plugin model nor a RecBole built-in."""


class DatasetError(UsageError):
    """The dataset is missing, not downloadable, or its atomic files are malformed."""


class ConfigError(UsageError):
    """A config value is missing, of the wrong type, or out of range."""


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss (a diverging run, not bad input)."""

    def __init__(self, epoch, batch, value):
        self.epoch, self.batch, self.value = epoch, batch, value
        super().__init__(
            f"Training stopped: the loss is {value} at epoch {epoch}, batch {batch}. "
            "The run diverged; lower `learning_rate`, raise `reg_weight`, or set "
            "`clip_grad_norm` (e.g. --clip_grad_norm=\"{'max_norm': 5}\") and run again."
        )

    def __reduce__(self):
        # Picklable, so a distributed rank can send it to the parent process.
        return type(self), (self.epoch, self.batch, self.value)
