"""Child side: undo what a submission did to the machinery a test cell relies on (in-process guard).

The one tamper-resistance mechanism of the grading: a snapshot taken in the worker before any student code
runs, restored before each test cell that runs in the copy's kernel (an instructor's plain test cell under
``autograder grade``, every test cell under ``autograder verifier``) and again when ``check`` starts. It is
a best effort inside the student's own process: the trusted grading does not rely on it for verdicts (test
cells of ``check(...)`` calls are decided by the trusted checker, outside the copy's process).
"""

from __future__ import annotations

import ctypes
import signal
import sys
import time
from typing import Any

_GUARDED_MODULE_PREFIXES = ("IPython", "traitlets", "matplotlib_inline", "ipykernel.compiler", "autograder")
_GUARDED_MODULES = (
    "builtins", "os", "posix", "posixpath", "signal", "json", "json.encoder", "json.decoder", "struct", "io",
    "gc", "threading", "ast", "traceback", "linecache", "inspect", "functools", "operator", "copy", "re", "time",
    "numbers", "codecs", "types", "numpy", "resource", "mmap", "math", "warnings", "contextlib",
    # torch and the helpers checkers compare with
    "torch", "torch.testing", "torch.autograd", "torch.autograd.functional", "torch.autograd.graph",
    "torch.optim", "torch.optim.optimizer", "torch.linalg", "torch.nn.functional",
)  # fmt: skip
_SHELL_STATE_KEYS = {"_trait_values", "_trait_notifiers", "_trait_validators", "_cross_validation_lock"}
_MACHINERY = {
    "custom_exceptions", "user_ns", "callbacks", "ast_transformers", "input_transformers_cleanup",
    "input_transformers_post", "cleanup_transforms", "line_transforms", "token_transformers",
}  # fmt: skip
_SYS_HOOKS = ("stdout", "stderr", "stdin", "displayhook", "excepthook", "breakpointhook", "unraisablehook")


