"""Shared by every test layer."""
import sys

# torch's optimizers import torch._dynamo, which imports triton when it is installed (the CUDA
# wheel ships it); nothing here compiles kernels, and triton's nanobind modules print screens
# of "leaked" warnings when the interpreter exits. Marked absent, torch treats it as missing.
sys.modules.setdefault("triton", None)  # type: ignore[arg-type]
