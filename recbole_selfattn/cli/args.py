"""The one argument parser of every command, RecBole style (``--key=value``).

A command declares its own options as a dict of defaults; what is left is
RecBole's: ``--model``, ``--dataset``, ``--config_files`` (or bare ``*.yaml``
arguments) and any other ``--key=value`` as a config override, exactly as
RecBole's ``run_recbole.py`` reads them::

    options, run = parse_args(argv, {"tool": "hyperopt", "max_evals": "100"})
    options["tool"], run.model, run.config_files, run.overrides

Declared options are given as ``--name=value`` or ``--name value``; one whose
default is ``False`` is a flag (``--name`` alone sets it ``True``). Values
stay strings: the command checks and converts them. Anything unrecognised is
a :class:`~recbole_selfattn.errors.UsageError`.
"""

from dataclasses import dataclass, field

from recbole_selfattn.errors import UsageError

DEFAULT_MODEL = "AttRec"
DEFAULT_DATASET = "ml-100k"


@dataclass
class RunArgs:
    """What RecBole itself reads from a command line."""

    model: str = DEFAULT_MODEL
    dataset: str = DEFAULT_DATASET
    config_files: list = field(default_factory=list)
    overrides: list = field(default_factory=list)

    def add(self, arg):
        """Take ``arg`` if it is RecBole's; ``False`` if it is not."""
        key, has_value, value = arg.partition("=")
        if key == "--model" and has_value:
            self.model = value
        elif key == "--dataset" and has_value:
            self.dataset = value
        elif key == "--config_files" and has_value:
            self.config_files += split_list(value)
        elif arg.endswith((".yaml", ".yml")) and not arg.startswith("--"):
            self.config_files.append(arg)
        elif key.startswith("--") and len(key) > 2 and has_value:
            self.overrides.append(arg)
        else:
            return False
        return True


def split_list(value):
    """``"a b,c"`` as ``["a", "b", "c"]`` (lists given as one argument)."""
    return [item for item in value.replace(",", " ").split() if item]


def unrecognised(arg):
    """The error for an argument no option takes."""
    return UsageError(f"Unrecognised argument '{arg}': options take the form --key=value. Run with --help for usage.")


def parse_args(argv, options=None, recbole=True):
    """Split ``argv`` into ``(options, run)``.

    Args:
        argv (list of str): the arguments, without the program name.
        options (dict): the command's own options, name (without ``--``) to
            default; ``False`` makes a flag.
        recbole (bool): whether RecBole's arguments are accepted (``run`` is
            then a :class:`RunArgs`, else ``None``).

    Returns:
        tuple: the options' values (defaults where not given) and ``run``.
    """
    values = dict(options or {})
    run = RunArgs() if recbole else None
    args = iter(argv)
    for arg in args:
        key, has_value, value = arg.partition("=")
        name = key[2:] if key.startswith("--") else None
        if name in values and values[name] is False and not has_value:
            values[name] = True
        elif name in values and values[name] is not False:
            if not has_value:
                value = next(args, None)
                if value is None or value.startswith("--"):
                    raise UsageError(f"{key} needs a value, e.g. {key}=... (run with --help for usage).")
            values[name] = value
        elif run is None or not run.add(arg):
            raise unrecognised(arg)
    return values, run