class Guard:
    """Undo what a submission did to the machinery a test cell relies on.

    It restores builtins, torch, the autograder package and the standard modules the grader uses (every
    changed, added or deleted attribute of their dictionaries and of the classes they define), the IPython
    shell (methods, hooks, AST and input transformers, event callbacks, custom exception handlers), the
    ``sys`` hooks, trace and profile functions, signal handlers and timers, ``sys.modules`` entries, the
    registry of exercises, and the names a test cell reads (``check``, ``hint``, ``torch``... and shadowed
    builtins).
    """

    def __init__(self, shell: Any, exercise_module: Any):
        import builtins
        import gc

        self.shell = shell
        self.modules: list[tuple[Any, dict[str, Any]]] = []
        for name, module in sorted(sys.modules.items()):
            if module is None or not (name in _GUARDED_MODULES or name.startswith(_GUARDED_MODULE_PREFIXES)):
                continue
            self.modules.append((module, dict(vars(module))))
            for value in list(vars(module).values()):
                if isinstance(value, type) and value.__module__ == name:
                    self.modules.append((value, dict(vars(value))))
        import torch

        for cls in (torch.Tensor, torch.optim.Optimizer, torch.optim.SGD):  # defined in private modules
            self.modules.append((cls, dict(vars(cls))))
        self.objects: list[tuple[Any, dict[str, Any], dict[str, Any]]] = []
        for obj in self._components():
            traits = dict(getattr(obj, "_trait_values", {}))
            self.objects.append((obj, dict(vars(obj)), traits, _copy_notifiers(obj)))
        self.lists = self._lists()
        self.callbacks = {name: list(funcs) for name, funcs in shell.events.callbacks.items()}
        self.sys_modules = dict(sys.modules)
        self.sys_hooks = {name: getattr(sys, name) for name in _SYS_HOOKS}
        self.meta_path = list(sys.meta_path)
        self.path_hooks = list(sys.path_hooks)
        self.recursion_limit = sys.getrecursionlimit()
        self.gc_callbacks = list(gc.callbacks)
        self.signals = {}
        for number in signal.valid_signals():
            try:
                self.signals[number] = signal.getsignal(number)
            except (ValueError, OSError):
                pass
        self.exercise_module = exercise_module
        self.registry = dict(exercise_module._REGISTRY)
        self.exercises = {key: dict(vars(value)) for key, value in self.registry.items()}
        self.builtins = builtins
        self.builtin_names = set(vars(builtins))
        self.format_tb = shell.InteractiveTB.structured_traceback

    def _components(self) -> list[Any]:
        shell = self.shell
        names = (
            "displayhook", "display_pub", "display_formatter", "compile", "InteractiveTB", "SyntaxTB",
            "events", "input_transformer_manager", "builtin_trap", "display_trap", "magics_manager",
        )  # fmt: skip
        return [shell] + [getattr(shell, name) for name in names if getattr(shell, name, None) is not None]

    def _lists(self) -> list[tuple[list[Any], list[Any]]]:
        shell = self.shell
        lists = [shell.ast_transformers, shell.input_transformers_cleanup, shell.input_transformers_post]
        manager = shell.input_transformer_manager
        for name in ("cleanup_transforms", "line_transforms", "token_transformers"):
            value = getattr(manager, name, None)
            if isinstance(value, list):
                lists.append(value)
        return [(value, list(value)) for value in lists]

    def retake_streams(self, on_sigint: Any) -> None:
        """The child replaced sys.stdout/stderr/stdin: those are the genuine ones from now on."""
        for name in ("stdout", "stderr", "stdin"):
            self.sys_hooks[name] = getattr(sys, name)
        self.signals[signal.SIGINT] = on_sigint
        for number in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            self.signals[number] = signal.SIG_DFL
        self.signals[signal.SIGXFSZ] = signal.SIG_IGN

    def format_traceback(self, failure: BaseException) -> list[str]:
        return self.format_tb(type(failure), failure, failure.__traceback__)

    def before_grade_cell(self, source: str, genuine: dict[str, Any]) -> None:
        import gc
        import threading

        sys.settrace(None)
        sys.setprofile(None)
        threading.settrace(None)  # type: ignore[arg-type]
        threading.setprofile(None)  # type: ignore[arg-type]
        _stop_other_threads()
        for number, handler in self.signals.items():
            try:
                if signal.getsignal(number) is not handler and handler is not None:
                    signal.signal(number, handler)
            except (ValueError, OSError, TypeError):
                pass
        for timer in (signal.ITIMER_REAL, signal.ITIMER_VIRTUAL, signal.ITIMER_PROF):
            signal.setitimer(timer, 0)
        signal.alarm(0)
        gc.callbacks[:] = self.gc_callbacks
        gc.collect()  # run pending finalizers of the submission's garbage now, before restoring
        gc.callbacks[:] = self.gc_callbacks
        for name, value in self.sys_hooks.items():
            setattr(sys, name, value)
        sys.meta_path[:] = self.meta_path
        sys.path_hooks[:] = self.path_hooks
        sys.setrecursionlimit(self.recursion_limit)
        for name, module in self.sys_modules.items():
            if sys.modules.get(name) is not module:
                sys.modules[name] = module
        self.restore_modules()
        for obj, saved, traits, notifiers in self.objects:
            _restore_instance(obj, saved, traits)
            if notifiers is not None:
                obj._trait_notifiers = _copy_notifiers(notifiers)
        for value, saved in self.lists:
            value[:] = saved
        callbacks = self.shell.events.callbacks
        for name in list(callbacks):
            if name not in self.callbacks:
                del callbacks[name]
        for name, funcs in self.callbacks.items():
            callbacks[name] = list(funcs)
        registry = self.exercise_module._REGISTRY
        registry.clear()
        registry.update(self.registry)
        for key, value in self.registry.items():
            saved = self.exercises[key]
            current = vars(value)
            for name in [n for n in current if n not in saved]:
                del current[name]
            for name, attr in saved.items():
                if name != "hints_shown" and current.get(name) is not attr:
                    current[name] = attr
        self._restore_names(source, genuine)

    def restore_modules(self) -> None:
        """Put back the snapshot of the modules and classes (what ``check`` does first, see ``restore``)."""
        for target, saved in self.modules:
            restore_namespace(target, saved)

    def _restore_names(self, source: str, genuine: dict[str, Any]) -> None:
        import ast
        import re

        try:
            names = {node.id for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Name)}
        except SyntaxError:
            names = set(re.findall(r"[A-Za-z_]\w*", source))
        namespace = self.shell.user_ns
        namespace["__builtins__"] = self.builtins
        for name in names:
            if name in genuine:
                namespace[name] = genuine[name]
            elif name in self.builtin_names and name in namespace and not name.startswith("_"):
                del namespace[name]  # e.g. a submission's own `globals` or `isinstance`


