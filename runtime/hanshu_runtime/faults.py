"""Typed faults, named the way AWS Lambda's Python runtime client names them.

Start-up faults end the process with one line (type, what happened, how to fix it).
Invocation faults become a JSON body ``{errorType, errorMessage, requestId}``; the stack
trace goes to the log only.
"""

from __future__ import annotations


class StartupFault(Exception):
    """A fault that keeps the instance from ever becoming ready."""

    fault_type = "Runtime.StartupError"

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return self.one_line()

    def one_line(self) -> str:
        """The single line written to stderr and to the termination log."""
        text = f"{self.fault_type}: {self.message}. Fix: {self.fix}"
        return " ".join(text.split())


class ConfigError(StartupFault):
    fault_type = "Runtime.ConfigError"


class MalformedHandlerName(StartupFault):
    fault_type = "Runtime.MalformedHandlerName"


class BuiltInModuleConflict(StartupFault):
    fault_type = "Runtime.BuiltInModuleConflict"


class ImportModuleError(StartupFault):
    fault_type = "Runtime.ImportModuleError"


class UserCodeSyntaxError(StartupFault):
    fault_type = "Runtime.UserCodeSyntaxError"


class HandlerNotFound(StartupFault):
    fault_type = "Runtime.HandlerNotFound"


class HandlerNotCallable(StartupFault):
    fault_type = "Runtime.HandlerNotCallable"


class InitializerError(StartupFault):
    fault_type = "Runtime.InitializerError"


class InvalidResponse(Exception):
    """The handler returned something that cannot become an HTTP reply."""

    error_type = "InvalidResponse"


def error_body(error_type: str, message: str, request_id: str) -> dict[str, str]:
    return {"errorType": error_type, "errorMessage": message, "requestId": request_id}
