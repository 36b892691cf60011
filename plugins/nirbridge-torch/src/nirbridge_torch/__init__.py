"""PyTorch pieces shared by nirbridge's torch backends (snnTorch, Norse)."""

from .executor import GraphModule, run_sequence
from .layers import build_stateless, export_stateless

__all__ = ["GraphModule", "build_stateless", "export_stateless", "run_sequence"]