def _stop_other_threads() -> None:
    """Raise SystemExit in every other Python thread (one could keep re-patching torch during a test)."""
    me = _thread_ident()
    others = [ident for ident in sys._current_frames() if ident != me]
    for ident in others:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(SystemExit))
    if others:
        time.sleep(0.02)  # let them reach their next bytecode and die


def _thread_ident() -> int:
    import threading

    return threading.get_ident()


def restore_namespace(target: Any, saved: dict[str, Any]) -> None:
    current = vars(target)
    for name in [n for n in current if n not in saved]:
        try:
            delattr(target, name)
        except (AttributeError, TypeError):
            pass
    for name, value in saved.items():
        if current.get(name, _MISSING) is not value:
            try:
                setattr(target, name, value)
            except (AttributeError, TypeError):
                pass


def _restore_instance(obj: Any, saved: dict[str, Any], traits: dict[str, Any]) -> None:
    """Remove attributes shadowing methods and put machinery attributes back (plain state is left alone)."""
    current = vars(obj)
    cls = type(obj)
    for name in [n for n in current if n not in saved and n not in _SHELL_STATE_KEYS]:
        if callable(getattr(cls, name, None)) or callable(current[name]):
            del current[name]
    for name, value in saved.items():
        if name not in _SHELL_STATE_KEYS and current.get(name, _MISSING) is not value and _machinery(name, value):
            current[name] = value
    values = current.get("_trait_values")
    if isinstance(values, dict):
        for name, value in traits.items():
            if values.get(name, _MISSING) is not value and _machinery(name, value):
                values[name] = value


def _machinery(name: str, value: Any) -> bool:
    plain = isinstance(value, int | float | str | bool | bytes | type(None) | dict | list | tuple | set)
    return name in _MACHINERY or callable(value) or not plain


def _copy_notifiers(obj: Any) -> dict[str, dict[str, list[Any]]] | None:
    """Structural copy of a HasTraits' observers (a submission may observe a trait to run code)."""
    notifiers = obj if isinstance(obj, dict) else vars(obj).get("_trait_notifiers")
    if not isinstance(notifiers, dict):
        return None
    return {name: {kind: list(handlers) for kind, handlers in kinds.items()} for name, kinds in notifiers.items()}


_MISSING = object()


def _guard_functions() -> tuple[Any, Any]:
    """``protect`` and ``restore`` keep the guard in a closure, not in a module global that student code
    (or the restore itself, which restores this module's dictionary) could reset."""
    box: list[Guard] = []
    restore_modules = Guard.restore_modules

    def protect(guard: Guard) -> Guard:
        """Keep the worker's guard (once per process, before any student code runs)."""
        if not box:
            box.append(guard)
        return box[0]

    def restore() -> None:
        """Under grading, restore the modules' snapshot (``Exercise.check`` calls it before anything else);
        in a student's own kernel there is no snapshot and nothing to do."""
        if box:
            restore_modules(box[0])

    return protect, restore


protect, restore = _guard_functions()
