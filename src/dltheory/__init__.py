"""dltheory: executable deep-learning theory (ICML 2018).

Four results made usable: mean-field signal propagation and orthogonal convolution initializers
(Xiao et al. 2018), random-matrix learning curves of gradient descent (Liao & Couillet 2018),
implicit acceleration by depth (Arora, Cohen & Hazan 2018) and certificates that local minima of
deep linear networks are global (Laurent & von Brecht 2018).

Subpackages are imported lazily so that ``import dltheory`` stays cheap and the theory layer never
pulls in torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {"diagnose": ("dltheory.nn.diagnose", "diagnose")}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'dltheory' has no attribute {name!r}")
