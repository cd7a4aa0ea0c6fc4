"""Base class for the modules' Logic classes, usable inside and outside Slicer.

Inside Slicer it is ``ScriptedLoadableModuleLogic`` (parameter nodes, module name). The
slicer-core wheel used by the tests and by headless scripts has MRML but no
``ScriptedLoadableModule``; there the Logic classes still work on real MRML scenes, only
without parameter nodes.
"""

try:
    from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic as LogicBase
except ImportError:  # slicer-core: no ScriptedLoadableModule (and no Qt)

    class LogicBase:  # type: ignore[no-redef]
        def __init__(self) -> None:
            pass


__all__ = ["LogicBase"]
